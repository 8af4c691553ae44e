// Plots with the plotly.js the server serves from the installed plotly package, loaded on the
// first plot so the page itself stays light.
import { base, el, errorText, form, isNumeric, parseJson, request, url } from "./api.js";

let loading = null;
function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = base + "/ui/vendor/plotly.min.js";
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => { loading = null; reject(new Error("plotly.js could not be loaded from the server")); };
      document.head.append(s);
    });
  }
  return loading;
}

const BAND_COLOURS = { u: "#56b4e9", g: "#009e73", r: "#d55e00", i: "#cc79a7", z: "#7f7f7f", y: "#e69f00" };
const LAYOUT = { margin: { l: 60, r: 20, t: 30, b: 50 }, font: { family: "system-ui, sans-serif", size: 13 } };

function positionColumns(fields) {
  const by = (pred) => fields.findIndex(pred);
  let ra = by((f) => (f.ucd || "").split(";")[0] === "pos.eq.ra");
  let dec = by((f) => (f.ucd || "").split(";")[0] === "pos.eq.dec");
  if (ra < 0) ra = by((f) => ["ra", "s_ra", "coord_ra"].includes(f.name.toLowerCase()));
  if (dec < 0) dec = by((f) => ["dec", "s_dec", "coord_dec"].includes(f.name.toLowerCase()));
  return ra >= 0 && dec >= 0 ? [ra, dec] : null;
}

export function setupPlots() {
  const kind = document.getElementById("plot-kind");
  const xs = document.getElementById("plot-x");
  const ys = document.getElementById("plot-y");
  const target = document.getElementById("plot");
  const box = document.getElementById("plot-box");
  let current = null;

  function label(f) { return f.name + (f.unit ? ` [${f.unit}]` : ""); }

  function fill(result) {
    current = result;
    const numeric = result.fields.map((f, i) => [f, i]).filter(([f]) => isNumeric(f));
    const options = numeric.map(([f, i]) => el("option", { value: i }, label(f)));
    xs.replaceChildren(...options.map((o) => o.cloneNode(true)));
    ys.replaceChildren(...options);
    if (numeric.length > 1) ys.selectedIndex = 1;
    const pos = positionColumns(result.fields);
    kind.value = pos ? "sky" : "scatter";
    if (pos) { xs.value = pos[0]; ys.value = pos[1]; }
  }

  async function draw() {
    if (!current) return;
    const P = await plotly();
    const x = Number(xs.value), y = Number(ys.value);
    const col = (i) => current.rows.map((r) => (r[i] === null ? null : Number(r[i])));
    const f = current.fields;
    if (kind.value === "histogram") {
      await P.newPlot(target, [{ type: "histogram", x: col(x), marker: { color: "#1f5fa8" } }],
        { ...LAYOUT, xaxis: { title: { text: label(f[x]) } }, yaxis: { title: { text: "rows" } } }, { responsive: true });
    } else if (kind.value === "sky") {
      const pos = positionColumns(f) || [x, y];
      const decs = col(pos[1]).filter((d) => d !== null);
      const mid = decs.length ? decs.reduce((a, b) => a + b, 0) / decs.length : 0;
      await P.newPlot(target, [{ type: "scattergl", mode: "markers", x: col(pos[0]), y: col(pos[1]),
        marker: { size: 4, color: "#1f5fa8" }, name: "rows" }],
        { ...LAYOUT, xaxis: { title: { text: label(f[pos[0]]) }, autorange: "reversed" },
          yaxis: { title: { text: label(f[pos[1]]) }, scaleanchor: "x", scaleratio: 1 / Math.max(0.05, Math.cos(mid * Math.PI / 180)) } },
        { responsive: true });
    } else {
      await P.newPlot(target, [{ type: "scattergl", mode: "markers", x: col(x), y: col(y), marker: { size: 4, color: "#1f5fa8" } }],
        { ...LAYOUT, xaxis: { title: { text: label(f[x]) } }, yaxis: { title: { text: label(f[y]) } } }, { responsive: true });
    }
    target.dataset.drawn = kind.value;
  }

  document.getElementById("plot-draw").addEventListener("click", draw);
  return {
    fill,
    async drawIfOpen() { if (box.open) await draw(); },
    async drawSky() { box.open = true; kind.value = "sky"; await draw(); },
  };
}

/** A DiaObject's light curve: psfFlux with errors against midpointMjdTai, one trace per band. */
export async function lightCurve(objectId) {
  const box = document.getElementById("lightcurve-box");
  const status = document.getElementById("lightcurve-status");
  const target = document.getElementById("lightcurve");
  box.hidden = false;
  status.replaceChildren(`loading the DiaSources of DiaObject ${objectId}…`);
  const query = "SELECT midpointMjdTai, psfFlux, psfFluxErr, band FROM dp1.DiaSource " +
    `WHERE diaObjectId = ${BigInt(objectId).toString()} ORDER BY midpointMjdTai`;
  const response = await request(url("tap/sync"), { method: "POST",
    body: form({ REQUEST: "doQuery", LANG: "ADQL", QUERY: query, RESPONSEFORMAT: "json", MAXREC: 100000 }) });
  if (!response.ok) { status.replaceChildren(await errorText(response)); return; }
  const doc = parseJson(await response.text());
  const bands = {};
  for (const [t, flux, err, band] of doc.data) {
    const b = (bands[band] ||= { x: [], y: [], e: [] });
    b.x.push(Number(t)); b.y.push(flux); b.e.push(err);
  }
  const P = await plotly();
  const traces = Object.entries(bands).map(([band, b]) => ({ type: "scatter", mode: "markers", name: band,
    x: b.x, y: b.y, error_y: { type: "data", array: b.e, visible: true }, marker: { color: BAND_COLOURS[band] || "#333", size: 7 } }));
  const unit = (doc.metadata[1] && doc.metadata[1].unit) || "";
  await P.newPlot(target, traces, { ...LAYOUT, title: { text: `DiaObject ${objectId}` },
    xaxis: { title: { text: "midpointMjdTai [d]" }, tickformat: ".2f", exponentformat: "none" }, yaxis: { title: { text: `psfFlux${unit ? ` [${unit}]` : ""}` } } }, { responsive: true });
  status.replaceChildren(`${doc.data.length} DiaSources in ${Object.keys(bands).length} band${Object.keys(bands).length === 1 ? "" : "s"}`);
  target.dataset.drawn = "lightcurve";
  box.scrollIntoView({ block: "nearest" });
}
