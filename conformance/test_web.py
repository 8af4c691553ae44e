"""The web page in a real browser: Debian's chromium driven by playwright against a real
``diavo serve`` on the small demo archive. Every flow of the page: an example run and its rows,
a sky plot, a misspelt column marked at its position, an async job to COMPLETED, a DiaObject's
light curve, an image search at the tutorial's position with its preview and cutout, the table
browser, 10,000 rows paged, and a token server. Each test saves a screenshot in its tmp_path.

Skipped without chromium or playwright, unless DIAVO_REQUIRE_CHROMIUM=1 (CI), which fails instead.
"""
from __future__ import annotations

import os
import shutil

import pytest
import requests

#: How long a flow may take before the test says so (generous: CI machines are shared).
WAIT_MS = 60_000


def _chromium() -> str:
    path = shutil.which("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = "chromium and playwright are needed (Debian: apt-get install chromium; pip install playwright)"
        if os.environ.get("DIAVO_REQUIRE_CHROMIUM", "") not in ("", "0"):
            pytest.fail(message + " and DIAVO_REQUIRE_CHROMIUM is set")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(base_url + "/")
    pg.wait_for_selector("button.example")
    yield pg
    pg.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    context.close()
    assert errors == [], errors


def run(pg, query: str, maxrec: int | None = None) -> None:
    pg.fill("#adql", query)
    if maxrec is not None:
        pg.fill("#maxrec", str(maxrec))
    pg.click("#run-sync")
    pg.wait_for_function("document.querySelector('#result-status').textContent.includes(' columns')"
                         " || document.querySelector('#result-status .error')")


def test_an_example_runs_and_shows_its_rows(page, http, tap_url):
    page.click("button.example[data-id='sources-on-one-image']")
    query = page.input_value("#adql")
    assert "visit = 2024110800246" in query
    page.click("#run-sync")
    page.wait_for_selector("#result-table tbody tr")
    want = http.get(tap_url + "/sync", params={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "json"}).json()
    shown = page.locator("#result-table tbody tr").count()
    assert shown == min(len(want["data"]), 100) > 0
    headers = page.locator("#result-table thead th").all_inner_texts()
    assert any("psfFlux" in h and "nJy" in h for h in headers)  # units in the header
    first = page.locator("#result-table tbody tr").first.inner_text()
    assert str(want["data"][0][0]) in first
    assert f"{len(want['data'])} rows" in page.inner_text("#result-status")
    link = page.get_attribute("#reproduce", "href")
    assert http.get(link).status_code == 200 and "/tap/sync?" in link


def test_a_sky_plot_is_drawn(page):
    run(page, "SELECT TOP 500 ra, dec, psfFlux FROM dp1.DiaSource")
    page.click("#plot-box summary")
    page.click("#plot-draw")
    page.wait_for_selector("#plot[data-drawn='sky'] .main-svg")
    assert page.locator("#plot .xtitle").text_content().startswith("ra")
    # the points are there: plotly draws scattergl on a canvas, with 500 points in its data
    assert page.evaluate("document.getElementById('plot').data[0].x.length") == 500


def test_a_misspelt_column_is_marked_at_its_position(page):
    page.fill("#adql", "SELECT ra, decc\nFROM dp1.DiaSource")
    page.wait_for_selector("#check.bad")
    text = page.inner_text("#check")
    assert "line 1, column 12" in text and "decc" in text
    assert "dec" in text.split("decc", 1)[1]  # the suggestion
    assert page.locator("#adql-gutter .bad").inner_text() == "1"
    page.fill("#adql", "SELECT ra, dec\nFROM dp1.DiaSource")
    page.wait_for_selector("#check.ok")


def test_an_async_job_runs_to_completed_and_its_result_shows(page):
    page.fill("#adql", "SELECT TOP 7 diaSourceId, band FROM dp1.DiaSource ORDER BY diaSourceId")
    page.click("#run-async")
    page.wait_for_selector("#panel-jobs:not([hidden])")
    page.wait_for_selector("#jobs tbody tr[data-phase='COMPLETED'] button.show")
    row = page.locator("#jobs tbody tr[data-phase='COMPLETED']").first
    assert "SELECT TOP 7" in row.inner_text()
    row.locator("button.show").click()
    page.wait_for_selector("#panel-query:not([hidden]) #result-table tbody tr")
    assert page.locator("#result-table tbody tr").count() == 7
    page.click("#tab-jobs")
    page.locator("#jobs tbody tr[data-phase='COMPLETED'] button.delete").first.click()
    page.wait_for_function("!document.querySelector('#jobs tbody').textContent.includes('SELECT TOP 7')")


def test_a_diaobject_light_curve_is_plotted(page, http, tap_url):
    query = ("SELECT TOP 1 diaObjectId, nDiaSources FROM dp1.DiaObject WHERE nDiaSources >= 3 "
             "ORDER BY nDiaSources DESC, diaObjectId")
    run(page, query)
    object_id = http.get(tap_url + "/sync", params={"LANG": "ADQL", "QUERY": query,
                                                     "RESPONSEFORMAT": "csv"}).text.splitlines()[1].split(",")[0]
    page.click("#result-table button.lightcurve")
    page.wait_for_selector("#lightcurve[data-drawn='lightcurve'] .main-svg")
    assert object_id in page.inner_text("#lightcurve-box")  # the exact 64-bit id, not a rounded one
    points = page.evaluate("document.getElementById('lightcurve').data.reduce((n, t) => n + t.x.length, 0)")
    sources = http.get(tap_url + "/sync", params={"LANG": "ADQL", "RESPONSEFORMAT": "csv", "QUERY":
                       f"SELECT COUNT(*) FROM dp1.DiaSource WHERE diaObjectId = {object_id}"}).text.splitlines()[1]
    assert points == int(sources) >= 3
    assert page.evaluate("document.getElementById('lightcurve').data.every(t => t.error_y.array.length === t.y.length)")


def test_images_at_the_tutorial_position_and_a_preview(page, base_url):
    page.click("#tab-images")
    page.fill("#img-ra", "53.125")
    page.fill("#img-dec", "-27.74")
    page.click("#image-form button[type=submit]")
    page.wait_for_selector("#image-grid button.thumb")
    count = page.locator("#image-grid button.thumb").count()
    sia = requests.get(base_url + "/sia/query", params={"POS": "CIRCLE 53.125 -27.74 0.05", "CALIB": "3",
                                                         "RESPONSEFORMAT": "csv"}).text.splitlines()
    assert count == len(sia) - 1 > 0
    page.locator("#image-grid button.thumb").first.click()
    page.wait_for_selector("#preview-img[data-loaded='1']")
    before = page.get_attribute("#preview-img", "data-request")
    assert "sources=1" in before and "DETECTED" in before
    page.click("#preview-planes input[data-plane='DETECTED']")
    page.wait_for_function(f"document.getElementById('preview-img').dataset.request !== {before!r}")
    page.wait_for_selector("#preview-img[data-loaded='1']")
    assert "DETECTED" not in page.get_attribute("#preview-img", "data-request")
    assert page.evaluate("document.getElementById('preview-img').naturalWidth") > 100
    assert page.locator("#preview-links li").count() > 0  # the DataLink document's links
    with page.expect_download() as download:
        page.click("#cutout-form button[type=submit]")
    path = download.value.path()
    with open(path, "rb") as f:
        assert f.read(9) == b"SIMPLE  ="


def test_the_table_browser_finds_columns_and_inserts_them(page):
    page.fill("#adql", "SELECT  FROM dp1.DiaSource")
    page.evaluate("document.getElementById('adql').setSelectionRange(7, 7)")
    page.click("#tab-tables")
    page.wait_for_selector("#table-tree button[data-table='dp1.DiaSource']")
    page.fill("#table-search", "midpointMjdTai")
    page.click("#table-tree button[data-table='dp1.DiaSource']")
    page.wait_for_selector("#table-detail button.column")
    row = page.locator("#table-detail tbody tr").filter(has_text="midpointMjdTai").first
    assert "d" in row.inner_text().split("\t")  # its unit
    row.locator("button.column").click()
    assert page.input_value("#adql") == "SELECT midpointMjdTai FROM dp1.DiaSource"


def test_ten_thousand_rows_are_paged(page):
    run(page, "SELECT TOP 10000 diaSourceId, ra, dec FROM dp1.DiaSource ORDER BY diaSourceId", maxrec=20000)
    assert page.locator("#result-table tbody tr").count() == 100
    assert "of 10000" in page.inner_text("#pager")
    page.click("#pager button:has-text('next')")
    assert "rows 101–200" in page.inner_text("#pager")
    page.click("#result-table thead button.sort >> nth=0")  # sort by diaSourceId, ascending
    page.click("#result-table thead button.sort >> nth=0")  # ... and descending
    assert "▼" in page.inner_text("#result-table thead")


def test_overflow_is_told(page):
    run(page, "SELECT diaSourceId FROM dp1.DiaSource", maxrec=5)
    assert page.locator("#result-table tbody tr").count() == 5
    assert "MAXREC = 5" in page.inner_text("#result-status .overflow")


TOKEN = "diavo-web-test-token-42"


@pytest.fixture(scope="module")
def token_server(archive_dir, tmp_path_factory):
    from conformance.server_process import ServerProcess

    work = tmp_path_factory.mktemp("web-token-server")
    server = ServerProcess(archive=archive_dir, state_dir=work / "uws", log_path=work / "server.log",
                           extra_env={"DIAVO_TOKENS": f"{TOKEN}:alice"})
    server.start()
    yield server
    server.stop()


def test_a_token_pasted_once_is_sent_on_every_request(browser, token_server, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    try:
        pg.goto(token_server.url + "/")
        pg.wait_for_selector("button.example")  # the page and its examples are public
        run(pg, "SELECT TOP 3 diaSourceId FROM dp1.DiaSource")
        assert "bearer token is required" in pg.inner_text("#result-status .error")
        pg.fill("#token", TOKEN)
        pg.click("#token-form button[type=submit]")
        assert "token is set" in pg.inner_text("#token-state")
        run(pg, "SELECT TOP 3 diaSourceId FROM dp1.DiaSource")
        assert pg.locator("#result-table tbody tr").count() == 3
        pg.click("#tab-images")
        pg.click("#image-form button[type=submit]")
        pg.wait_for_selector("#image-grid button.thumb img[src^='blob:']")  # previews fetched with the token
        pg.reload()  # kept for the browser session
        pg.wait_for_selector("button.example")
        assert "token is set" in pg.inner_text("#token-state")
        pg.click("#token-forget")
        assert "no token" in pg.inner_text("#token-state")
    finally:
        pg.screenshot(path=str(tmp_path / "token.png"), full_page=True)
        context.close()


def test_the_check_endpoint_answers_in_json(http, base_url):
    ok = http.post(base_url + "/ui/check", data={"QUERY": "SELECT ra, dec FROM dp1.DiaSource"}).json()
    assert ok["ok"] and [c["name"] for c in ok["columns"]] == ["ra", "dec"] and ok["columns"][0]["unit"] == "deg"
    bad = http.get(base_url + "/ui/check", params={"QUERY": "SELECT nosuch FROM dp1.DiaSource"})
    assert bad.status_code == 200 and bad.json()["error"]["code"] == "unknown-column"
    assert bad.json()["error"]["line"] == 1 and bad.json()["error"]["column"] == 8
    missing = http.post(base_url + "/ui/check", data={})
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("QUERY")
    assert http.get(base_url + "/ui/static/nosuch.js").status_code == 404
    assert http.get(base_url + "/ui/static/main.js").headers["content-type"].startswith("text/javascript")


def test_the_page_works_from_the_keyboard(page):
    page.focus("#tab-query")
    page.keyboard.press("ArrowRight")
    assert page.is_visible("#panel-tables") and not page.is_visible("#panel-query")
    assert page.evaluate("document.activeElement.id") == "tab-tables"
    page.keyboard.press("ArrowLeft")
    assert page.is_visible("#panel-query")
    page.fill("#adql", "SELECT TOP 4 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId")
    page.focus("#adql")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#result-table tbody tr")
    assert page.locator("#result-table tbody tr").count() == 4
    # every form control has a label a screen reader can announce
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, select, textarea')]
        .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label')).map((c) => c.id || c.name)""")
    assert unlabelled == []
