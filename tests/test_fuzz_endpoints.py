"""Every endpoint's parameters fuzzed (hypothesis, bounded): never a 5xx, every error in its
protocol's own form (DALI/TAP/SIA/DataLink: a VOTable with QUERY_STATUS=ERROR; SODA: text/plain
starting with the fault name; image files: an HTTP 4xx)."""
from __future__ import annotations

import io

import pytest
from astropy.io.votable import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from diavo.server.app import create_app
from diavo.server.settings import Settings

_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Values that have broken services: huge numbers, signs, blanks, controls, markup, ranges, units.
NASTY = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "+5", "1e309", "-1e309", "nan", "inf", "-inf", "1" * 5000,
                     "9" * 19, "0x10", "1,2", "1 2 3", "1 2 3 4 5 6 7", "CIRCLE 1 2 3", "RANGE 0 360 -90 90",
                     "POLYGON 0 0 1 0 1 1", "<x>&amp;\"'", "\x00\x01", "é☃", "2025-01-31T12:00:00Z",
                     "2025-13-45T99:99:99", "ivo://x", "%00", "../../etc/passwd", "a" * 3000]),
    st.text(max_size=40),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@pytest.fixture(scope="module")
def client(small_archive, tmp_path_factory):
    s = Settings(root=small_archive[0], state_dir=tmp_path_factory.mktemp("fuzz-uws"), maxrec_default=50,
                 maxrec_hard=200, sync_timeout_s=10)
    with TestClient(create_app(s), raise_server_exceptions=False) as c:
        yield c


def votable_error(r) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith(("application/x-votable+xml", "text/xml")), r.headers
        vot = parse(io.BytesIO(r.content), verify="ignore")
        status = [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
        assert status == ["ERROR"], r.text[:500]


def params_strategy(names: list[str]):
    return st.dictionaries(st.sampled_from(names), NASTY, max_size=4)


TAP = ["REQUEST", "LANG", "QUERY", "MAXREC", "FORMAT", "RESPONSEFORMAT", "RUNID", "UPLOAD"]


@_SETTINGS
@given(params=params_strategy(TAP))
def test_tap_sync(client, params):
    base = {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 3 ra FROM dp1.DiaSource"}
    r = client.get("/tap/sync", params={**base, **params})
    votable_error(r)
    if r.status_code >= 400 and "MAXREC" in params and "MAXREC" in r.text:
        assert "MAXREC" in r.text  # the parameter at fault is named


@_SETTINGS
@given(params=params_strategy(["PHASE", "EXECUTIONDURATION", "DESTRUCTION", "MAXREC", "QUERY", "LANG"]))
def test_tap_async_create_and_control(client, params):
    r = client.post("/tap/async", data={"REQUEST": "doQuery", "LANG": "ADQL",
                                        "QUERY": "SELECT TOP 1 ra FROM dp1.DiaSource", **params},
                    follow_redirects=False)
    votable_error(r)
    if r.status_code == 303:
        job = r.headers["location"]
        for name in ("executionduration", "destruction", "phase"):
            value = params.get(name.upper(), "1")
            votable_error(client.post(f"{job}/{name}", data={name.upper(): value}, follow_redirects=False))
        votable_error(client.get(job, params={"WAIT": params.get("EXECUTIONDURATION", "0"), "PHASE": "EXECUTING"}))
        client.delete(job)


SIA = ["POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "ID", "COLLECTION", "FACILITY", "INSTRUMENT",
       "DPTYPE", "CALIB", "TARGET", "TIMERES", "SPECRP", "FORMAT", "MAXREC", "VISIT", "DETECTOR", "LSST_BAND",
       "RESPONSEFORMAT"]


@_SETTINGS
@given(params=params_strategy(SIA))
def test_sia(client, params):
    r = client.get("/sia/query", params=params)
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400 and not r.headers["content-type"].startswith("text/plain"):
        votable_error(r)


@_SETTINGS
@given(params=params_strategy(["ID", "MAXREC", "RESPONSEFORMAT"]))
def test_datalink(client, params):
    votable_error(client.get("/datalink/links", params=params))


@_SETTINGS
@given(params=params_strategy(["CIRCLE", "POLYGON", "POS", "PIXEL", "BAND", "TIME", "RESPONSEFORMAT"]))
def test_soda(client, params):
    ident = "ivo://diavo.local/dp1?difference_image/2024110800246/0"
    r = client.get("/soda/sync", params={"ID": ident, **params})
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("text/plain")
        # SODA 1.0 §5.2's error codes
        assert r.text.split(":", 1)[0] in ("Error", "AuthenticationError", "AuthorizationError", "ServiceUnavailable",
                                           "UsageError", "MultiValuedParamNotSupported"), r.text[:200]


@_SETTINGS
@given(size=NASTY, stretch=NASTY, rng=NASTY.filter(lambda v: v.isascii() and v.isprintable()))
def test_image_files(client, size, stretch, rng):
    r = client.get("/images/2024110800246/0.png", params={"size": size, "stretch": stretch})
    assert r.status_code < 500, r.text[:300]
    r = client.get("/images/2024110800246/0.fits", headers={"Range": f"bytes={rng}-{rng}"})
    assert r.status_code < 500 and r.status_code in (200, 206, 416), r.status_code


def test_huge_maxrec_is_a_400_naming_the_parameter(client):
    for where in ("/tap/sync", "/sia/query"):
        r = client.get(where, params={"REQUEST": "doQuery", "LANG": "ADQL", "MAXREC": "1" * 5000,
                                      "QUERY": "SELECT TOP 1 ra FROM dp1.DiaSource"})
        assert r.status_code == 400 and "MAXREC" in r.text and "digits" in r.text
    r = client.post("/tap/async", data={"REQUEST": "doQuery", "LANG": "ADQL", "EXECUTIONDURATION": "9" * 5000,
                                        "QUERY": "SELECT TOP 1 ra FROM dp1.DiaSource"})
    assert r.status_code == 400 and "EXECUTIONDURATION" in r.text
