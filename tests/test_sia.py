"""SIA 2.0 on the small demo archive: /sia/query against the equivalent ADQL through TAP, pyvo's
SIA2 client over real HTTP, every parameter, bad input, the VOSI documents, and the s_region fast
path of the ADQL translator (same rows as the row-by-row test)."""
from __future__ import annotations

import io
import math
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from astropy.io.votable import parse
from starlette.testclient import TestClient

from diavo.server.adql import cover, spherical
from diavo.server.app import create_app
from diavo.server.archive import store
from diavo.server.query import sia as sia_query
from diavo.server.settings import Settings
from diavo.shared.bands import EM_RANGE_M

R_BAND = EM_RANGE_M["r"]
TUTORIAL = (53.125, -27.740)
STILTS = shutil.which("stilts")
needs_stilts = pytest.mark.skipif(STILTS is None and os.environ.get("DIAVO_REQUIRE_STILTS") != "1",
                                  reason="needs STILTS (set DIAVO_REQUIRE_STILTS=1 to require it)")


@pytest.fixture(scope="module")
def root(small_archive):
    return small_archive[0]


@pytest.fixture(scope="module")
def client(root, tmp_path_factory):
    settings = Settings(root=root, state_dir=tmp_path_factory.mktemp("uws"), maxrec_default=1000,
                        maxrec_hard=5000)
    with TestClient(create_app(settings)) as c:
        yield c


def votable(resp):
    assert resp.status_code == 200, resp.text[:2000]
    assert resp.headers["content-type"].startswith("application/x-votable+xml")
    return parse(io.BytesIO(resp.content), verify="warn")


def status(vot) -> list[str]:
    return [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]


def ids_sia(client, params) -> set[str]:
    vot = votable(client.get("/sia/query", params=params))
    return {str(v) for v in vot.get_first_table().to_table()["obs_publisher_did"]}


def ids_adql(client, where: str) -> set[str]:
    q = "SELECT obs_publisher_did FROM ivoa.ObsCore" + (f" WHERE {where}" if where else "")
    vot = votable(client.get("/tap/sync", params={"LANG": "ADQL", "QUERY": q, "MAXREC": "5000"}))
    return {str(v) for v in vot.get_first_table().to_table()["obs_publisher_did"]}


# --- pyvo over real HTTP --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def http_base(root, tmp_path_factory):
    """A real uvicorn server in a thread, on a free port of 127.0.0.1."""
    import uvicorn

    settings = Settings(root=root, state_dir=tmp_path_factory.mktemp("uws-http"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)
    sock.close()


def test_pyvo_tutorial_search_equals_the_adql_query(http_base):
    """The tutorial's constraints through pyvo's SIA2 client give the images the equivalent ADQL
    query on ivoa.ObsCore gives through TAP, with access URLs on this server."""
    import astropy.units as u
    from astropy.time import Time
    from pyvo.dal import TAPService
    from pyvo.dal.sia2 import SIA2Service

    t1, t2 = Time("2024-11-09T00:00:00", scale="tai"), Time(60624.0, format="mjd")
    radius = 1e-5
    sia = SIA2Service(http_base + "/sia")
    found = sia.search(pos=(*TUTORIAL, radius), band=(R_BAND[0] * u.m, R_BAND[1] * u.m), time=(t1, t2))
    table = found.to_table()
    got = {str(v) for v in table["obs_publisher_did"]}
    adql = (f"SELECT obs_publisher_did FROM ivoa.ObsCore WHERE INTERSECTS(CIRCLE({TUTORIAL[0]}, {TUTORIAL[1]}, "
            f"{radius}), s_region) = 1 AND em_min <= {R_BAND[1]!r} AND em_max >= {R_BAND[0]!r} "
            f"AND t_min <= {float(t2.mjd)!r} AND t_max >= {float(t1.mjd)!r}")
    tap = TAPService(http_base + "/tap")
    want = {str(v) for v in tap.search(adql).to_table()["obs_publisher_did"]}
    point = {str(v) for v in tap.search(adql.replace(f"INTERSECTS(CIRCLE({TUTORIAL[0]}, {TUTORIAL[1]}, {radius})",
                                                     f"CONTAINS(POINT({TUTORIAL[0]}, {TUTORIAL[1]})")).to_table()["obs_publisher_did"]}
    assert got and got == want == point
    assert set(table["lsst_band"]) == {"r"}
    assert all(str(u).startswith(http_base + "/datalink/links?ID=") for u in table["access_url"])
    assert all(str(f) == "application/x-votable+xml;content=datalink" for f in table["access_format"])
    # the Rubin-style extra through pyvo's custom parameters
    by_name = sia.search(pos=(*TUTORIAL, radius), time=(t1, t2), LSST_BAND="r")
    assert {str(v) for v in by_name.to_table()["obs_publisher_did"]} == got


def test_pyvo_maxrec_and_records(http_base):
    from pyvo.dal.sia2 import SIA2Service

    sia = SIA2Service(http_base + "/sia")
    res = sia.search(pos=(*TUTORIAL, 0.05), maxrec=2)
    assert len(res) == 2 and "OVERFLOW" in [i.value for i in res.votable.resources[0].infos]
    rec = res[0]
    assert rec["dataproduct_type"] == "image" and rec["calib_level"] == 3


# --- parameters -----------------------------------------------------------------------------------

EQUIVALENTS = [
    ({"POS": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.02"},
     f"INTERSECTS(CIRCLE({TUTORIAL[0]}, {TUTORIAL[1]}, 0.02), s_region) = 1"),
    ({"POS": "POLYGON 53.0 -27.8 53.2 -27.8 53.1 -27.65"},
     "INTERSECTS(s_region, POLYGON(53.0, -27.8, 53.2, -27.8, 53.1, -27.65)) = 1"),
    ({"BAND": "6e-7"}, "em_min <= 6e-7 AND em_max >= 6e-7"),
    ({"BAND": "-Inf 5e-7"}, "em_min <= 5e-7 AND em_max IS NOT NULL"),
    ({"BAND": "7e-7 +Inf"}, "em_max >= 7e-7 AND em_min IS NOT NULL"),
    ({"TIME": "60623 60624"}, "t_min <= 60624 AND t_max >= 60623"),
    ({"TIME": "60630.5 +inf"}, "t_max >= 60630.5"),
    ({"FOV": "0.1 +Inf"}, "s_fov >= 0.1"),
    ({"FOV": "-Inf 0.01"}, "s_fov <= 0.01"),
    ({"SPATRES": "-Inf 1.0"}, "s_resolution <= 1.0"),
    ({"EXPTIME": "29 31"}, "t_exptime BETWEEN 29 AND 31"),
    ({"TIMERES": "30"}, "t_resolution = 30"),
    ({"SPECRP": "-Inf +Inf"}, "em_res_power IS NOT NULL"),
    ({"SPECRP": "4.5 +Inf"}, "em_res_power >= 4.5"),
    ({"COLLECTION": "LSST.DP1"}, "obs_collection = 'LSST.DP1'"),
    ({"COLLECTION": "lsst.dp1"}, "obs_collection = 'lsst.dp1'"),          # case-sensitive: nothing
    ({"FACILITY": "Rubin:Simonyi"}, "facility_name = 'Rubin:Simonyi'"),
    ({"INSTRUMENT": "LSSTComCam"}, "instrument_name = 'LSSTComCam'"),
    ({"DPTYPE": "image"}, "dataproduct_type = 'image'"),
    ({"DPTYPE": "cube"}, "dataproduct_type = 'cube'"),
    ({"CALIB": "3"}, "calib_level = 3"),
    ({"CALIB": "1"}, "calib_level = 1"),
    ({"TARGET": "ECDFS"}, "target_name = 'ECDFS'"),
    ({"FORMAT": "application/x-votable+xml;content=datalink"},
     "access_format = 'application/x-votable+xml;content=datalink'"),
    ({"FORMAT": "application/fits"}, "access_format = 'application/fits'"),
    ({"POL": "I"}, "pol_states LIKE '%/I/%'"),
    ({"DETECTOR": "4"}, "lsst_detector = 4"),
    ({"LSST_BAND": "z"}, "lsst_band = 'z'"),
]


@pytest.mark.parametrize("params,where", EQUIVALENTS, ids=[str(p) for p, _ in EQUIVALENTS])
def test_each_parameter_equals_its_adql(client, params, where):
    assert ids_sia(client, params) == ids_adql(client, where)


def test_id_is_case_insensitive_and_visit_selects(client):
    some = sorted(ids_adql(client, "lsst_band = 'g'"))[:2]
    got = ids_sia(client, [("ID", some[0].upper()), ("ID", some[1])])
    assert got == set(some)
    visit = int(some[0].split("/")[-2])
    assert ids_sia(client, {"VISIT": str(visit)}) == ids_adql(client, f"lsst_visit = {visit}")


def test_repeats_are_ored_and_parameters_anded(client):
    assert ids_sia(client, [("LSST_BAND", "g"), ("LSST_BAND", "r")]) == ids_adql(client, "lsst_band IN ('g', 'r')")
    two = [("POS", f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.01"), ("POS", "CIRCLE 59.1 -48.7 0.05")]
    union = ids_sia(client, two[:1]) | ids_sia(client, two[1:])
    assert ids_sia(client, two) == union and ids_sia(client, two[:1]) and ids_sia(client, two[1:])
    both = ids_sia(client, [*two, ("LSST_BAND", "r"), ("EXPTIME", "-Inf 100")])
    assert both == union & ids_adql(client, "lsst_band = 'r' AND t_exptime <= 100")
    intervals = [("TIME", "60623 60624"), ("TIME", "60640 60641")]
    assert ids_sia(client, intervals) == ids_sia(client, intervals[:1]) | ids_sia(client, intervals[1:])


def test_names_are_case_insensitive_get_and_post_agree(client):
    upper = ids_sia(client, {"POS": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.02", "LSST_BAND": "r"})
    lower = ids_sia(client, {"pos": f"circle {TUTORIAL[0]} {TUTORIAL[1]} 0.02", "lsst_band": "r"})
    posted = votable(client.post("/sia/query", data={"Pos": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.02",
                                                     "Lsst_Band": "r"}))
    assert upper and upper == lower == {str(v) for v in posted.get_first_table().to_table()["obs_publisher_did"]}


def test_no_parameters_lists_everything_in_time_order(client):
    table = votable(client.get("/sia/query")).get_first_table().to_table()
    assert {str(v) for v in table["obs_publisher_did"]} == ids_adql(client, "")
    t = np.asarray(table["t_min"], dtype=float)
    assert np.all(np.diff(t) >= 0)


def test_range_equals_its_polygon_and_open_ends(client):
    box = ids_sia(client, {"POS": "RANGE 52.9 53.3 -27.9 -27.6"})
    assert box and box == ids_adql(client, "INTERSECTS(s_region, POLYGON(52.9, -27.9, 53.3, -27.9, 53.3, -27.6, "
                                           "52.9, -27.6)) = 1")
    everything = ids_adql(client, "")
    assert ids_sia(client, {"POS": "RANGE -Inf +Inf -Inf +Inf"}) == everything
    assert ids_sia(client, {"POS": "RANGE 0 360 -90 90"}) == everything
    south = ids_sia(client, {"POS": "RANGE -Inf +Inf -Inf -40"})
    assert south == ids_adql(client, "s_dec < -40") and south != everything
    point = ids_sia(client, {"POS": f"RANGE {TUTORIAL[0]} {TUTORIAL[0]} {TUTORIAL[1]} {TUTORIAL[1]}"})
    assert point == ids_adql(client, f"CONTAINS(POINT({TUTORIAL[0]}, {TUTORIAL[1]}), s_region) = 1")


def test_range_band_all_round_the_sky(client, root):
    """A band of latitude over all longitudes is exact (circles about the poles): it finds the
    footprints whose vertex latitudes reach into it, for band edges chosen away from any vertex
    (the edges of these small footprints bulge by less than 1e-5 degrees)."""
    con = store.connect(root)
    rows = con.execute('SELECT obs_publisher_did, s_region FROM ivoa."ObsCore"').fetchall()
    decs = {d: np.array([float(x) for x in r.split()[3::2]]) for d, r in rows}
    every = np.concatenate(list(decs.values()))

    def clear(x):
        return np.abs(every - x).min() > 1e-3

    lo = float(next(x for x in np.arange(-28.3, -27.7, 0.0007) if clear(x)))
    hi = float(next(x for x in np.arange(lo + 0.3, lo + 0.9, 0.0007) if clear(x)))
    want = {d for d, v in decs.items() if v.max() >= lo and v.min() <= hi}
    assert want and want != set(decs)
    assert ids_sia(client, {"POS": f"RANGE 0 360 {lo!r} {hi!r}"}) == want


@pytest.mark.parametrize("box", [(10.0, 11.0, 20.0, 21.0), (10.0, 11.0, -21.0, -20.0), (0.0, 359.0, -10.0, 30.0),
                                 (200.0, 230.0, 60.0, 89.0), (5.0, 6.0, 85.0, 90.0), (100.0, 300.0, -90.0, -60.0),
                                 (30.0, 31.0, -0.5, 0.5), (0.0, 0.001, 45.0, 45.001)])
def test_range_polygons_hold_the_box_and_little_more(box):
    """The polygons standing for a RANGE contain every point of the box, its edges included, and
    nothing farther beyond a latitude edge than the chords' bulge allows (RANGE_TOLERANCE_DEG
    for boxes up to ~20 degrees wide)."""
    lon1, lon2, lat1, lat2 = box
    pieces = sia_query.range_pieces(lon1, lon2)
    polys = [spherical.make_polygon(sia_query.range_polygon(a, b, lat1, lat2)) for a, b in pieces]
    assert all(p is not None for p in polys)

    def covered(lon, lat):
        p = spherical.radec_to_xyz(lon, lat)
        out = np.zeros(len(lon), dtype=bool)
        for poly in polys:
            out |= spherical.polygon_contains_xyz(poly, p)
        return out

    rng = np.random.default_rng(3)
    lon = rng.uniform(lon1, lon2, 4000)
    lat = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(lat1)), np.sin(np.radians(lat2)), 4000)))
    edges = [e for e in (lat1, lat2) if abs(e) < 90]
    lon = np.concatenate([lon, *[rng.uniform(lon1, lon2, 400) for _ in edges], np.full(200, lon1), np.full(200, lon2)])
    lat = np.concatenate([lat, *[np.full(400, e) for e in edges], rng.uniform(lat1, lat2, 400)])
    assert covered(lon, lat).all()
    width = pieces[0][1] - pieces[0][0]
    if width <= 20:
        assert max(sia_query.range_excess_deg(e, width) for e in edges) <= 1.01 * sia_query.RANGE_TOLERANCE_DEG
    for edge, outward in ((lat1, -1), (lat2, +1)):
        if abs(edge) < 90:
            beyond = edge + outward * (1.01 * sia_query.range_excess_deg(edge, width) + 1e-9)
            assert not covered(rng.uniform(lon1, lon2, 400), np.full(400, beyond)).any()


def test_maxrec_overflow_exact_fit_zero_and_hard_limit(client):
    params = {"POS": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.05"}
    n = len(ids_sia(client, params))
    assert n > 3
    vot = votable(client.get("/sia/query", params={**params, "MAXREC": "3"}))
    assert len(vot.get_first_table().array) == 3 and status(vot) == ["OK", "OVERFLOW"]
    vot = votable(client.get("/sia/query", params={**params, "MAXREC": str(n)}))
    assert len(vot.get_first_table().array) == n and status(vot) == ["OK"]
    vot = votable(client.get("/sia/query", params={**params, "MAXREC": "0"}))
    assert len(vot.get_first_table().array) == 0 and "OVERFLOW" in status(vot)
    assert "s_region" in [f.name for f in vot.get_first_table().fields]
    vot = votable(client.get("/sia/query", params={"MAXREC": "99999999"}))
    assert len(vot.get_first_table().array) == min(5000, len(ids_adql(client, "")))


def test_response_describes_the_service_and_the_query(client):
    vot = votable(client.get("/sia/query", params={"MAXREC": "0", "NOSUCH": "1", "lsst_band": "r"}))
    infos = {i.name: i.value for i in vot.resources[0].infos}
    assert infos["standardID"] == "ivo://ivoa.net/std/SIA"
    assert infos["QUERY"].startswith("SELECT TOP 0 * FROM ivoa.ObsCore WHERE lsst_band = 'r'")
    assert "NOSUCH" in infos["warning"]
    metas = {r.name: r for r in vot.resources if r.type == "meta"}
    assert set(metas) == {"this", "datalink", "soda-cutout"}
    meta = metas["this"]
    assert meta.utype == "adhoc:service"
    params = {p.name: p.value for p in meta.params}
    assert params["standardID"] == "ivo://ivoa.net/std/SIA#query-2.0"
    assert params["accessURL"] == "http://testserver/sia/query"
    inputs = {p.name: p for p in meta.groups[0].entries}
    assert {"POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "TIMERES", "SPECRP", "ID", "COLLECTION",
            "FACILITY", "INSTRUMENT", "DPTYPE", "CALIB", "TARGET", "FORMAT", "MAXREC", "VISIT", "DETECTOR",
            "LSST_BAND"} <= set(inputs)
    assert inputs["BAND"].unit == "m" and inputs["BAND"].xtype == "interval"
    assert [v for _, v in inputs["COLLECTION"].values.options] == ["LSST.DP1"]


def test_access_urls_follow_the_public_host(client):
    r = client.get("/sia/query", params={"POS": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.01"},
                   headers={"X-Forwarded-Host": "data.example.org", "X-Forwarded-Proto": "https"})
    table = votable(r).get_first_table().to_table()
    assert len(table) and all(str(u).startswith("https://data.example.org/datalink/links?ID=")
                              for u in table["access_url"])
    assert b'value="https://data.example.org/sia/query"' in r.content


def test_other_response_formats(client):
    params = {"POS": f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.01"}
    n = len(ids_sia(client, params))
    r = client.get("/sia/query", params={**params, "RESPONSEFORMAT": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert len(r.text.strip().splitlines()) == n + 1
    b2 = votable(client.get("/sia/query", params={**params, "RESPONSEFORMAT": "votable/b2"}))
    assert len(b2.get_first_table().array) == n


def test_large_results_stream(client, monkeypatch):
    """Results above SMALL_ROWS go out through the streaming writer, trailer and overflow included."""
    from diavo.server.protocols import sia as sia_protocol

    whole = votable(client.get("/sia/query", params={"MAXREC": "100"}))
    monkeypatch.setattr(sia_protocol, "SMALL_ROWS", 10)
    r = client.get("/sia/query", params={"MAXREC": "100"})
    assert "content-length" not in r.headers
    vot = votable(r)
    assert len(vot.get_first_table().array) == 100 and status(vot) == ["OK", "OVERFLOW"]
    assert [str(x) for x in vot.get_first_table().array["obs_publisher_did"]] == \
        [str(x) for x in whole.get_first_table().array["obs_publisher_did"]]
    assert [r.type for r in vot.resources] == ["results", "meta", "meta", "meta"]


BAD = [
    ({"POS": "CIRCLE 400 0 1"}, "outside [0, 360]"),
    ({"POS": "CIRCLE 10 95 1"}, "outside [-90, 90]"),
    ({"POS": "CIRCLE 10 20 0"}, "radius"),
    ({"POS": "CIRCLE 10 20 181"}, "radius"),
    ({"POS": "CIRCLE 10 20 -1"}, "radius"),
    ({"POS": "CIRCLE 10 20"}, "3 numbers"),
    ({"POS": "CIRCLE NaN 20 1"}, "NaN"),
    ({"POS": "CIRCLE 10 20 1e999"}, "too large"),
    ({"POS": "CIRCLE 10,20,1"}, "spaces"),
    ({"POS": "CIRCLE ten 20 1"}, "not a number"),
    ({"POS": "BOX 10 20 1 1"}, "CIRCLE, RANGE or POLYGON"),
    ({"POS": "10 20 1"}, "CIRCLE, RANGE or POLYGON"),
    ({"POS": "POLYGON 1 2 3 4"}, "at least 3 vertices"),
    ({"POS": "POLYGON 1 2 3 4 5"}, "even"),
    ({"POS": "POLYGON 0 0 1 1 1 0 0 1"}, "not a simple polygon"),
    ({"POS": "POLYGON " + " ".join(f"{10 + math.cos(a):.6f} {20 + math.sin(a):.6f}"
                                   for a in np.linspace(0, 2 * math.pi, 150, endpoint=False))}, "at most 100"),
    ({"POS": "RANGE 350 10 0 1"}, "runs backwards"),
    ({"POS": "RANGE 10 20 5 1"}, "runs backwards"),
    ({"POS": "RANGE 10 20 1 1"}, "non-zero extent"),
    ({"POS": "RANGE 10 20 -100 1"}, "outside [-90, 90]"),
    ({"POS": "RANGE +Inf +Inf 0 1"}, "empty"),
    ({"POS": "RANGE 1 2 3"}, "4 numbers"),
    ({"BAND": "2e-7 1e-7"}, "above the upper bound"),
    ({"BAND": "r"}, "LSST_BAND=r"),
    ({"BAND": "NaN 1"}, "NaN"),
    ({"BAND": "-1e-7 1e-7"}, "negative"),
    ({"TIME": "60624 60623"}, "above the upper bound"),
    ({"TIME": "2024-11-09"}, "MJD"),
    ({"TIME": "1 2 3"}, "one number or two"),
    ({"EXPTIME": "+Inf"}, "finite"),
    ({"FOV": "+Inf +Inf"}, "empty"),
    ({"SPATRES": "2 1"}, "above the upper bound"),
    ({"SPECRP": "x"}, "not a number"),
    ({"TIMERES": "1 0"}, "above the upper bound"),
    ({"CALIB": "7"}, "between 0 and 4"),
    ({"CALIB": "two"}, "integer"),
    ({"DPTYPE": "images"}, "image, cube"),
    ({"POL": "i"}, "I, Q, U, V"),
    ({"VISIT": "12.5"}, "integer"),
    ({"DETECTOR": "-1"}, "integer"),
    ({"LSST_BAND": "R"}, "u, g, r"),
    ({"ID": "ivo://x\x00"}, "control characters"),
    ({"TARGET": "x" * 1001}, "longer than"),
    ({"MAXREC": "-1"}, "MAXREC"),
    ({"MAXREC": "ten"}, "MAXREC"),
    ([("MAXREC", "1"), ("MAXREC", "2")], "more than once"),
    ({"RESPONSEFORMAT": "image/png"}, "RESPONSEFORMAT"),
]


@pytest.mark.parametrize("params,needle", BAD, ids=[str(p)[:60] for p, _ in BAD])
def test_bad_input_is_a_usage_fault(client, params, needle):
    r = client.get("/sia/query", params=params)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    vot = parse(io.BytesIO(r.content), verify="warn")
    (info,) = [i for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    assert info.value == "ERROR"
    assert info.content.startswith("UsageFault: ") and needle in info.content, info.content


def test_text_requests_get_text_errors(client):
    r = client.get("/sia/query", params={"RESPONSEFORMAT": "csv", "CALIB": "9"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("UsageFault: ")


def test_too_many_values(client):
    r = client.get("/sia/query", params=[("POS", "CIRCLE 1 2 0.1")] * (sia_query.MAX_POS + 1))
    assert r.status_code == 400 and b"at most" in r.content


# --- VOSI -----------------------------------------------------------------------------------------

def test_capabilities_and_availability(client):
    r = client.get("/sia/capabilities")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    doc = ET.fromstring(r.content)
    caps = {c.get("standardID"): c for c in doc.findall("capability")}
    assert set(caps) == {"ivo://ivoa.net/std/SIA#query-2.0", "ivo://ivoa.net/std/VOSI#capabilities",
                         "ivo://ivoa.net/std/VOSI#availability"}
    iface = caps["ivo://ivoa.net/std/SIA#query-2.0"].find("interface")
    assert iface.get("role") == "std" and iface.get("version") == "2.0"
    assert iface.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "vs:ParamHTTP"
    assert iface.findtext("accessURL") == "http://testserver/sia/query"
    r = client.get("/sia/availability")
    assert r.status_code == 200
    assert ET.fromstring(r.content).findtext("{http://www.ivoa.net/xml/VOSIAvailability/v1.0}available") == "true"


@needs_stilts
def test_documents_pass_votlint_and_xsdvalidate(client, tmp_path):
    pos = f"CIRCLE {TUTORIAL[0]} {TUTORIAL[1]} 0.02"
    docs = {
        "td": client.get("/sia/query", params={"POS": pos}).content,
        "b2": client.get("/sia/query", params={"POS": pos, "RESPONSEFORMAT": "votable/b2"}).content,
        "overflow": client.get("/sia/query", params={"POS": pos, "MAXREC": "2"}).content,
        "maxrec0": client.get("/sia/query", params={"MAXREC": "0"}).content,
        "error": client.get("/sia/query", params={"POS": "CIRCLE 1 2"}).content,
    }
    if STILTS is None:
        pytest.fail("stilts is required (DIAVO_REQUIRE_STILTS=1) but not on PATH")
    runs = {}
    for name, body in docs.items():  # one JVM each, started together
        path = tmp_path / f"{name}.xml"
        path.write_bytes(body)
        runs[name] = subprocess.Popen([STILTS, "votlint", f"votable={path}", "ucd=true", "unit=true"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name in ("capabilities", "availability"):
        path = tmp_path / f"{name}.xml"
        path.write_bytes(client.get(f"/sia/{name}").content)
        runs[name] = subprocess.Popen([STILTS, "xsdvalidate", "uselocals=true", f"doc={path}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, run in runs.items():
        out, _ = run.communicate(timeout=180)
        problems = [line for line in out.splitlines() if line.startswith(("ERROR", "WARNING"))]
        assert run.returncode == 0 and not problems, f"{name}: {out}"


# --- the s_region fast path -----------------------------------------------------------------------

def test_s_fov_encloses_every_footprint(root):
    """What the translator's s_region prefilter relies on: every s_region vertex lies within
    s_fov / 2 of (s_ra, s_dec), up to the STC-S rounding far below its margin."""
    con = store.connect(root)
    for ra, dec, fov, region in con.execute('SELECT s_ra, s_dec, s_fov, s_region FROM ivoa."ObsCore"').fetchall():
        v = np.array([float(x) for x in region.split()[2:]])
        d = spherical.distance(ra, dec, v[0::2], v[1::2])
        assert d.max() <= fov / 2 + 1e-5


def test_tokens_guard_queries_not_metadata(root, tmp_path):
    settings = Settings(root=root, state_dir=tmp_path / "uws", tokens={"secret": "alice"})
    with TestClient(create_app(settings)) as c:
        assert c.get("/sia/query", params={"MAXREC": "0"}).status_code == 401
        assert c.get("/sia/query", params={"MAXREC": "0"}, headers={"Authorization": "Bearer secret"}).status_code == 200
        assert c.get("/sia/availability").status_code == 200
        caps = c.get("/sia/capabilities")
        assert caps.status_code == 200 and b'standardID="ivo://ivoa.net/sso#token"' in caps.content


def _random_shapes(rows, rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        ra0, dec0, region = rng.choice(rows)
        kind = rng.choice(["point", "circle", "polygon", "box", "vertex", "edge"])
        ra = (ra0 + rng.uniform(-1, 1) / math.cos(math.radians(dec0))) % 360
        dec = dec0 + rng.uniform(-1, 1)
        r = 10 ** rng.uniform(-4, 0.5)
        v = [float(x) for x in region.split()[2:]]
        i = rng.randrange(len(v) // 2)
        j = (i + 1) % (len(v) // 2)
        if kind == "vertex":                      # on the boundary: a vertex, a point of an edge
            out.append(f"POINT({v[2 * i]!r}, {v[2 * i + 1]!r})")
        elif kind == "edge":
            t = rng.random()
            out.append(f"POINT({v[2 * i] * (1 - t) + v[2 * j] * t!r}, {v[2 * i + 1] * (1 - t) + v[2 * j + 1] * t!r})")
        elif kind == "point":
            out.append(f"POINT({ra!r}, {dec!r})")
        elif kind == "circle":
            out.append(f"CIRCLE({ra!r}, {dec!r}, {r!r})")
        elif kind == "box":
            out.append(f"BOX({ra!r}, {dec!r}, {r!r}, {r * rng.uniform(0.2, 2)!r})")
        else:
            angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(rng.randint(3, 7)))
            pts = []
            for a in angles:
                rr = r * rng.uniform(0.3, 1)
                pts += [(ra + rr * math.cos(a) / math.cos(math.radians(dec))) % 360, dec + rr * math.sin(a)]
            out.append("POLYGON(" + ", ".join(repr(x) for x in pts) + ")")
    return out


def test_region_fast_path_gives_the_rows_of_the_exact_test(root):
    """CONTAINS/INTERSECTS(shape, s_region) = 1 takes the prefiltered, batched path; written
    '>= 1' it takes the row-by-row path. Both give the same rows for random shapes around the
    footprints, points on their vertices and edges included, and for the tutorial's point."""
    from diavo.server.engine.base import Limits
    from diavo.server.query.executor import open_service

    svc = open_service(root)
    try:
        rows = [tuple(r.values()) for r in svc.run("SELECT s_ra, s_dec, s_region FROM ivoa.ObsCore",
                                                     Limits(maxrec=None)).table.to_pylist()]
        shapes = [f"POINT({TUTORIAL[0]}, {TUTORIAL[1]})"] + _random_shapes(rows, random.Random(11), 30)
        forms = ["INTERSECTS({s}, s_region)", "INTERSECTS(s_region, {s})", "CONTAINS({s}, s_region)",
                 "CONTAINS(s_region, {s})"]
        hits = 0
        for k, s in enumerate(shapes):
            for form in forms if k == 0 or k % 2 else forms[:2]:
                cond = form.format(s=s)
                fast = f"SELECT obs_publisher_did FROM ivoa.ObsCore WHERE {cond} = 1"
                slow = f"SELECT obs_publisher_did FROM ivoa.ObsCore WHERE {cond} >= 1"
                assert "adql_region_select" in svc.translate(fast).sql
                assert "adql_region_select" not in svc.translate(slow).sql
                a = set(svc.run(fast, Limits(maxrec=None)).table.column(0).to_pylist())
                b = set(svc.run(slow, Limits(maxrec=None)).table.column(0).to_pylist())
                assert a == b, cond
                hits += len(b)
        assert hits > 100
    finally:
        svc.close()


def test_region_fast_path_only_where_rows_are_tested(root):
    """The fast path names the table's rowid, so it is used in WHERE and JOIN ... ON only; a
    HAVING or a select-list test on s_region keeps the row-by-row form, and all still run."""
    from diavo.server.engine.base import Limits
    from diavo.server.query.executor import open_service

    circle = f"CIRCLE({TUTORIAL[0]}, {TUTORIAL[1]}, 0.05)"
    cases = {
        f"SELECT COUNT(*) AS n FROM ivoa.ObsCore WHERE INTERSECTS(s_region, {circle}) = 1": True,
        f"SELECT COUNT(*) AS n FROM ivoa.ObsCore AS o JOIN dp1.Visit AS v ON o.lsst_visit = v.visit "
        f"AND INTERSECTS(o.s_region, {circle}) = 1": True,
        f"SELECT COUNT(*) AS n FROM (SELECT s_region FROM ivoa.ObsCore GROUP BY s_region "
        f"HAVING INTERSECTS(s_region, {circle}) = 1) AS g": False,
        f"SELECT SUM(CASE WHEN INTERSECTS(s_region, {circle}) = 1 THEN 1 ELSE 0 END) AS n FROM ivoa.ObsCore": False,
    }
    svc = open_service(root)
    try:
        counts = set()
        for adql, fast in cases.items():
            assert ("adql_region_select" in svc.translate(adql).sql) == fast, adql
            counts.add(svc.run(adql, Limits()).table.column("n")[0].as_py())
        assert len(counts) == 1 and counts.pop() > 0
    finally:
        svc.close()


def test_enclosing_caps():
    (x, y, z), r = cover.enclosing_cap("circle", (10.0, 20.0, 0.5))
    assert r == 0.5 and math.isclose(z, math.sin(math.radians(20.0)))
    assert cover.enclosing_cap("point", (10.0, 20.0))[1] == 0.0
    centre, r = cover.enclosing_cap("polygon", (10.0, 20.0, 11.0, 20.0, 10.5, 21.0))
    p = spherical.make_polygon((10.0, 20.0, 11.0, 20.0, 10.5, 21.0))
    assert np.all(np.degrees(spherical.angle_between(p.v, np.array(centre)[None])) <= r + 1e-12)
    assert cover.enclosing_cap("polygon", (0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0)) is None  # crossing edges
    assert cover.enclosing_cap("circle", (10.0, 95.0, 1.0)) is None
