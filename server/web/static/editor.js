// The ADQL editor: line numbers, and the service's own parser and checker as the user types
// (/ui/check), marking an error at its line and column with the message and suggestion.
import { el, form, request, url } from "./api.js";

const DELAY_MS = 300;

export function setupEditor({ onRun }) {
  const area = document.getElementById("adql");
  const gutter = document.getElementById("adql-gutter");
  const status = document.getElementById("check");
  let timer = null;
  let serial = 0;
  let badLine = 0;

  function drawGutter() {
    const n = area.value.split("\n").length;
    gutter.replaceChildren(...Array.from({ length: n }, (_, i) => {
      const line = i + 1;
      const span = el("span", line === badLine ? { class: "bad" } : {}, String(line));
      return [span, "\n"];
    }).flat());
  }

  function offsetOf(line, column) {
    const lines = area.value.split("\n");
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
    return offset + Math.max(0, column - 1);
  }

  function show(result) {
    if (result.ok) {
      badLine = 0;
      status.className = "check ok";
      const names = result.columns.map((c) => c.name + (c.unit ? ` [${c.unit}]` : ""));
      status.replaceChildren(`Valid ADQL: ${names.length} column${names.length === 1 ? "" : "s"} (${names.slice(0, 8).join(", ")}${names.length > 8 ? ", …" : ""})`);
    } else {
      const e = result.error;
      badLine = e.line || 0;
      status.className = "check bad";
      const where = e.line ? `line ${e.line}, column ${e.column}: ` : "";
      const parts = [where + e.message + (e.hint ? ` (${e.hint})` : "")];
      if (e.line) {
        parts.push(" ", el("button", { type: "button", class: "goto", onclick: () => {
          const at = offsetOf(e.line, e.column);
          area.focus();
          area.setSelectionRange(at, Math.min(at + 1, area.value.length));
        } }, "go there"));
      }
      status.replaceChildren(...parts);
      status.dataset.line = e.line || "";
      status.dataset.column = e.column || "";
    }
    drawGutter();
  }

  async function check() {
    const mine = ++serial;
    const text = area.value;
    if (!text.trim()) { status.replaceChildren(); badLine = 0; drawGutter(); return; }
    try {
      const response = await request(url("ui/check"), { method: "POST", body: form({ QUERY: text }) });
      const result = await response.json();
      if (mine === serial) show(result);
    } catch (e) {
      if (mine === serial) { status.className = "check"; status.replaceChildren(`(could not check: ${e.message})`); }
    }
  }

  area.addEventListener("input", () => {
    drawGutter();
    clearTimeout(timer);
    timer = setTimeout(check, DELAY_MS);
  });
  area.addEventListener("scroll", () => { gutter.scrollTop = area.scrollTop; });
  area.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); onRun(); }
  });
  drawGutter();
  check();

  return {
    get text() { return area.value; },
    set(text) { area.value = text; drawGutter(); check(); },
    insert(text) {
      const start = area.selectionStart, end = area.selectionEnd;
      area.setRangeText(text, start, end, "end");
      area.focus();
      drawGutter();
      clearTimeout(timer);
      timer = setTimeout(check, DELAY_MS);
    },
  };
}
