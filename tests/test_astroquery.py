"""astroquery's TapPlus (what Gaia-archive users run) against a real diavo server, and the JSON
and ECSV result formats it (and many others) ask for.

TapPlus's FITS reading is not exercised: astroquery reads a FITS response that is not gzip-
compressed from the end of its buffer (ESA's archives always gzip), so ``output_format="fits"``
fails on any server that sends plain FITS; our FITS output is checked with astropy elsewhere.
"""
from __future__ import annotations

import json
import warnings

import pytest
import requests
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

astroquery_tap = pytest.importorskip("astroquery.utils.tap.core")

Q = "SELECT TOP 5 diaSourceId, ra, dec, band, psfFlux FROM dp1.DiaSource ORDER BY diaSourceId"


@pytest.fixture(scope="module")
def tap(small_server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return astroquery_tap.TapPlus(url=f"{small_server.url}/tap", verbose=False)


def reference(server) -> list[int]:
    r = requests.get(f"{server.url}/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": Q,
                                                       "FORMAT": "csv"}, timeout=60)
    return [int(line.split(",")[0]) for line in r.text.splitlines()[1:]]


def test_load_tables_and_one_table(tap):
    tables = tap.load_tables()
    names = {t.get_qualified_name() for t in tables}
    assert {"dp1.DiaSource", "dp1.DiaObject", "ivoa.ObsCore"} <= {n.split(".", 1)[-1] if n.count(".") > 1
                                                                   else n for n in names}
    one = tap.load_table("dp1.DiaSource")
    assert one.name == "dp1.DiaSource"
    ra = next(c for c in one.columns if c.name == "ra")
    assert ra.unit == "deg" and ra.ucd.startswith("pos.eq.ra")
    names_only = tap.load_tables(only_names=True)
    assert len(names_only) == len(tables) and all(not t.columns for t in names_only)


def test_vosi_tables_stay_standard_for_other_clients(small_server):
    """Clients that send a User-Agent (pyvo, TOPCAT, taplint, browsers) get no TAP+ attribute."""
    r = requests.get(f"{small_server.url}/tap/tables", timeout=60)
    assert "esatapplus" not in r.text
    narrowed = requests.get(f"{small_server.url}/tap/tables", params={"tables": "dp1.Visit"}, timeout=60).text
    assert narrowed.count("<table ") == 1 and "<name>dp1.Visit</name>" in narrowed


@pytest.mark.parametrize("fmt", ["votable", "votable_plain", "csv", "json", "ecsv"])
@pytest.mark.parametrize("asynchronous", [False, True])
def test_launch_job_in_every_format(tap, small_server, fmt, asynchronous):
    launch = tap.launch_job_async if asynchronous else tap.launch_job
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        table = launch(Q, output_format=fmt).get_results()
    assert [int(x) for x in table["diaSourceId"]] == reference(small_server)
    if fmt in ("votable", "votable_plain", "json", "ecsv"):
        assert str(table["ra"].unit) == "deg"


def test_failed_async_job_shows_the_adql_error(tap):
    with pytest.raises(SystemError, match="no column nosuch"):
        tap.launch_job_async("SELECT nosuch FROM dp1.DiaSource")


def test_sync_error_shows_the_adql_error(tap):
    with pytest.raises(requests.exceptions.HTTPError, match="no column nosuch"):
        tap.launch_job("SELECT nosuch FROM dp1.DiaSource")


def test_upload(tap, tmp_path):
    path = tmp_path / "mine.xml"
    Table({"id": [1, 2], "ra": [53.1, 53.2], "dec": [-28.1, -28.2]}).write(path, format="votable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        table = tap.launch_job("SELECT id, ra FROM tap_upload.mine ORDER BY id", upload_resource=str(path),
                               upload_table_name="mine").get_results()
    assert list(table["id"]) == [1, 2]


# ---------------------------------------------------------------- JSON and ECSV themselves
def fetch(server, query: str, fmt: str, **params) -> requests.Response:
    r = requests.get(f"{server.url}/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                                       "RESPONSEFORMAT": fmt, **params}, timeout=60)
    assert r.status_code == 200, r.text
    return r


def test_json_shape(small_server):
    r = fetch(small_server, "SELECT TOP 3 diaSourceId, ra, band, midpointMjdTai, POINT(ra, dec) AS p, "
                            "CAST(NULL AS DOUBLE PRECISION) AS nothing, LOG(-1.0) AS nan FROM dp1.DiaSource", "json",
              MAXREC="2")
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert [m["name"] for m in doc["metadata"]] == ["diaSourceId", "ra", "band", "midpointMjdTai", "p", "nothing",
                                                     "nan"]
    ra = doc["metadata"][1]
    assert ra["datatype"] == "double" and ra["unit"] == "deg" and ra["ucd"].startswith("pos.eq.ra")
    assert doc["metadata"][4]["xtype"] == "point"
    assert len(doc["data"]) == 2 and doc["status"] == "OVERFLOW"
    row = doc["data"][0]
    assert isinstance(row[0], int) and isinstance(row[1], float) and isinstance(row[2], str)
    assert len(row[4]) == 2 and row[5] is None and row[6] is None  # NULL and NaN are null
    assert fetch(small_server, "SELECT TOP 1 ra FROM dp1.DiaSource", "application/json").json()["status"] == "OK"


def test_ecsv_round_trip(small_server):
    r = fetch(small_server, "SELECT TOP 4 diaSourceId, ra, band, psfFlux, CIRCLE(ra, dec, 0.1) AS c "
                            "FROM dp1.DiaSource ORDER BY diaSourceId", "ecsv")
    table = Table.read(r.text, format="ascii.ecsv")
    assert table["diaSourceId"].dtype.kind == "i" and table["ra"].dtype.kind == "f"
    assert str(table["ra"].unit) == "deg" and str(table["psfFlux"].unit) == "nJy"
    assert table["ra"].meta["ucd"].startswith("pos.eq.ra")
    assert table["c"].meta["xtype"] == "circle" and len(str(table["c"][0]).split()) == 3
    csv = fetch(small_server, "SELECT TOP 4 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId", "csv").text
    assert [int(x) for x in table["diaSourceId"]] == [int(x) for x in csv.splitlines()[1:]]


def test_new_formats_are_declared(small_server):
    caps = requests.get(f"{small_server.url}/tap/capabilities", timeout=60).text
    assert "application/json" in caps and "text/x-ecsv" in caps
    assert json.loads(fetch(small_server, "SELECT TOP 0 ra FROM dp1.DiaSource", "json").text)["data"] == []
