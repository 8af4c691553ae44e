"""STILTS votlint on what /tap/sync and /tap/async write: no errors and no warnings.

Every table in both encodings (so every column type the service has), NULLs, an overflowed
result, MAXREC=0, an upload join, and the error documents.
"""
from __future__ import annotations

import subprocess
import time
import warnings

import pytest
import requests

pytestmark = pytest.mark.stilts

TABLES = ["ivoa.ObsCore", "dp1.DiaSource", "dp1.DiaObject", "dp1.Visit", "TAP_SCHEMA.schemas",
          "TAP_SCHEMA.tables", "TAP_SCHEMA.columns", "TAP_SCHEMA.keys", "TAP_SCHEMA.key_columns"]


class VotlintInfo(UserWarning):
    """An INFO line from votlint: allowed, shown in the warnings summary."""


ENCODINGS = {"tabledata": "application/x-votable+xml",
             "binary2": "application/x-votable+xml;serialization=BINARY2"}


def votlint(stilts: str, path) -> list[str]:
    """Every line votlint prints: ``ERROR (l.N, c.M): ...``, ``WARNING ...``, ``INFO ...``."""
    proc = subprocess.run([stilts, "votlint", f"votable={path}", "ucd=true", "unit=true"],
                          capture_output=True, text=True, timeout=120)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


def check(stilts, tmp_path, name: str, content: bytes) -> None:
    """No ERROR or WARNING (or anything unrecognised); INFO lines become pytest warnings."""
    path = tmp_path / f"{name}.vot"
    path.write_bytes(content)
    lines = votlint(stilts, path)
    for line in lines:
        if line.startswith("INFO"):
            warnings.warn(VotlintInfo(f"{name}: {line}"), stacklevel=2)
    problems = [line for line in lines if not line.startswith("INFO")]
    assert not problems, f"votlint on {name} ({path}):\n" + "\n".join(problems[:60])


def sync(tap_url: str, query: str, **params) -> requests.Response:
    return requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": query, **params}, timeout=120)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("table", TABLES)
def test_every_table(stilts, tap_url, tmp_path, table, encoding):
    r = sync(tap_url, f"SELECT TOP 20 * FROM {table}", RESPONSEFORMAT=ENCODINGS[encoding])
    assert r.status_code == 200, r.text[:300]
    check(stilts, tmp_path, f"{table}-{encoding}", r.content)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_nulls_and_expressions(stilts, tap_url, tmp_path, encoding):
    query = ("SELECT TOP 30 diaSourceId, ssObjectId, band, ra * 2 AS ra2, COORD1(POINT('ICRS', ra, dec)) AS c1, "
             "POINT('ICRS', ra, dec) AS pos, CIRCLE('ICRS', ra, dec, 0.01) AS circ, isDipole, time_processed, "
             "midpointMjdTai - 60000 AS mjd, 'text' AS lit, 1 AS one, NULL AS nothing FROM dp1.DiaSource")
    r = sync(tap_url, query, RESPONSEFORMAT=ENCODINGS[encoding])
    assert r.status_code == 200, r.text[:300]
    check(stilts, tmp_path, f"expressions-{encoding}", r.content)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_overflow_and_maxrec_zero(stilts, tap_url, tmp_path, encoding):
    for maxrec in ("5", "0"):
        r = sync(tap_url, "SELECT diaSourceId, ra, dec FROM dp1.DiaSource", MAXREC=maxrec,
                 RESPONSEFORMAT=ENCODINGS[encoding])
        assert r.status_code == 200
        assert b'"OVERFLOW"' in r.content
        check(stilts, tmp_path, f"maxrec{maxrec}-{encoding}", r.content)


def test_error_documents(stilts, tap_url, tmp_path):
    bad = {
        "adql": {"LANG": "ADQL", "QUERY": "SELECT raa FROM dp1.DiaSource"},
        "syntax": {"LANG": "ADQL", "QUERY": "DUFF QUERY"},
        "lang": {"LANG": "OOBLECK", "QUERY": "SELECT TOP 1 ra FROM dp1.DiaSource"},
        "noquery": {"LANG": "ADQL"},
        "maxrec": {"LANG": "ADQL", "QUERY": "SELECT TOP 1 ra FROM dp1.DiaSource", "MAXREC": "lots"},
    }
    for name, params in bad.items():
        r = requests.post(tap_url + "/sync", data=params, timeout=60)
        assert r.status_code == 400, (name, r.status_code)
        assert b'"ERROR"' in r.content, name
        check(stilts, tmp_path, f"error-{name}", r.content)
    r = requests.get(tap_url + "/async/no-such-job", timeout=60)
    assert r.status_code == 404
    check(stilts, tmp_path, "error-404", r.content)


def test_upload_result(stilts, tap_url, tmp_path):
    upload = (b'<?xml version="1.0"?><VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
              b'<RESOURCE><TABLE><FIELD name="id" datatype="long"/><FIELD name="ra" datatype="double" unit="deg"/>'
              b'<FIELD name="dec" datatype="double" unit="deg"/><FIELD name="note" datatype="char" arraysize="*"/>'
              b'<DATA><TABLEDATA><TR><TD>1</TD><TD>53.1</TD><TD>-27.8</TD><TD>a &amp; b</TD></TR>'
              b'<TR><TD>2</TD><TD>53.2</TD><TD>-27.7</TD><TD/></TR></TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>')
    r = requests.post(tap_url + "/sync", data={"LANG": "ADQL", "UPLOAD": "t1,param:t1",
                                               "QUERY": "SELECT * FROM TAP_UPLOAD.t1"},
                      files={"t1": ("t1.vot", upload, "application/x-votable+xml")}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    check(stilts, tmp_path, "upload", r.content)


def test_async_result_and_error(stilts, tap_url, tmp_path):
    for name, query in (("ok", "SELECT TOP 10 * FROM dp1.Visit"), ("error", "SELECT raa FROM dp1.DiaSource")):
        r = requests.post(tap_url + "/async", data={"LANG": "ADQL", "QUERY": query, "PHASE": "RUN"},
                          allow_redirects=False, timeout=60)
        assert r.status_code == 303
        job = tap_url + "/async/" + r.headers["location"].rsplit("/", 1)[-1]
        deadline = time.monotonic() + 120
        phase = ""
        while phase not in ("COMPLETED", "ERROR", "ABORTED") and time.monotonic() < deadline:
            requests.get(job, params={"WAIT": "5"}, timeout=60)
            phase = requests.get(job + "/phase", timeout=60).text.strip()
        if name == "ok":
            assert phase == "COMPLETED"
            content = requests.get(job + "/results/result", timeout=60).content
        else:
            assert phase == "ERROR"
            content = requests.get(job + "/error", timeout=60).content
        check(stilts, tmp_path, f"async-{name}", content)
        requests.delete(job, timeout=60)
