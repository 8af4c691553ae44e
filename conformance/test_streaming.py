"""Streamed results under real client behaviour: big results arrive whole, and clients that hang
up mid-stream (a cancelled download, a client timeout) leave the service healthy."""
from __future__ import annotations

import re

import pytest
import requests

from conformance import uws_client as uws
from conformance.cases import ENDLESS

BIG = "SELECT a.diaSourceId, a.ra, a.dec, a.psfFlux, a.band FROM dp1.DiaSource AS a, dp1.Visit AS v"
SMALL = "SELECT TOP 3 visit FROM dp1.Visit ORDER BY visit"


@pytest.fixture(scope="module")
def tap_url(private_server) -> str:
    return private_server.tap_url


@pytest.fixture
def http(private_server):
    with requests.Session() as s:
        yield s


def status_of(text: str) -> list[str]:
    return re.findall(r'name="QUERY_STATUS"\s+value="(\w+)"', text)


def hang_up(tap_url: str, fmt: str) -> None:
    r = requests.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": BIG, "MAXREC": "1000000",
                                               "RESPONSEFORMAT": fmt}, stream=True, timeout=60)
    assert r.status_code == 200
    next(r.iter_content(1 << 16))
    r.close()


@pytest.mark.parametrize("fmt", ["votable", "votable/b2"])
def test_large_result_complete(http, tap_url, fmt):
    """100k rows (the default MAXREC) of a 1.7M-row join: whole document, OVERFLOW at the end."""
    r = http.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": BIG, "RESPONSEFORMAT": fmt}, timeout=300)
    assert r.status_code == 200
    assert r.text.rstrip().endswith("</VOTABLE>")
    assert status_of(r.text) == ["OK", "OVERFLOW"]
    if fmt == "votable":
        assert r.text.count("<TR>") == 100_000


def test_abort_leaves_service_healthy(http, tap_url):
    for _ in range(3):
        job = uws.submit(http, tap_url, {"QUERY": ENDLESS}, run=True)
        uws.wait_for(http, job, ("EXECUTING",) + uws.FINAL)
        uws.abort(http, job)
        assert uws.wait_for(http, job) == "ABORTED"
        http.delete(job, allow_redirects=False)
    for _ in range(6):
        r = http.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": SMALL}, timeout=60)
        assert r.status_code == 200, r.text[-400:]
    job = uws.submit(http, tap_url, {"QUERY": SMALL}, run=True)
    assert uws.wait_for(http, job) == "COMPLETED"
    http.delete(job, allow_redirects=False)


@pytest.mark.parametrize("fmt", ["votable", "votable/b2", "csv", "fits", "parquet"])
def test_hang_up_mid_stream_leaves_service_healthy(tap_url, fmt):
    """Last in this module: when it fails, the service it used is broken for what follows."""
    for _ in range(3):
        hang_up(tap_url, fmt)
    with requests.Session() as s:
        for _ in range(6):
            r = s.post(tap_url + "/sync", data={"LANG": "ADQL", "QUERY": SMALL}, timeout=60)
            assert r.status_code == 200, r.text[-400:]
            assert status_of(r.text) == ["OK"]
