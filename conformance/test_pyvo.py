"""pyvo, the client astronomers use, against the running server: the tutorial's calls, as written.

Ground truth comes from the archive itself (a read-only DuckDB connection and numpy), never from
the server being tested.
"""
from __future__ import annotations

import re
import time
import warnings

import pytest
import pyvo
from lxml import etree
from pyvo.dal import DALOverflowWarning, DALQueryError

from conformance import cases
from conformance.cases import CROSSMATCH, CROSSMATCH_JOIN, CROSSMATCH_ON, TUTORIAL, TUTORIAL_WHERE, pairs
from conformance.readers import Field, canonical_rows, query_status, read_csv, read_fits, read_parquet, read_votable

UWS_NS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK = "{http://www.w3.org/1999/xlink}href"


@pytest.fixture(scope="module")
def service(tap_url):
    return pyvo.dal.TAPService(tap_url)


@pytest.fixture(scope="module")
def tutorial_ids(catalog) -> set[int]:
    ids = {r[0] for r in catalog.sql(f"SELECT diaSourceId FROM dp1.DiaSource WHERE {TUTORIAL_WHERE}").fetchall()}
    assert ids, "the demo archive lost the tutorial's visit/detector"
    return ids


def ids_of(table, column: str = "diaSourceId") -> list[int]:
    return [int(x) for x in table[column]]


# --- the tutorial ----------------------------------------------------------------------------


def test_tutorial_query_sync(service, tutorial_ids):
    result = service.search(TUTORIAL)
    table = result.to_table()
    assert table.colnames == ["ra", "dec", "diaSourceId"]
    assert len(table) == len(tutorial_ids) > 0
    assert set(ids_of(table)) == tutorial_ids
    assert result.query_status == "OK"


def test_async_the_tutorials_way(service, tutorial_ids, http):
    job = service.submit_job(TUTORIAL)
    assert job.phase == "PENDING"
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"])
    job.raise_if_error()
    assert job.phase == "COMPLETED"
    results = job.fetch_result().to_table()
    assert set(ids_of(results)) == tutorial_ids
    url = job.url
    job.delete()
    assert http.get(url).status_code == 404


def test_run_async(service, tutorial_ids):
    table = service.run_async(TUTORIAL).to_table()
    assert set(ids_of(table)) == tutorial_ids
    assert len(table) == len(tutorial_ids)


def test_async_error_is_reported(service):
    job = service.submit_job("SELECT nosuchcolumn FROM dp1.DiaSource")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"])
    assert job.phase == "ERROR"
    with pytest.raises(DALQueryError, match="nosuchcolumn"):
        job.raise_if_error()
    job.delete()


# --- MAXREC ----------------------------------------------------------------------------------


def test_maxrec_truncation_is_flagged(service):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DALOverflowWarning)
        result = service.search("SELECT TOP 100 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId", maxrec=10)
    assert len(result) == 10
    assert result.query_status == "OVERFLOW"


def test_exact_fit_is_not_overflow(service, tutorial_ids):
    n = len(tutorial_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DALOverflowWarning)
        exact = service.search(TUTORIAL, maxrec=n)
        top = service.search("SELECT TOP 7 diaSourceId FROM dp1.DiaSource", maxrec=7)
    assert len(exact) == n and exact.query_status == "OK"
    assert len(top) == 7 and top.query_status == "OK"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DALOverflowWarning)
        short = service.search(TUTORIAL, maxrec=n - 1)
    assert len(short) == n - 1 and short.query_status == "OVERFLOW"


def test_maxrec_zero_gives_metadata_only(http, tap_url):
    """pyvo drops maxrec=0 (falsy), so raw HTTP: no rows, every FIELD, QUERY_STATUS=OVERFLOW."""
    r = sync_get(http, tap_url, TUTORIAL, MAXREC="0")
    assert r.status_code == 200
    result = read_votable(r.content)
    assert result.names == ["ra", "dec", "diaSourceId"] and result.rows == []
    assert query_status(r.content)[0] == "OVERFLOW"


def test_server_limit_truncation_warns(service):
    """No MAXREC from the client: the service default applies and pyvo warns the user."""
    limit = service.maxrec
    with pytest.warns(DALOverflowWarning):
        result = service.search("SELECT a.diaSourceId FROM dp1.DiaSource AS a, dp1.Visit AS v")
    assert len(result) == limit
    assert result.query_status == "OVERFLOW"


def test_limits_from_capabilities(service, archive_dir):
    from diavo.server.settings import from_environment

    settings = from_environment(archive_dir)
    assert service.maxrec == settings.maxrec_default
    assert service.hardlimit == settings.maxrec_hard
    assert {m.ivo_id.split("#")[-1] for m in service.upload_methods} >= {"upload-inline", "upload-http"}


# --- uploads ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upload_case(catalog):
    return cases.upload_case(catalog)


def test_upload_astropy_table(service, upload_case):
    table, expected = upload_case
    result = service.search(CROSSMATCH, uploads={"t1": table}).to_table()
    assert pairs(result) == expected


def test_upload_votable_file_topcat_style(service, upload_case, tmp_path):
    table, expected = upload_case
    path = tmp_path / "t1.vot"
    table.write(path, format="votable")
    result = service.search(CROSSMATCH_JOIN, uploads={"t1": str(path)}).to_table()
    assert pairs(result) == expected


def test_upload_select_star_join(service, upload_case):
    """TOPCAT's cross-match asks for every column of both tables (ra and dec appear twice)."""
    table, expected = upload_case
    result = service.search("SELECT * FROM TAP_UPLOAD.t1 AS tc JOIN dp1.DiaSource AS ta " + CROSSMATCH_ON,
                            uploads={"t1": table})
    assert len(result) == len(expected)
    assert len(result.fieldnames) == 3 + len(service.tables["dp1.DiaSource"].columns)


def test_upload_async(service, upload_case):
    table, expected = upload_case
    job = service.submit_job(CROSSMATCH, uploads={"t1": table})
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"])
    job.raise_if_error()
    assert pairs(job.fetch_result().to_table()) == expected
    job.delete()


# --- metadata --------------------------------------------------------------------------------


def test_tap_schema_matches_vosi_tables(service):
    vosi = {t.name: [c.name for c in t.columns] for t in service.tables}
    rows = service.search("SELECT table_name FROM TAP_SCHEMA.tables").to_table()
    assert sorted(vosi) == sorted(str(x) for x in rows["table_name"])
    cols = service.search("SELECT table_name, column_name, column_index FROM TAP_SCHEMA.columns").to_table()
    for name, columns in vosi.items():
        mine = cols[cols["table_name"] == name]
        mine.sort("column_index")
        assert [str(c) for c in mine["column_name"]] == columns, name


def test_every_table_answers_select_top(service):
    for t in service.tables:
        result = service.search(f"SELECT TOP 3 * FROM {t.name}")
        assert len(result.to_table().colnames) == len(t.columns), t.name


# --- output formats --------------------------------------------------------------------------


FORMAT_QUERIES = {
    "diasource": ("SELECT TOP 40 diaSourceId, visit, detector, band, ra, dec, psfFlux, psfFluxErr, snr, "
                  "midpointMjdTai, time_processed, isDipole, ssObjectId, pixelFlags_bad "
                  "FROM dp1.DiaSource ORDER BY diaSourceId"),
    "obscore": ("SELECT TOP 12 obs_publisher_did, obs_title, s_region, access_url, t_min, calib_level, "
                "lsst_band FROM ivoa.ObsCore ORDER BY obs_publisher_did"),
}
#: RESPONSEFORMAT value -> reader kind. The full MIME types and the short names DALI suggests.
FORMATS = {
    "votable": "votable",
    "application/x-votable+xml": "votable",
    "votable/b2": "votable",
    "application/x-votable+xml;serialization=BINARY2": "votable",
    "csv": "csv",
    "text/csv": "csv",
    "tsv": "tsv",
    "text/tab-separated-values": "tsv",
    "fits": "fits",
    "application/fits": "fits",
    "parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
}


def read_as(kind: str, content: bytes, fields: list[Field]):
    if kind == "votable":
        res = read_votable(content)
        return res.names, res.rows
    if kind == "csv":
        return read_csv(content)
    if kind == "tsv":
        return read_csv(content, "\t")
    if kind == "fits":
        return read_fits(content)
    if kind == "parquet":
        return read_parquet(content)
    raise AssertionError(kind)


def sync_get(http, tap_url, query, **params):
    r = http.get(tap_url + "/sync", params={"LANG": "ADQL", "QUERY": query, **params}, timeout=120)
    return r


@pytest.fixture(scope="module")
def references(http, tap_url):
    out = {}
    for key, q in FORMAT_QUERIES.items():
        r = sync_get(http, tap_url, q)
        assert r.status_code == 200, r.text[:500]
        out[key] = read_votable(r.content)
    return out


@pytest.mark.parametrize("query", sorted(FORMAT_QUERIES))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_response_format_round_trip(http, tap_url, references, fmt, query):
    ref = references[query]
    r = sync_get(http, tap_url, FORMAT_QUERIES[query], RESPONSEFORMAT=fmt)
    assert r.status_code == 200, f"{fmt}: HTTP {r.status_code}: {r.text[:300]}"
    kind = FORMATS[fmt]
    ctype = r.headers.get("content-type", "")
    if fmt.startswith(("application/", "text/")):
        assert ctype.replace(" ", "").lower().startswith(fmt.replace(" ", "").lower()), ctype
    names, rows = read_as(kind, r.content, ref.fields)
    assert names == ref.names
    assert len(rows) == len(ref.rows)
    assert canonical_rows(rows, ref.fields) == canonical_rows(ref.rows, ref.fields)


def test_declared_formats_all_work(service, http, tap_url):
    """Every outputFormat in the capabilities, by MIME type and by each alias, answers 200."""
    declared = service.get_tap_capability().outputformats
    assert declared
    for f in declared:
        for value in [f.mime, *f.aliases]:
            r = sync_get(http, tap_url, "SELECT TOP 3 diaSourceId, ra FROM dp1.DiaSource", RESPONSEFORMAT=value)
            assert r.status_code == 200, f"{value}: {r.status_code} {r.text[:200]}"
            assert r.headers["content-type"].split(";")[0].strip() == f.mime.split(";")[0].strip(), value


def test_unknown_format_is_an_error(http, tap_url):
    r = sync_get(http, tap_url, "SELECT TOP 1 ra FROM dp1.DiaSource", RESPONSEFORMAT="application/x-nonsense")
    assert r.status_code == 400
    assert query_status(r.content)[0] == "ERROR"


# --- errors ----------------------------------------------------------------------------------


def test_bad_adql_is_a_dalqueryerror_with_our_message(service):
    with pytest.raises(DALQueryError) as err:
        service.search("SELECT raa FROM dp1.DiaSource")
    text = str(err.value)
    assert "raa" in text and "ra" in text.replace("raa", "")
    with pytest.raises(DALQueryError, match=r"(?i)adql|syntax|line|column"):
        service.search("SELECT FROM WHERE")


def test_unknown_table_names_the_table(service):
    with pytest.raises(DALQueryError, match="DiaSorce"):
        service.search("SELECT TOP 1 * FROM dp1.DiaSorce")


# --- behind a reverse proxy --------------------------------------------------------------------


def _wait_final(http, job_url, headers) -> etree._Element:
    deadline = time.monotonic() + 120
    while True:
        r = http.get(job_url, params={"WAIT": "10"}, headers=headers)
        assert r.status_code == 200
        job = etree.fromstring(r.content)
        phase = job.findtext(UWS_NS + "phase")
        if phase in ("COMPLETED", "ERROR", "ABORTED") or time.monotonic() > deadline:
            return job


def test_forwarded_headers_make_every_url(http, tap_url):
    public = "https://archive.example.org:8443"
    headers = {"X-Forwarded-Host": "archive.example.org:8443", "X-Forwarded-Proto": "https"}
    r = http.post(tap_url + "/async", data={"LANG": "ADQL", "QUERY": TUTORIAL, "PHASE": "RUN"},
                  headers=headers, allow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    location = r.headers["location"]
    assert location.startswith(public + "/tap/async/"), location
    job_url = tap_url + "/async/" + location.rsplit("/", 1)[-1]
    job = _wait_final(http, job_url, headers)
    assert job.findtext(UWS_NS + "phase") == "COMPLETED"
    hrefs = [el.get(XLINK) for el in job.iter(UWS_NS + "result")]
    assert hrefs and all(h.startswith(public + "/tap/async/") for h in hrefs), hrefs
    listing = etree.fromstring(http.get(tap_url + "/async", headers=headers).content)
    assert all(el.get(XLINK).startswith(public + "/") for el in listing.iter(UWS_NS + "jobref"))
    caps = http.get(tap_url + "/capabilities", headers=headers).text
    urls = re.findall(r"<accessURL[^>]*>([^<]+)</accessURL>", caps)
    assert urls and all(u.strip().startswith(public + "/") for u in urls), urls
    # Without the headers the same job shows the server's own address.
    plain = etree.fromstring(http.get(job_url).content)
    assert all(el.get(XLINK).startswith(tap_url) for el in plain.iter(UWS_NS + "result"))
    assert http.delete(job_url, allow_redirects=False).status_code in (200, 204, 303)
