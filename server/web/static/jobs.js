// Async jobs (UWS 1.1 at /tap/async): submit, list with phase and elapsed time, abort, delete,
// and open a finished job's result in the page.
import { el, errorText, form, parseJson, request, save, url } from "./api.js";

const UWS = "http://www.ivoa.net/xml/UWS/v1.0";
const XLINK = "http://www.w3.org/1999/xlink";
const ACTIVE = new Set(["PENDING", "QUEUED", "EXECUTING"]);

function text(node, name) {
  const found = node.getElementsByTagNameNS(UWS, name)[0];
  return found ? found.textContent.trim() : "";
}

async function xml(target) {
  const response = await request(target);
  if (!response.ok) throw new Error(await errorText(response));
  return new DOMParser().parseFromString(await response.text(), "application/xml");
}

function elapsed(job) {
  if (!job.start) return "";
  const end = job.end ? Date.parse(job.end) : Date.now();
  return `${((end - Date.parse(job.start)) / 1000).toFixed(1)} s`;
}

export function setupJobs({ onResult }) {
  const body = document.querySelector("#jobs tbody");
  const status = document.getElementById("jobs-status");
  let timer = null;

  async function details(href) {
    const doc = await xml(href);
    const params = [...doc.getElementsByTagNameNS(UWS, "parameter")];
    const param = (id) => { const p = params.find((q) => q.getAttribute("id").toLowerCase() === id); return p ? p.textContent : ""; };
    const results = [...doc.getElementsByTagNameNS(UWS, "result")].map((r) => r.getAttributeNS(XLINK, "href"));
    return { href, id: text(doc, "jobId"), phase: text(doc, "phase"), created: text(doc, "creationTime"),
      start: text(doc, "startTime"), end: text(doc, "endTime"), query: param("query"), format: param("responseformat"),
      maxrec: param("maxrec"), results, error: text(doc, "message") };
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const doc = await xml(url("tap/async"));
      const refs = [...doc.getElementsByTagNameNS(UWS, "jobref")];
      const jobs = await Promise.all(refs.map((r) => details(r.getAttributeNS(XLINK, "href") || url(`tap/async/${r.getAttribute("id")}`))));
      jobs.sort((a, b) => (b.created || "").localeCompare(a.created || ""));
      body.replaceChildren(...jobs.map(row));
      status.replaceChildren(`${jobs.length} job${jobs.length === 1 ? "" : "s"}`);
      if (jobs.some((j) => ACTIVE.has(j.phase))) timer = setTimeout(refresh, 1000);
    } catch (e) {
      status.replaceChildren(el("span", { class: "banner error" }, e.message));
    }
  }

  function row(job) {
    const actions = [];
    if (ACTIVE.has(job.phase)) {
      actions.push(el("button", { type: "button", class: "abort", onclick: async () => {
        await request(job.href + "/phase", { method: "POST", body: form({ PHASE: "ABORT" }) }); refresh(); } }, "abort"));
    }
    if (job.phase === "COMPLETED" && job.results.length) {
      const result = job.results[0];
      if ((job.format || "").toLowerCase().includes("json")) {
        actions.push(el("button", { type: "button", class: "show", onclick: async () => {
          const response = await request(result);
          if (!response.ok) { status.replaceChildren(await errorText(response)); return; }
          onResult(parseJson(await response.text()), job);
        } }, "show"));
      }
      actions.push(el("button", { type: "button", onclick: () => save(result, `${job.id}-result`) }, "download"));
    }
    actions.push(el("button", { type: "button", class: "delete", onclick: async () => {
      await request(job.href, { method: "DELETE" }); refresh(); } }, "delete"));
    return el("tr", { "data-job": job.id, "data-phase": job.phase },
      el("td", {}, el("a", { href: job.href }, job.id)),
      el("td", { class: "phase" }, job.phase + (job.phase === "ERROR" && job.error ? `: ${job.error}` : "")),
      el("td", {}, job.created.replace("T", " ").replace(/\.\d+/, "")),
      el("td", {}, elapsed(job)),
      el("td", { class: "query", title: job.query }, job.query.length > 80 ? job.query.slice(0, 80) + "…" : job.query),
      el("td", {}, actions));
  }

  async function submit(query, maxrec, format) {
    const response = await request(url("tap/async"), { method: "POST",
      body: form({ LANG: "ADQL", REQUEST: "doQuery", QUERY: query, MAXREC: maxrec, RESPONSEFORMAT: format, PHASE: "RUN" }) });
    if (!response.ok) throw new Error(await errorText(response));
    await refresh();
    return response.url;
  }

  document.getElementById("jobs-refresh").addEventListener("click", refresh);
  return { refresh, submit };
}
