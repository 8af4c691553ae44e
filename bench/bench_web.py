"""The web page in Debian's chromium (playwright): page load and a 10,000-row result (prints
numbers; asserts only that the page did what was asked).

    python bench/bench_web.py --archive DIR [--repeat 10]

Starts ``diavo serve DIR`` on loopback, then in a fresh browser context each time: the page load
(navigation start to the load event, HTML + CSS + our scripts; plotly.js is fetched only by the
first plot) and until the examples are listed (one more request, /tap/examples); a 10,000-row
query from the click on Run to the first page of the table drawn; turning a page and sorting
the 10,000 rows (the page's main thread, so whether it freezes); the first sky plot of those
rows (plotly.js loaded and drawn). Medians over ``--repeat``.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUERY = "SELECT TOP 10000 diaSourceId, ra, dec, band, psfFlux, midpointMjdTai FROM dp1.DiaSource ORDER BY diaSourceId"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from conformance.server_process import ServerProcess

    with tempfile.TemporaryDirectory() as work:
        server = ServerProcess(archive=args.archive, state_dir=Path(work) / "uws", log_path=Path(work) / "log")
        server.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                figures: dict[str, list[float]] = {}
                for _ in range(args.repeat):
                    for name, value in one_run(browser, server.url).items():
                        figures.setdefault(name, []).append(value)
                browser.close()
        finally:
            server.stop()
    for name, values in figures.items():
        print(f"  {name:44s} median {statistics.median(values):8.1f} ms   "
              f"(min {min(values):.1f}, max {max(values):.1f})")


def one_run(browser, url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("button.example")
    load = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0]; "
                         "return n.loadEventEnd - n.startTime; })()")
    examples = page.evaluate("performance.now()")
    page.fill("#adql", QUERY)
    page.fill("#maxrec", "20000")
    t = page.evaluate("""() => new Promise((resolve) => {
        const t0 = performance.now();
        new MutationObserver((_, obs) => {
          if (document.querySelectorAll('#result-table tbody tr').length === 100) {
            obs.disconnect(); resolve(performance.now() - t0);
          }
        }).observe(document.getElementById('result-table'), { childList: true, subtree: true });
        document.getElementById('run-sync').click();
    })""")
    assert "of 10000" in page.inner_text("#pager")
    turn = page.evaluate("""() => { const t0 = performance.now();
        [...document.querySelectorAll('#pager button')].pop().click(); return performance.now() - t0; }""")
    sort = page.evaluate("""() => { const t0 = performance.now();
        document.querySelectorAll('#result-table thead button.sort')[3].click(); return performance.now() - t0; }""")
    assert "rows 1–100 of 10000" in page.inner_text("#pager")
    page.click("#plot-box summary")
    t0 = page.evaluate("performance.now()")
    page.click("#plot-draw")
    page.wait_for_selector("#plot[data-drawn='sky'] .main-svg")
    plot = page.evaluate("performance.now()") - t0
    context.close()
    return {"page load (HTML + assets)": load, "page ready with examples": examples,
            "10,000 rows: Run to table drawn": t, "turn a page of 10,000": turn, "sort 10,000 rows": sort,
            "first sky plot of 10,000 (plotly.js loaded)": plot}


if __name__ == "__main__":
    main()
