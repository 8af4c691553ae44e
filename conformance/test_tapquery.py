"""STILTS tapquery (TOPCAT's TAP client code) against the running server: sync, async, uploads."""
from __future__ import annotations

import subprocess

import pytest
from astropy.table import Table

from conformance import cases
from conformance.cases import CROSSMATCH, CROSSMATCH_JOIN, TUTORIAL, TUTORIAL_WHERE, pairs

pytestmark = pytest.mark.stilts
TIMEOUT_S = 300


def tapquery(stilts: str, tap_url: str, adql: str, out, *extra: str) -> subprocess.CompletedProcess:
    cmd = [stilts, "tapquery", f"tapurl={tap_url}", f"adql={adql}", f"out={out}", "ofmt=votable",
           *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def truth(catalog) -> set[int]:
    return {r[0] for r in catalog.sql(f"SELECT diaSourceId FROM dp1.DiaSource WHERE {TUTORIAL_WHERE}").fetchall()}


@pytest.fixture(scope="module")
def upload_case(catalog):
    return cases.upload_case(catalog)


@pytest.mark.parametrize("sync", ["true", "false"])
def test_tutorial_query(stilts, tap_url, tmp_path, truth, sync):
    out = tmp_path / "out.vot"
    proc = tapquery(stilts, tap_url, TUTORIAL, out, f"sync={sync}")
    assert proc.returncode == 0, proc.stderr
    table = Table.read(out, format="votable")
    assert table.colnames == ["ra", "dec", "diaSourceId"]
    assert sorted(int(x) for x in table["diaSourceId"]) == sorted(truth)


@pytest.mark.parametrize("sync", ["true", "false"])
def test_maxrec(stilts, tap_url, tmp_path, sync):
    out = tmp_path / "out.vot"
    proc = tapquery(stilts, tap_url, "SELECT diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId", out,
                    f"sync={sync}", "maxrec=25")
    assert proc.returncode == 0, proc.stderr
    assert len(Table.read(out, format="votable")) == 25


@pytest.mark.parametrize("sync, upformat", [("true", "TABLEDATA"), ("false", "TABLEDATA"),
                                            ("true", "BINARY"), ("true", "BINARY2")])
def test_upload_crossmatch(stilts, tap_url, tmp_path, upload_case, sync, upformat):
    table, expected = upload_case
    up = tmp_path / "t1.vot"
    table.write(up, format="votable")
    out = tmp_path / "out.vot"
    query = CROSSMATCH if sync == "true" else CROSSMATCH_JOIN
    proc = tapquery(stilts, tap_url, query, out, f"sync={sync}", "nupload=1", f"upload1={up}",
                    "ufmt1=votable", "upname1=t1", f"upvotformat={upformat}")
    assert proc.returncode == 0, proc.stderr
    assert pairs(Table.read(out, format="votable")) == expected


def test_bad_query_reports_our_message(stilts, tap_url, tmp_path):
    proc = tapquery(stilts, tap_url, "SELECT raa FROM dp1.DiaSource", tmp_path / "out.vot", "sync=true")
    assert proc.returncode != 0
    assert "raa" in proc.stderr, proc.stderr
