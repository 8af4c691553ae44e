// Image search (SIA 2.0 under the hood): thumbnails of the matching difference images with
// visit, detector, band and time; a preview with mask planes toggled and the DiaSources circled,
// a SODA cutout and the image's DataLink document.
import { el, errorText, imageSource, parseVOTable, request, save, url } from "./api.js";

const THUMB = 192;
const PREVIEW = 800;

function rowObjects(table) {
  const names = table.fields.map((f) => f.name.toLowerCase());
  return table.rows.map((r) => Object.fromEntries(r.map((v, i) => [names[i], v])));
}

async function votable(target) {
  const response = await request(target);
  if (!response.ok) throw new Error(await errorText(response));
  const table = parseVOTable(await response.text());
  if (table.status === "ERROR") throw new Error(table.message);
  return table;
}

export function setupImages() {
  const formEl = document.getElementById("image-form");
  const status = document.getElementById("image-status");
  const grid = document.getElementById("image-grid");
  const preview = document.getElementById("preview");
  const img = document.getElementById("preview-img");
  const planesBox = document.getElementById("preview-planes");
  const sources = document.getElementById("preview-sources");
  const meta = document.getElementById("preview-meta");
  const linksBox = document.getElementById("preview-links");
  const planes = (planesBox.dataset.planes || "").split(",").filter(Boolean).map((p) => p.split(":"));
  let current = null;

  planesBox.append(...planes.map(([name, colour]) => el("label", {},
    el("input", { type: "checkbox", value: name, "data-plane": name, checked: ["DETECTED", "SAT", "BAD"].includes(name) }),
    el("span", { class: "swatch", style: `background:${colour}` }), name)));
  planesBox.addEventListener("change", () => current && draw());
  sources.addEventListener("change", () => current && draw());

  async function draw() {
    const chosen = [...planesBox.querySelectorAll("input:checked")].map((i) => i.value);
    const src = url(`images/${current.lsst_visit}/${current.lsst_detector}.png`,
      { size: PREVIEW, mask: chosen.length ? chosen.join(",") : "0", sources: sources.checked ? "1" : "0" });
    img.dataset.loaded = "";
    img.onload = () => { img.dataset.loaded = "1"; };
    img.src = await imageSource(src);
    img.dataset.request = src;
  }

  async function open(image) {
    current = image;
    preview.hidden = false;
    document.getElementById("preview-title").textContent =
      `Visit ${image.lsst_visit}, detector ${image.lsst_detector}, band ${image.lsst_band || "?"}`;
    document.getElementById("cut-ra").value = Number(image.s_ra).toFixed(5);
    document.getElementById("cut-dec").value = Number(image.s_dec).toFixed(5);
    meta.replaceChildren(el("p", {}, `MJD ${Number(image.t_min).toFixed(5)} – ${Number(image.t_max).toFixed(5)}`),
      el("p", {}, image.obs_publisher_did));
    const dl = url("datalink/links", { ID: image.obs_publisher_did });
    linksBox.replaceChildren(el("h3", {}, "DataLink"), el("p", {}, el("a", { href: dl, id: "datalink-doc" }, "the DataLink document")));
    try {
      const links = rowObjects(await votable(dl));
      linksBox.append(el("ul", { class: "links" }, links.map((l) => el("li", {},
        l.access_url ? el("a", { href: l.access_url }, l.semantics || l.access_url) : (l.semantics || ""),
        l.description ? ` – ${l.description}` : ""))));
    } catch (e) {
      linksBox.append(el("p", { class: "banner error" }, e.message));
    }
    await draw();
    preview.scrollIntoView({ block: "nearest" });
  }

  document.getElementById("cutout-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!current) return;
    const ra = document.getElementById("cut-ra").value, dec = document.getElementById("cut-dec").value;
    const r = document.getElementById("cut-size").value;
    try {
      await save(url("soda/sync", { ID: current.obs_publisher_did, CIRCLE: `${ra} ${dec} ${r}` }),
        `cutout-${current.lsst_visit}-${current.lsst_detector}.fits`);
    } catch (e) {
      meta.append(el("p", { class: "banner error", role: "alert" }, e.message));
    }
  });

  formEl.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (id) => document.getElementById(id).value.trim();
    const params = { POS: `CIRCLE ${v("img-ra")} ${v("img-dec")} ${v("img-radius") || 0}`, LSST_BAND: v("img-band"),
      CALIB: 3, MAXREC: 200 };
    if (v("img-tmin") || v("img-tmax")) params.TIME = `${v("img-tmin") || "-Inf"} ${v("img-tmax") || "+Inf"}`;
    status.replaceChildren("searching…");
    grid.replaceChildren();
    try {
      const images = rowObjects(await votable(url("sia/query", params)))
        .filter((r) => !r.dataproduct_subtype || r.dataproduct_subtype === "lsst.difference_image");
      status.replaceChildren(`${images.length} difference image${images.length === 1 ? "" : "s"}`);
      for (const image of images) {
        const thumb = el("img", { alt: `visit ${image.lsst_visit} detector ${image.lsst_detector}`, loading: "lazy" });
        grid.append(el("li", {}, el("button", { type: "button", class: "thumb", "data-visit": image.lsst_visit,
          "data-detector": image.lsst_detector, onclick: () => open(image) }, thumb,
          el("div", { class: "meta" }, `visit ${image.lsst_visit} · detector ${image.lsst_detector}`),
          el("div", { class: "meta" }, `band ${image.lsst_band || "?"} · MJD ${Number(image.t_min).toFixed(4)}`))));
        imageSource(url(`images/${image.lsst_visit}/${image.lsst_detector}.png`, { size: THUMB, mask: "0", sources: "0" }))
          .then((src) => { thumb.src = src; }).catch(() => { thumb.alt += " (no preview)"; });
      }
    } catch (e) {
      status.replaceChildren(el("span", { class: "banner error", role: "alert" }, e.message));
    }
  });
}
