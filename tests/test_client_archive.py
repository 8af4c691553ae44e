"""diavo.client.Archive against a real `diavo serve` on the small demo archive: discovery, the
tutorial's query (checked against a direct ADQL query), references from SIA and TAP rows, the
three ways of getting an image, cut-outs, DiaSources, the cache, progress and bearer tokens."""
from __future__ import annotations

import ast
import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyvo
import requests
from astropy import units as u
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from conformance.server_process import ServerProcess
from diavo.client import (
    Archive,
    ArchiveError,
    DatasetRef,
    MissingDatasetTypeError,
    QueryExpressionError,
    Timespan,
    get_tap_service,
)
from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH

VISIT, DETECTOR = 2024110800246, 2
RA, DEC = 53.125, -27.740
TUTORIAL_WHERE = ("band.name = :band AND visit.timespan OVERLAPS :timespan AND "
                  "visit_detector_region.region OVERLAPS POINT(:ra, :dec)")


def tutorial_bind() -> dict:
    return {"band": "r", "ra": RA, "dec": DEC,
            "timespan": Timespan(Time("2024-11-09T00:00:00.0", format="isot", scale="tai"),
                                 Time(60624.0, format="mjd", scale="tai"))}


@pytest.fixture(scope="module")
def server(request, small_archive, tmp_path_factory):
    """The session's shared small-archive server when conftest provides one, else our own."""
    try:
        yield request.getfixturevalue("small_server")
        return
    except pytest.FixtureLookupError:
        pass
    work = tmp_path_factory.mktemp("client-server")
    proc = ServerProcess(archive=small_archive[0], state_dir=work / "uws", log_path=work / "server.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def archive(server):
    with Archive(server.url, progress=False) as a:
        yield a


@pytest.fixture(scope="module")
def tutorial_refs(archive):
    return archive.query_datasets("difference_image", where=TUTORIAL_WHERE, bind=tutorial_bind(),
                                  order_by=["visit.timespan.begin"])


def direct(archive, adql: str):
    return archive.tap.search(adql).to_table()


def pairs(refs) -> list[tuple[int, int]]:
    return [(r.dataId["visit"], r.dataId["detector"]) for r in refs]


# -- connecting ------------------------------------------------------------------------------------

def test_endpoints_are_discovered(archive, server):
    e = archive.endpoints
    assert (e.base, e.tap, e.sia, e.datalink, e.soda) == (
        server.url, server.url + "/tap", server.url + "/sia/query", server.url + "/datalink/links",
        server.url + "/soda/sync")
    assert isinstance(archive.tap, pyvo.dal.TAPService)
    assert isinstance(archive.sia, pyvo.dal.SIA2Service)
    assert Archive(server.url + "/tap/").endpoints == e  # the TAP URL works as well


def test_a_url_without_tap_is_an_error(server):
    with pytest.raises(ArchiveError, match="no TAP service"):
        Archive(server.url + "/sia")


def test_dataset_type(archive):
    dt = archive.get_dataset_type("difference_image")
    assert dt.name == "difference_image"
    assert set(dt.dimensions) == {"band", "instrument", "day_obs", "detector", "physical_filter", "visit"}
    assert dt.dimensions.required == {"instrument", "detector", "visit"}
    assert dt.storageClass == "ExposureF" and dt.is_exposure
    assert repr(dt) == ("DatasetType('difference_image', {band, instrument, day_obs, detector, "
                        "physical_filter, visit}, ExposureF)")
    assert repr(dt.dimensions.required) == "{instrument, detector, visit}"
    with pytest.raises(MissingDatasetTypeError, match="no dataset type 'calexp'.*difference_image"):
        archive.get_dataset_type("calexp")


# -- finding datasets ------------------------------------------------------------------------------

def test_tutorial_query_matches_direct_adql(archive, tutorial_refs):
    rows = direct(archive, "SELECT lsst_visit, lsst_detector, t_min FROM ivoa.ObsCore "
                           "WHERE dataproduct_subtype = 'lsst.difference_image' AND lsst_band = 'r' "
                           "AND t_min < 60624.0 AND t_max > 60623.0 "
                           "AND CONTAINS(POINT('ICRS', 53.125, -27.74), s_region) = 1 "
                           "ORDER BY t_min, lsst_visit, lsst_detector")
    assert len(rows) > 3
    assert pairs(tutorial_refs) == [(int(r["lsst_visit"]), int(r["lsst_detector"])) for r in rows]
    assert pairs(tutorial_refs)[0] == (VISIT, DETECTOR)
    begins = [r.timespan.begin_mjd for r in tutorial_refs]
    assert begins == sorted(begins)
    first = tutorial_refs[0]
    assert first.datasetType == "difference_image"
    assert dict(first.dataId) == {"instrument": "LSSTComCam", "detector": DETECTOR, "visit": VISIT, "band": "r",
                                  "day_obs": 20241108, "physical_filter": "r_03"}
    assert first.dataId.get("visit") == VISIT and first.dataId["detector"] == DETECTOR
    assert first.id == f"ivo://diavo.local/dp1?difference_image/{VISIT}/{DETECTOR}"
    assert first.access_url.startswith(archive.endpoints.datalink + "?ID=")
    assert repr(first).startswith("DatasetRef(DatasetType('difference_image'")
    assert "{instrument: 'LSSTComCam', detector: 2, visit: 2024110800246, band: 'r'" in repr(first)


@pytest.mark.parametrize("where, bind, condition", [
    ("band = 'g' AND detector IN (1, 4)", {}, "lsst_band = 'g' AND lsst_detector IN (1, 4)"),
    ("visit = :v", {"v": VISIT}, f"lsst_visit = {VISIT}"),
    ("NOT (band = 'r' OR band = 'g') AND detector = 0", {},
     "NOT (lsst_band = 'r' OR lsst_band = 'g') AND lsst_detector = 0"),
    ("day_obs = 20241127 AND physical_filter = 'i_06'", {}, "lsst_day_obs = 20241127 AND lsst_filter = 'i_06'"),
    ("instrument = 'LSSTComCam' AND detector NOT IN (0, 1, 2, 3, 4, 5, 6, 7)", {}, "lsst_detector = 8"),
    ("visit_detector_region.region OVERLAPS CIRCLE(53.125, -27.74, 0.2) AND band = 'r'", {},
     "INTERSECTS(CIRCLE('ICRS', 53.125, -27.74, 0.2), s_region) = 1 AND lsst_band = 'r'"),
    ("visit.timespan.begin < T'2024-11-09T04:00:00' AND detector = 3", {}, "t_min < 60623.166666666664 AND lsst_detector = 3"),
])
def test_where_forms_match_direct_adql(archive, where, bind, condition):
    refs = archive.query_datasets("difference_image", where=where, bind=bind)
    rows = direct(archive, "SELECT lsst_visit, lsst_detector FROM ivoa.ObsCore WHERE "
                           f"dataproduct_subtype = 'lsst.difference_image' AND {condition} "
                           "ORDER BY lsst_visit, lsst_detector")
    assert len(rows) > 0
    assert pairs(refs) == [(int(r["lsst_visit"]), int(r["lsst_detector"])) for r in rows]


def test_order_limit_and_keyword_constraints(archive, tutorial_refs):
    backwards = archive.query_datasets("difference_image", where=TUTORIAL_WHERE, bind=tutorial_bind(),
                                       order_by=["-visit.timespan.begin"])
    assert pairs(backwards) == pairs(tutorial_refs)[::-1]
    top = archive.query_datasets("difference_image", where=TUTORIAL_WHERE, bind=tutorial_bind(),
                                 order_by="visit.timespan.begin", limit=3)
    assert pairs(top) == pairs(tutorial_refs)[:3]
    one_visit = archive.query_datasets("difference_image", visit=VISIT)
    assert pairs(one_visit) == [(VISIT, d) for d in range(9)]
    assert archive.datasets_adql("difference_image", visit=VISIT).endswith(
        f"lsst_visit = {VISIT} ORDER BY lsst_visit, lsst_detector")


def test_unsupported_where_is_an_error_before_any_query(archive):
    with pytest.raises(QueryExpressionError, match="LIKE"):
        archive.query_datasets("difference_image", where="band LIKE 'r%'")
    with pytest.raises(QueryExpressionError, match="no bind value for :timespan"):
        archive.query_datasets("difference_image", where="visit.timespan OVERLAPS :timespan")


def test_refs_from_sia_and_tap_rows(archive, tutorial_refs):
    sia = archive.sia.search(pos=(RA, DEC, 1e-4), calib_level=3, LSST_BAND="r",
                             time=(Time(60623.0, format="mjd", scale="tai"), Time(60624.0, format="mjd", scale="tai")))
    from_sia = sorted((DatasetRef.from_row(rec) for rec in sia), key=lambda r: r.timespan.begin_mjd)
    assert from_sia == tutorial_refs
    assert [r.dataId for r in from_sia] == [r.dataId for r in tutorial_refs]
    assert archive.refs(sia.to_table())[0] in tutorial_refs

    tap = archive.tap.search(f"SELECT * FROM ivoa.ObsCore WHERE lsst_visit = {VISIT} ORDER BY lsst_detector")
    from_records = [DatasetRef.from_row(rec) for rec in tap]  # pyvo records
    from_table = archive.refs(tap)  # astropy rows
    assert from_records == from_table and pairs(from_table) == [(VISIT, d) for d in range(9)]
    assert from_table[DETECTOR] == tutorial_refs[0]
    assert from_table[DETECTOR].dataId == tutorial_refs[0].dataId
    # a bare row with only the two Rubin columns is enough
    slim = archive.tap.search(f"SELECT lsst_visit, lsst_detector FROM ivoa.ObsCore WHERE lsst_visit = {VISIT}")
    assert DatasetRef.from_row(slim.to_table()[0]).id.endswith(f"/{VISIT}/0")


# -- getting pixels -------------------------------------------------------------------------------

def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_three_ways_of_getting_an_image_give_the_same_bytes(archive, tutorial_refs):
    ref = tutorial_refs[0]
    by_ref = sha(archive.fetch(ref))
    by_data_id = sha(archive.fetch("difference_image", dataId=ref.dataId))
    by_keywords = sha(archive.fetch("difference_image", visit=ref.dataId.get("visit"),
                                    detector=ref.dataId.get("detector")))
    assert by_ref == by_data_id == by_keywords
    url = archive.image_url(ref)
    assert sha(requests.get(url, timeout=120).content) == by_ref


def test_get_returns_an_exposure(archive, tutorial_refs):
    exposure = archive.get(tutorial_refs[0])
    assert type(exposure).__name__ == "Exposure"
    assert exposure.getImage().array.shape == (CCD_HEIGHT, CCD_WIDTH)
    assert exposure.getInfo().getVisitInfo().id == VISIT
    assert exposure.getInfo().getDetector().getId() == DETECTOR


def test_missing_image_and_bad_data_ids(archive):
    with pytest.raises(LookupError, match="detector"):
        archive.fetch("difference_image", visit=VISIT, detector=42)
    with pytest.raises(ValueError, match="detector"):
        archive.get("difference_image", visit=VISIT)
    with pytest.raises(TypeError, match="visit"):
        archive.get("difference_image", visit="2024110800246", detector=2)
    with pytest.raises(MissingDatasetTypeError):
        archive.get("visit_image", visit=VISIT, detector=2)


def test_cutout(archive, tutorial_refs):
    ref = tutorial_refs[0]
    data = archive.cutout_fits(ref, RA, DEC, 0.01)
    assert archive.cutout_fits(dict(ref.dataId), RA * u.deg, DEC * u.deg, 36 * u.arcsec) == data
    with fits.open(io.BytesIO(data)) as hdul:
        assert [h.name for h in hdul][1:4] == ["IMAGE", "MASK", "VARIANCE"]
        image = hdul["IMAGE"]
        ny, nx = image.data.shape
        assert 0 < nx < CCD_WIDTH and 0 < ny < CCD_HEIGHT
        x, y = WCS(image.header).world_to_pixel_values(RA, DEC)
        assert 0 <= x < nx and 0 <= y < ny
    cut = archive.cutout(ref, RA, DEC, 0.01)
    assert cut.getImage().array.shape == (ny, nx)
    with pytest.raises(ValueError, match="radius"):
        archive.cutout_fits(ref, RA, DEC, -1.0)


def test_cache_keeps_files_by_id(server, tutorial_refs, tmp_path):
    ref = tutorial_refs[1]
    cached = Archive(server.url, cache_dir=tmp_path / "cache", progress=False)
    first = cached.fetch(ref)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == first
    assert str(ref.dataId["visit"]) in files[0].name
    stamp = files[0].stat().st_mtime_ns, files[0].stat().st_ino
    assert cached.fetch("difference_image", visit=ref.dataId["visit"], detector=ref.dataId["detector"]) == first
    assert (files[0].stat().st_mtime_ns, files[0].stat().st_ino) == stamp  # read back, not downloaded again
    assert cached.get(ref).getBBox().getWidth() == CCD_WIDTH


def test_progress_is_shown_when_asked(server, tutorial_refs, capfd):
    loud = Archive(server.url, progress=True)
    loud.cutout_fits(tutorial_refs[0], RA, DEC, 0.005)
    assert "cut-out of" in capfd.readouterr().err


# -- DiaSources -----------------------------------------------------------------------------------

def test_dia_sources(archive):
    count = direct(archive, f"SELECT COUNT(*) AS n FROM dp1.DiaSource WHERE visit = {VISIT} AND detector = {DETECTOR}")
    table = archive.dia_sources(VISIT, DETECTOR)  # async, as the tutorial does it
    assert table.colnames == ["diaSourceId", "x", "y"]
    assert len(table) == int(count["n"][0]) > 0
    assert np.all((table["x"] >= 0) & (table["x"] < CCD_WIDTH) & (table["y"] >= 0) & (table["y"] < CCD_HEIGHT))
    synced = archive.dia_sources(VISIT, DETECTOR, columns=["diaSourceId", "ra", "dec"], sync=True)
    assert sorted(synced["diaSourceId"]) == sorted(table["diaSourceId"])
    assert len(archive.dia_sources(VISIT, DETECTOR, columns="*", sync=True).colnames) > 50
    for bad in (["x; DROP TABLE dp1.DiaSource"], ["x", "y z"], []):
        with pytest.raises(ValueError, match="column"):
            archive.dia_sources(VISIT, DETECTOR, columns=bad)
    with pytest.raises(TypeError):
        archive.dia_sources(str(VISIT), DETECTOR)


# -- tokens and the notebook helper -----------------------------------------------------------------

def test_bearer_token_is_sent(token_server, test_token, monkeypatch):
    for name in ("DIAVO_URL", "DIAVO_TOKEN", "EXTERNAL_TAP_URL", "ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    anonymous = Archive(token_server.url, progress=False)  # capabilities are public
    with pytest.raises(ArchiveError, match="bearer token is required"):
        anonymous.query_datasets("difference_image", visit=VISIT)
    with pytest.raises(ArchiveError, match="bearer token is required"):
        anonymous.dia_sources(VISIT, DETECTOR)
    with pytest.raises(ArchiveError, match="bearer token is required"):
        anonymous.fetch("difference_image", visit=VISIT, detector=DETECTOR)

    wrong = Archive(token_server.url, token="not-the-token", progress=False)
    with pytest.raises(ArchiveError, match="not valid"):
        wrong.cutout_fits({"visit": VISIT, "detector": DETECTOR}, RA, DEC, 0.005)

    authed = Archive(token_server.url, token=test_token, progress=False)
    refs = authed.query_datasets("difference_image", visit=VISIT, detector=DETECTOR)
    assert pairs(refs) == [(VISIT, DETECTOR)]
    assert authed.cutout_fits(refs[0], RA, DEC, 0.005)[:6] == b"SIMPLE"
    assert len(authed.dia_sources(VISIT, DETECTOR)) > 0  # the async job belongs to the token's owner

    service = get_tap_service("tap", url=token_server.url, token=test_token)
    assert len(service.search("SELECT TOP 1 lsst_visit FROM ivoa.ObsCore")) == 1


def test_get_tap_service_reads_the_environment(token_server, test_token, monkeypatch):
    for name in ("DIAVO_URL", "DIAVO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXTERNAL_TAP_URL", token_server.tap_url)
    monkeypatch.setenv("ACCESS_TOKEN", test_token)
    service = get_tap_service("tap")
    assert service.baseurl == token_server.tap_url
    assert len(service.search("SELECT TOP 2 lsst_visit FROM ivoa.ObsCore")) == 2

    monkeypatch.setenv("DIAVO_URL", token_server.url)  # diavo's own variables win
    monkeypatch.setenv("DIAVO_TOKEN", test_token)
    monkeypatch.setenv("ACCESS_TOKEN", "stale")
    assert len(get_tap_service().search("SELECT TOP 1 lsst_visit FROM ivoa.ObsCore")) == 1

    # an environment token never goes to a URL given as an argument
    with pytest.raises(pyvo.dal.DALAccessError, match="bearer token is required"):
        get_tap_service(url=token_server.url).search("SELECT TOP 1 lsst_visit FROM ivoa.ObsCore")
    with pytest.raises(ValueError, match="ssotap"):
        get_tap_service("ssotap")


def test_rubin_lsst_rsp_reads_the_same_variables(token_server, test_token, monkeypatch):
    rsp = pytest.importorskip("lsst.rsp", reason="lsst-rsp is not installed (it is not a diavo dependency)")
    monkeypatch.setenv("EXTERNAL_TAP_URL", token_server.tap_url)
    monkeypatch.setenv("ACCESS_TOKEN", test_token)
    service = rsp.get_tap_service("tap")
    assert len(service.search("SELECT TOP 1 lsst_visit FROM ivoa.ObsCore")) == 1


# -- the client stays thin ----------------------------------------------------------------------------

def test_client_never_imports_the_server():
    client_dir = Path(__file__).resolve().parents[1] / "client"
    for path in client_dir.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith(("diavo.server", "server")) for n in names), path.name
    code = ("import sys, diavo.client, diavo.client.archive, diavo.client.query, diavo.client.refs, "
            "diavo.client.rsp, diavo.client.download\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('duckdb', 'pyarrow', 'starlette', "
            "'uvicorn', 'lark', 'matplotlib', 'tqdm') or m.startswith('diavo.server')]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_token_goes_only_to_the_service():
    from diavo.client.rsp import bearer_session

    session = bearer_session("t0k", "http://127.0.0.1:8123/")

    def header(url: str):
        return session.prepare_request(requests.Request("GET", url)).headers.get("Authorization")

    assert header("http://127.0.0.1:8123/tap/sync?QUERY=x") == "Bearer t0k"
    assert header("http://127.0.0.1:8124/tap") is None
    assert header("https://127.0.0.1:8123/tap") is None
    assert header("http://elsewhere.example/images/1/2.fits") is None
    session.auth.allow("http://cdn.example/")
    assert header("http://cdn.example/x.fits") == "Bearer t0k"
    assert bearer_session(None).auth is None
    with pytest.raises(ValueError):
        bearer_session("two\nlines")


def test_progress_without_tqdm(monkeypatch, capsys):
    from diavo.client.download import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = Progress("difference_image 1/2", 3_000_000, True)
    bar.update(1_000_000)
    bar.close()
    assert "difference_image 1/2: 1.0/3.0 MB" in capsys.readouterr().err
    quiet = Progress("small", 1000, None)  # automatic mode: small downloads stay silent
    quiet.update(1000)
    quiet.close()
    assert not quiet.enabled and capsys.readouterr().err == ""
