// A result as a paged, sortable table with units in the header, overflow told, downloads in
// every output format and the /tap/sync URL that reproduces it.
import { el, isNumeric, save, url } from "./api.js";

export const PAGE_ROWS = 100;

export function syncUrl(query, maxrec, format) {
  return url("tap/sync", { REQUEST: "doQuery", LANG: "ADQL", QUERY: query, MAXREC: maxrec, RESPONSEFORMAT: format });
}

export function setupResults({ formats, onLightCurve, onResult }) {
  const box = document.getElementById("result");
  const status = document.getElementById("result-status");
  const actions = document.getElementById("result-actions");
  const table = document.getElementById("result-table");
  const pager = document.getElementById("pager");
  let state = null;

  function render() {
    const { fields, rows, page, sortKey, sortDesc } = state;
    const order = rows.map((_, i) => i);
    if (sortKey !== null) {
      const numeric = isNumeric(fields[sortKey]);
      order.sort((a, b) => {
        const x = rows[a][sortKey], y = rows[b][sortKey];
        if (x === null || y === null) return (x === null) - (y === null);
        const c = numeric ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
        return sortDesc ? -c : c;
      });
    }
    const objectCol = fields.findIndex((f) => f.name.toLowerCase() === "diaobjectid");
    const head = el("tr", {},
      objectCol >= 0 ? el("th", { scope: "col" }, "light curve") : null,
      fields.map((f, i) => el("th", { scope: "col", "aria-sort": sortKey === i ? (sortDesc ? "descending" : "ascending") : "none" },
        el("button", { type: "button", class: "sort", title: [f.datatype, f.ucd].filter(Boolean).join(" · "),
          onclick: () => { state.sortDesc = state.sortKey === i ? !state.sortDesc : false; state.sortKey = i; state.page = 0; render(); } },
        f.name + (sortKey === i ? (sortDesc ? " ▼" : " ▲") : "")),
        f.unit ? el("span", { class: "unit" }, f.unit) : null)));
    const first = page * PAGE_ROWS;
    const body = order.slice(first, first + PAGE_ROWS).map((r) => {
      const row = rows[r];
      return el("tr", {},
        objectCol >= 0 ? el("td", {}, row[objectCol] === null ? "" :
          el("button", { type: "button", class: "lightcurve", onclick: () => onLightCurve(row[objectCol]) }, "plot")) : null,
        row.map((v, i) => v === null ? el("td", { class: "null" }, "NULL")
          : el("td", isNumeric(fields[i]) ? { class: "num" } : {}, Array.isArray(v) ? JSON.stringify(v) : String(v))));
    });
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    pager.replaceChildren(
      el("button", { type: "button", disabled: page === 0, onclick: () => { state.page--; render(); } }, "‹ previous"),
      el("span", { "aria-live": "polite" }, `page ${page + 1} of ${pages} · rows ${rows.length ? first + 1 : 0}–${Math.min(first + PAGE_ROWS, rows.length)} of ${rows.length}`),
      el("button", { type: "button", disabled: page >= pages - 1, onclick: () => { state.page++; render(); } }, "next ›"));
  }

  return {
    show(result, { query, maxrec, elapsedMs, source }) {
      box.hidden = false;
      state = { fields: result.fields, rows: result.rows, page: 0, sortKey: null, sortDesc: false };
      const parts = [`${result.rows.length} row${result.rows.length === 1 ? "" : "s"}, ${result.fields.length} columns`];
      if (elapsedMs !== undefined) parts.push(` in ${Math.round(elapsedMs)} ms`);
      if (source) parts.push(` (${source})`);
      status.replaceChildren(parts.join(""));
      if (result.status === "OVERFLOW") {
        status.append(el("div", { class: "banner overflow", role: "alert" },
          `Overflow: the result was cut at MAXREC = ${maxrec} rows; raise MAXREC to see more.`));
      }
      const links = formats.map((f) => el("button", { type: "button", class: "download", "data-format": f,
        onclick: async (ev) => {
          ev.target.disabled = true;
          try { await save(syncUrl(query, maxrec, f), `result.${f.replace("votable-b2", "vot").replace("votable", "vot")}`); }
          catch (e) { status.append(el("div", { class: "banner error", role: "alert" }, e.message)); }
          finally { ev.target.disabled = false; }
        } }, f));
      const reproduce = syncUrl(query, maxrec, "votable");
      actions.replaceChildren("Download as ", ...links, el("span", {}, " · reproduce: "),
        el("a", { href: reproduce, class: "url", id: "reproduce" }, reproduce));
      render();
      onResult(result);
    },
    error(message) {
      box.hidden = false;
      state = null;
      status.replaceChildren(el("div", { class: "banner error", role: "alert" }, message));
      actions.replaceChildren();
      table.replaceChildren();
      pager.replaceChildren();
    },
  };
}

/** The TAP+ JSON document as the table the page shows. */
export function fromJson(doc) {
  return { fields: doc.metadata, rows: doc.data, status: doc.status, message: doc.error || "" };
}
