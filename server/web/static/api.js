// Talking to the service: the base URL, the bearer token (kept for this browser session only)
// and the few document shapes the page reads (TAP+ JSON, VOTable TABLEDATA, UWS).

const TOKEN_KEY = "diavo.token";
export const base = document.documentElement.dataset.base || location.origin;

export function url(path, params) {
  const u = new URL(base + "/" + path.replace(/^\//, ""));
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.toString();
}

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

/** fetch with the session's token on every request. */
export async function request(target, options = {}) {
  const headers = new Headers(options.headers || {});
  const t = token();
  if (t) headers.set("Authorization", "Bearer " + t);
  return fetch(target, { ...options, headers });
}

export function form(params) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") body.set(k, v);
  return body;
}

/** The message of an error response in any of the service's forms (VOTable, JSON, text). */
export async function errorText(response) {
  const text = await response.text();
  try {
    const doc = new DOMParser().parseFromString(text, "application/xml");
    const info = [...doc.getElementsByTagName("INFO")].find((i) => i.getAttribute("name") === "QUERY_STATUS");
    if (info) return (info.textContent || info.getAttribute("value") || "").trim();
  } catch (e) { /* not XML */ }
  try {
    const j = JSON.parse(text);
    if (j.error) return typeof j.error === "string" ? j.error : j.error.message;
  } catch (e) { /* not JSON */ }
  return `${response.status} ${response.statusText}: ${text.slice(0, 300)}`;
}

/** A VOTable's first TABLE (TABLEDATA) as {fields, rows, status, message}. */
export function parseVOTable(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const fields = [...doc.getElementsByTagName("FIELD")].map((f) => ({
    name: f.getAttribute("name"), datatype: f.getAttribute("datatype"), unit: f.getAttribute("unit"),
    ucd: f.getAttribute("ucd"), arraysize: f.getAttribute("arraysize"), id: f.getAttribute("ID"),
  }));
  const rows = [...doc.getElementsByTagName("TR")].map((tr) =>
    [...tr.getElementsByTagName("TD")].map((td, i) => cell(td.textContent, fields[i])));
  const infos = [...doc.getElementsByTagName("INFO")].filter((i) => i.getAttribute("name") === "QUERY_STATUS");
  const last = infos[infos.length - 1];
  return { fields, rows, status: last ? last.getAttribute("value") : "OK", message: last ? last.textContent.trim() : "" };
}

const NUMERIC = new Set(["short", "int", "long", "float", "double", "unsignedByte"]);

function cell(text, field) {
  if (text === "" ) return null;
  if (field && NUMERIC.has(field.datatype) && !field.arraysize) {
    const x = Number(text);
    return Number.isNaN(x) ? null : x;
  }
  return text;
}

export function isNumeric(field) {
  return NUMERIC.has(field.datatype) && (!field.arraysize || field.datatype === "char");
}

/** Save a response body under a file name (downloads carry the token too). */
export async function save(target, name) {
  const response = await request(target);
  if (!response.ok) throw new Error(await errorText(response));
  const blob = await response.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

/** An image URL usable in <img> when the service wants a token (fetched, then a blob URL). */
export async function imageSource(target) {
  if (!token()) return target;
  const response = await request(target);
  if (!response.ok) throw new Error(await errorText(response));
  return URL.createObjectURL(await response.blob());
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

/** JSON with integers beyond 2^53 (DiaSource and DiaObject IDs) kept exact as BigInt. */
export function parseJson(text) {
  return JSON.parse(text, (key, value, context) => {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}
