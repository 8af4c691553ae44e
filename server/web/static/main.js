// Wiring: tabs, the token field, the examples, running queries sync or async.
import { el, errorText, form, parseJson, request, save, setToken, token, url } from "./api.js";
import { setupEditor } from "./editor.js";
import { setupImages } from "./images.js";
import { setupJobs } from "./jobs.js";
import { lightCurve, setupPlots } from "./plots.js";
import { fromJson, setupResults, syncUrl } from "./results.js";
import { setupTables } from "./tables.js";

const formatSelect = document.getElementById("format");
const formats = [...formatSelect.options].map((o) => o.value);
const maxrecInput = document.getElementById("maxrec");

const plots = setupPlots();
const results = setupResults({
  formats,
  onLightCurve: (id) => lightCurve(id).catch((e) => {
    document.getElementById("lightcurve-status").replaceChildren(e.message);
  }),
  onResult: (result) => { plots.fill(result); plots.drawIfOpen(); },
});
const editor = setupEditor({ onRun: () => runSync() });
const tables = setupTables({ onColumn: (name) => editor.insert(name) });
const jobs = setupJobs({ onResult: (doc, job) => { showTab("query"); results.show(fromJson(doc), { query: job.query, maxrec: job.maxrec, source: `job ${job.id}` }); } });
setupImages();

// ---- tabs (arrow keys move between them, as in the ARIA tabs pattern)
const tabs = [...document.querySelectorAll('[role="tab"]')];
function showTab(name) {
  for (const tab of tabs) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !on;
  }
  if (name === "tables") tables.load();
  if (name === "jobs") jobs.refresh();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => showTab(tab.id.slice(4)));
  tab.addEventListener("keydown", (ev) => {
    const step = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    next.focus();
    showTab(next.id.slice(4));
  });
});
showTab("query");

// ---- token: kept in sessionStorage, sent on every request
const tokenState = document.getElementById("token-state");
function tokenLabel() { tokenState.textContent = token() ? "a token is set for this session" : "no token"; }
document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setToken(document.getElementById("token").value.trim());
  document.getElementById("token").value = "";
  tokenLabel();
});
document.getElementById("token-forget").addEventListener("click", () => { setToken(""); tokenLabel(); });
tokenLabel();

// ---- examples: the service's own /tap/examples document (DALI examples markup)
async function loadExamples() {
  const list = document.getElementById("examples");
  try {
    const response = await request(url("tap/examples"));
    if (!response.ok) throw new Error(await errorText(response));
    const doc = new DOMParser().parseFromString(await response.text(), "application/xml");
    const items = [...doc.querySelectorAll('[typeof="example"]')].map((ex) => {
      const name = ex.querySelector('[property="name"]');
      const query = ex.querySelector('[property="query"]');
      return el("li", {}, el("button", { type: "button", class: "example", "data-id": ex.getAttribute("id"),
        onclick: () => { editor.set(query.textContent.trim()); document.getElementById("adql").focus(); } },
        name ? name.textContent.trim() : ex.getAttribute("id")));
    });
    list.replaceChildren(...items);
  } catch (e) {
    list.replaceChildren(el("li", { class: "banner error" }, e.message));
  }
}
loadExamples();

// ---- running
function maxrec() { return maxrecInput.value.trim(); }

async function runSync() {
  const query = editor.text;
  const fmt = formatSelect.value;
  if (fmt !== "json") {
    try { await save(syncUrl(query, maxrec(), fmt), `result.${fmt}`); } catch (e) { results.error(e.message); }
    return;
  }
  document.getElementById("result-status").replaceChildren("running…");
  const t0 = performance.now();
  try {
    const response = await request(url("tap/sync"), { method: "POST",
      body: form({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, MAXREC: maxrec(), RESPONSEFORMAT: "json" }) });
    if (!response.ok) { results.error(await errorText(response)); return; }
    const doc = parseJson(await response.text());
    if (doc.status === "ERROR") { results.error(doc.error); return; }
    results.show(fromJson(doc), { query, maxrec: maxrec(), elapsedMs: performance.now() - t0, source: "sync" });
  } catch (e) {
    results.error(e.message);
  }
}

async function runAsync() {
  try {
    await jobs.submit(editor.text, maxrec(), formatSelect.value);
    showTab("jobs");
  } catch (e) {
    results.error(e.message);
  }
}

document.getElementById("run-sync").addEventListener("click", runSync);
document.getElementById("run-async").addEventListener("click", runAsync);
