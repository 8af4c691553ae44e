"""A HATS catalog that diavo did not write (LSDB's own ``write_catalog``, a collection with its
margin) linked into an archive with ``diavo ingest --hats`` and served through TAP with full
ADQL: SELECT *, cones with partition pruning, joins with diavo's tables and uploads, aggregates,
TAP_SCHEMA and VOSI."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from astropy.io.votable import parse
from astropy.table import Table as AstropyTable

lsdb = pytest.importorskip("lsdb")
import pandas as pd  # noqa: E402

from conformance.server_process import ServerProcess  # noqa: E402

DIAVO = Path(sys.executable).with_name("diavo")
N = 5000


def diavo(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(DIAVO), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """An LSDB-written collection (catalog + 5 arcsec margin), as LSDB users publish them."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"objid": np.arange(N, dtype=np.int64), "ra": 53.1 + rng.uniform(-0.5, 0.5, N),
                          "dec": -27.8 + rng.uniform(-0.5, 0.5, N), "mag": rng.normal(22, 1, N).astype(np.float32),
                          "name": [f"obj{i}" for i in range(N)]})
    out = tmp_path_factory.mktemp("lsdb") / "survey_collection"
    lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", catalog_name="survey", partition_rows=800,
                        highest_order=10).write_catalog(out, progress_bar=False)
    assert (out / "collection.properties").is_file()
    return out, frame


@pytest.fixture(scope="module", params=["duckdb", "spark"])
def server(request, small_archive, small_hats, survey, tmp_path_factory):
    """The archive with the linked catalogs, served by DuckDB and by Spark on the cluster."""
    env = {}
    if request.param == "spark":
        from conformance.spark_cluster import driver_conf

        cluster = request.getfixturevalue("spark_cluster")
        env = {"DIAVO_ENGINE": "spark", "DIAVO_SPARK_MASTER": cluster.url,
               "DIAVO_SPARK_CONF": ",".join(f"{k}={v}" for k, v in driver_conf(cluster).items())}
    root = tmp_path_factory.mktemp("linked") / "archive"
    shutil.copytree(small_archive[0], root)
    own = small_hats
    for spec in (f"ext.Survey={survey[0]}", f"ext.Sources={own / 'dp1.DiaSource'}"):
        proc = diavo("ingest", root, "--hats", spec)
        assert proc.returncode == 0, proc.stderr
    assert set(json.loads((root / "linked.json").read_text())) == {"ext.Survey", "ext.Sources"}
    work = tmp_path_factory.mktemp("linked-server")
    s = ServerProcess(archive=root, state_dir=work / "uws", log_path=work / "server.log", extra_env=env)
    s.start()
    yield s
    s.stop()


def tap(server, adql: str, **extra) -> AstropyTable:
    r = requests.post(f"{server.url}/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql,
                                                      "MAXREC": "100000"}, timeout=120, **extra)
    assert r.status_code == 200, r.text[:400]
    vot = parse(io.BytesIO(r.content))
    status = [i.value for i in vot.resources[0].infos if i.name == "QUERY_STATUS"]
    assert status == ["OK"], r.text[-400:]
    return vot.get_first_table().to_table()


def test_select_star_and_order(server, survey):
    t = tap(server, "SELECT * FROM ext.Survey ORDER BY objid")
    assert t.colnames == ["objid", "ra", "dec", "mag", "name"] and len(t) == N
    assert list(t["objid"][:3]) == [0, 1, 2] and t["name"][4] == "obj4"
    np.testing.assert_array_equal(np.asarray(t["ra"]), survey[1]["ra"].to_numpy())


@pytest.mark.parametrize(("ra", "dec", "r"), [(53.1, -27.7, 0.1), (53.4, -28.1, 0.05), (52.7, -27.4, 0.2)])
def test_cone_equals_lsdb(server, survey, ra, dec, r):
    t = tap(server, f"SELECT objid FROM ext.Survey WHERE CONTAINS(POINT(ra, dec), CIRCLE({ra}, {dec}, {r})) = 1")
    theirs = lsdb.open_catalog(survey[0]).cone_search(ra, dec, r * 3600).compute()
    assert set(int(x) for x in t["objid"]) == set(int(x) for x in theirs["objid"]) and len(t) > 0


def test_join_aggregate_subquery_upload(server, survey, tmp_path):
    frame = survey[1]
    faint = tap(server, "SELECT COUNT(*) AS n, MIN(objid) AS lo, MAX(objid) AS hi FROM ext.Survey WHERE mag > 22")
    assert int(faint["n"][0]) == int((frame["mag"] > 22).sum())
    joined = tap(server, "SELECT COUNT(*) AS n FROM ext.Survey AS s JOIN dp1.DiaObject AS o "
                         "ON 1 = CONTAINS(POINT(o.ra, o.dec), CIRCLE(s.ra, s.dec, 0.002))")
    assert int(joined["n"][0]) > 0
    sub = tap(server, "SELECT COUNT(*) AS n FROM ext.Survey WHERE objid IN (SELECT objid FROM ext.Survey "
                      "WHERE name LIKE 'obj1%')")
    assert int(sub["n"][0]) == sum(1 for x in frame["name"] if x.startswith("obj1"))
    up = tmp_path / "mine.xml"
    AstropyTable({"id": [10, 20], "objid": [3, 4000]}).write(up, format="votable")
    r = requests.post(f"{server.url}/tap/sync", timeout=120, data={
        "REQUEST": "doQuery", "LANG": "ADQL", "UPLOAD": "mine,param:mine",
        "QUERY": "SELECT u.id, s.name FROM TAP_UPLOAD.mine AS u JOIN ext.Survey AS s ON s.objid = u.objid "
                 "ORDER BY u.id"}, files={"mine": up.read_bytes()})
    assert r.status_code == 200, r.text[:300]
    matched = parse(io.BytesIO(r.content)).get_first_table().to_table()
    assert [str(x) for x in matched["name"]] == ["obj3", "obj4000"]


def test_metadata_comes_from_the_parquet_schema(server):
    cols = tap(server, "SELECT column_name, datatype, unit, ucd FROM TAP_SCHEMA.columns "
                       "WHERE table_name = 'ext.Sources' AND column_name IN ('ra', 'psfFlux')")
    units = {str(r["column_name"]): str(r["unit"]) for r in cols}
    assert units == {"ra": "deg", "psfFlux": "nJy"}
    tables = requests.get(f"{server.url}/tap/tables", timeout=60).text
    assert "<name>ext.Survey</name>" in tables and "<name>ext.Sources</name>" in tables
    t = tap(server, "SELECT TOP 3 ra, psfFlux FROM ext.Sources ORDER BY diaSourceId")
    assert str(t["ra"].unit) == "deg" and str(t["psfFlux"].unit) == "nJy"


def test_linking_refuses_what_is_not_a_catalog(small_archive, tmp_path):
    root = tmp_path / "archive"
    shutil.copytree(small_archive[0], root)
    bad = diavo("ingest", root, "--hats", f"ext.Nothing={tmp_path}")
    assert bad.returncode != 0 and "is not a HATS catalog" in bad.stderr and "Traceback" not in bad.stderr
    own = diavo("ingest", root, "--hats", f"dp1.DiaSource={tmp_path}")
    assert own.returncode != 0 and "Traceback" not in own.stderr
    assert not (root / "linked.json").exists()
