// The table browser, read from TAP_SCHEMA through the service's own TAP: schemas, tables, and
// columns with types, units, UCDs and descriptions; a search box; a column click inserts it.
import { el, errorText, form, parseJson, request, url } from "./api.js";

async function tap(query) {
  const response = await request(url("tap/sync"), { method: "POST",
    body: form({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, RESPONSEFORMAT: "json", MAXREC: 1000000 }) });
  if (!response.ok) throw new Error(await errorText(response));
  const doc = parseJson(await response.text());
  const names = doc.metadata.map((m) => m.name.toLowerCase());
  return doc.data.map((row) => Object.fromEntries(row.map((v, i) => [names[i], v])));
}

export function setupTables({ onColumn }) {
  const tree = document.getElementById("table-tree");
  const detail = document.getElementById("table-detail");
  const search = document.getElementById("table-search");
  let tables = null;
  let chosen = null;

  async function load() {
    if (tables) return;
    tree.replaceChildren(el("li", {}, "loading TAP_SCHEMA…"));
    try {
      const [ts, cs] = await Promise.all([
        tap("SELECT schema_name, table_name, description FROM TAP_SCHEMA.tables ORDER BY schema_name, table_name"),
        tap("SELECT table_name, column_name, datatype, arraysize, unit, ucd, description, column_index " +
            "FROM TAP_SCHEMA.columns ORDER BY table_name, column_index"),
      ]);
      const byTable = {};
      for (const c of cs) (byTable[c.table_name] ||= []).push(c);
      tables = ts.map((t) => ({ ...t, columns: byTable[t.table_name] || [] }));
      draw();
    } catch (e) {
      tree.replaceChildren(el("li", { class: "banner error" }, e.message));
    }
  }

  function matches(text, words) {
    const hay = text.toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  function columnText(c) { return [c.column_name, c.unit, c.ucd, c.description, c.datatype].filter(Boolean).join(" "); }

  function draw() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const schemas = {};
    for (const t of tables) {
      const hit = !words.length || matches(`${t.table_name} ${t.description || ""}`, words)
        || t.columns.some((c) => matches(columnText(c), words));
      if (hit) (schemas[t.schema_name] ||= []).push(t);
    }
    tree.replaceChildren(...Object.entries(schemas).map(([schema, list]) => el("li", {}, el("strong", {}, schema),
      el("ul", {}, list.map((t) => el("li", {}, el("button", { type: "button", "aria-current": chosen === t.table_name ? "true" : "false",
        "data-table": t.table_name, onclick: () => { chosen = t.table_name; draw(); show(t, words); } }, t.table_name)))))));
    if (!Object.keys(schemas).length) tree.replaceChildren(el("li", {}, "no table or column matches"));
  }

  function show(t, words) {
    const cols = words.length && !matches(`${t.table_name} ${t.description || ""}`, words)
      ? t.columns.filter((c) => matches(columnText(c), words)) : t.columns;
    detail.replaceChildren(
      el("h2", {}, t.table_name),
      el("p", {}, t.description || ""),
      el("p", {}, el("button", { type: "button", class: "use-table", onclick: () => onColumn(t.table_name) }, "insert the table name"),
        ` ${t.columns.length} columns` + (cols.length !== t.columns.length ? `, ${cols.length} matching` : "")),
      el("table", { class: "grid" },
        el("thead", {}, el("tr", {}, ["column", "type", "unit", "UCD", "description"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, cols.map((c) => el("tr", {},
          el("td", {}, el("button", { type: "button", class: "column", title: "insert into the query", onclick: () => onColumn(c.column_name) }, c.column_name)),
          el("td", {}, c.datatype + (c.arraysize ? `[${c.arraysize}]` : "")),
          el("td", {}, c.unit || ""), el("td", {}, c.ucd || ""), el("td", {}, c.description || ""))))));
  }

  search.addEventListener("input", () => { if (tables) draw(); });
  return { load };
}
