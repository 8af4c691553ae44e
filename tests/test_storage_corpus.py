"""One corpus of ADQL queries, every storage: the DuckDB catalog's own tables and the same
archive's spatial tables read from HATS catalogs (``diavo export --hats``, ``serve --hats``) must
give the same rows and the same column metadata. Spark and PostgreSQL will join this list.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

pytest.importorskip("lsdb")

from diavo.server.archive.model import Column, Table, load_model  # noqa: E402
from diavo.server.archive.store import own_hats_dir  # noqa: E402
from diavo.server.engine.base import Limits  # noqa: E402
from diavo.server.engine.duckdb_engine import DuckDBEngine  # noqa: E402
from diavo.server.query.executor import QueryService  # noqa: E402

CONE = "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 53.125, -27.74, 0.05)) = 1"
CORPUS = {
    "cone": f"SELECT diaSourceId, ra, dec, psfFlux FROM dp1.DiaSource WHERE {CONE}",
    "cone-distance": "SELECT diaSourceId FROM dp1.DiaSource WHERE DISTANCE(POINT(ra, dec), POINT(53.2, -27.8)) < 0.1",
    "cone-4-numbers": "SELECT diaSourceId FROM dp1.DiaSource WHERE DISTANCE(ra, dec, 53.2, -27.8) <= 0.1",
    "polygon": "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), "
               "POLYGON(53.0, -27.9, 53.3, -27.9, 53.3, -27.6, 53.0, -27.6)) = 1",
    "box": "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), BOX(53.1, -27.8, 0.4, 0.2)) = 1",
    "intersects": "SELECT diaObjectId FROM dp1.DiaObject WHERE INTERSECTS(CIRCLE(53.1, -27.8, 0.2), POINT(ra, dec)) = 1",
    "empty-cone": "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(200, 60, 0.1)) = 1",
    "tutorial": "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2",
    "join-visit": "SELECT s.diaSourceId, v.airmass FROM dp1.DiaSource AS s JOIN dp1.Visit AS v ON s.visit = v.visit "
                  "WHERE s.band = 'r' AND v.airmass < 1.2",
    "join-object": "SELECT o.diaObjectId, COUNT(*) AS n FROM dp1.DiaObject AS o JOIN dp1.DiaSource AS s "
                   "ON s.diaObjectId = o.diaObjectId GROUP BY o.diaObjectId HAVING COUNT(*) > 3",
    "aggregate": "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS mean, MIN(ra) AS lo, MAX(dec) AS hi "
                 "FROM dp1.DiaSource GROUP BY band",
    "healpix-udf": "SELECT ivo_healpix_index(6, ra, dec) AS pix, COUNT(*) AS n FROM dp1.DiaSource "
                   "GROUP BY ivo_healpix_index(6, ra, dec)",
    "order-offset": "SELECT TOP 20 diaSourceId, psfFlux FROM dp1.DiaSource ORDER BY psfFlux DESC, diaSourceId OFFSET 5",
    "nulls": "SELECT diaObjectId, u_psfFluxMean FROM dp1.DiaObject WHERE u_psfFluxMean IS NULL "
             "AND CONTAINS(POINT(ra, dec), CIRCLE(53.125, -27.74, 0.3)) = 1",
    "union": "SELECT diaSourceId AS id FROM dp1.DiaSource WHERE band = 'g' "
             "UNION SELECT diaObjectId FROM dp1.DiaObject WHERE nDiaSources > 20",
    "cte": "WITH bright AS (SELECT diaSourceId, psfFlux FROM dp1.DiaSource WHERE psfFlux > 5000) "
           "SELECT COUNT(*) AS n, MAX(psfFlux) AS m FROM bright",
    "subquery": "SELECT diaObjectId FROM dp1.DiaObject WHERE diaObjectId IN "
                f"(SELECT diaObjectId FROM dp1.DiaSource WHERE {CONE})",
    "functions": "SELECT TOP 5 diaSourceId, UPPER(band) AS b, ROUND(psfFlux, 1) AS f, SQRT(ABS(psfFlux)) AS s, "
                 "IN_UNIT(ra, 'arcsec') AS ra_as FROM dp1.DiaSource ORDER BY diaSourceId",
    "geometry-out": "SELECT TOP 3 diaSourceId, POINT(ra, dec) AS p, COORD1(POINT(ra, dec)) AS c1, "
                    "DISTANCE(POINT(ra, dec), POINT(53, -28)) AS d FROM dp1.DiaSource ORDER BY diaSourceId",
    "select-star": f"SELECT * FROM dp1.DiaSource WHERE {CONE}",
    "cone-or": f"SELECT diaSourceId FROM dp1.DiaSource WHERE {CONE} OR band = 'z'",
    "not-cone": f"SELECT COUNT(*) AS n FROM dp1.DiaSource WHERE NOT ({CONE})",
    "two-cones": f"SELECT diaSourceId FROM dp1.DiaSource WHERE {CONE} AND "
                 "CONTAINS(POINT(ra, dec), CIRCLE(53.15, -27.75, 0.04)) = 1",
    "cone-outer-join": "SELECT v.visit, s.diaSourceId FROM dp1.Visit AS v LEFT JOIN dp1.DiaSource AS s "
                       "ON s.visit = v.visit WHERE CONTAINS(POINT(s.ra, s.dec), CIRCLE(53.125, -27.74, 0.05)) = 1",
    "cone-subquery": f"SELECT COUNT(*) AS n FROM (SELECT diaSourceId FROM dp1.DiaSource WHERE {CONE}) AS c",
    "upload-match": "SELECT u.id, s.diaSourceId FROM TAP_UPLOAD.mine AS u JOIN dp1.DiaSource AS s "
                    "ON 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ra, u.dec, 0.01))",
}


#: Every geometry function, on stored footprints (ObsCore's s_region) as on positions. Engines
#: without an STC-S parser may refuse some of these with a message (test_spark.py says which).
GEOMETRY_CORPUS = {
    "geometry-functions": "SELECT TOP 5 obs_id, AREA(s_region) AS a, CENTROID(s_region) AS c, "
                          "COORD2(CENTROID(s_region)) AS c2, COORDSYS(s_region) AS cs FROM ivoa.ObsCore ORDER BY obs_id",
    "region": "SELECT COUNT(*) AS n FROM ivoa.ObsCore "
              "WHERE INTERSECTS(REGION('CIRCLE ICRS 53.125 -27.74 0.1'), s_region) = 1",
    "footprint-point": "SELECT obs_id FROM ivoa.ObsCore WHERE CONTAINS(POINT('ICRS', 53.125, -27.74), s_region) = 1",
    "footprint-circle": "SELECT obs_id FROM ivoa.ObsCore WHERE INTERSECTS(CIRCLE(53.125, -27.74, 0.2), s_region) = 1",
    "shapes-out": "SELECT TOP 3 diaSourceId, CIRCLE(ra, dec, 0.01) AS c, BOX(ra, dec, 0.1, 0.1) AS b, "
                  "POLYGON(ra, dec, ra + 0.1, dec, ra, dec + 0.1) AS p, COORD2(POINT(ra, dec)) AS d, "
                  "CAST('10 20' AS POINT) AS q FROM dp1.DiaSource ORDER BY diaSourceId",
}


@pytest.fixture(scope="module")
def services(small_archive, small_hats):
    hats = small_hats
    model = load_model()
    native = QueryService(model, DuckDBEngine(small_archive[0], model))
    over_hats = QueryService(model, DuckDBEngine(small_archive[0], model, hats_dir=Path(hats)))
    # the archive's own HATS catalogs (DIR/hats, what 'diavo serve --storage hats' reads)
    own = QueryService(model, DuckDBEngine(small_archive[0], model, hats_dir=own_hats_dir(small_archive[0])))
    yield {"native": native, "hats": over_hats, "own-hats": own}
    for service in (native, over_hats, own):
        service.close()


def uploads():
    table = Table("TAP_UPLOAD", "mine", "", (Column("id", "long"), Column("ra", "double", unit="deg"),
                                              Column("dec", "double", unit="deg")))
    data = pa.table({"id": [1, 2, 3], "ra": [53.125, 53.2, 10.0], "dec": [-27.74, -27.8, 0.0]})
    return {"mine": SimpleNamespace(table=table, data=data)}


def run(service, adql):
    result = service.run(adql, Limits(maxrec=None, timeout_s=120), uploads=uploads() if "TAP_UPLOAD" in adql else None)
    return result.table


def rows(table: pa.Table, ordered: bool) -> list:
    values = [tuple(r.values()) for r in table.to_pylist()]
    return values if ordered else sorted(values, key=repr)


@pytest.mark.parametrize("storage", ["hats", "own-hats"])
@pytest.mark.parametrize("name", list(CORPUS) + list(GEOMETRY_CORPUS))
def test_same_answers_on_every_storage(services, name, storage):
    adql = CORPUS.get(name) or GEOMETRY_CORPUS[name]
    reference = run(services["native"], adql)
    other = run(services[storage], adql)
    ordered = "ORDER BY" in adql
    assert other.column_names == reference.column_names
    tables = {"mine": uploads()["mine"].table} if "TAP_UPLOAD" in adql else None
    assert services[storage].translate(adql, tables).columns == services["native"].translate(adql, tables).columns
    assert rows(other, ordered) == rows(reference, ordered)


def test_corpus_is_not_vacuous(services):
    counts = {name: run(services["native"], adql).num_rows for name, adql in {**CORPUS, **GEOMETRY_CORPUS}.items()}
    assert counts["empty-cone"] == 0
    assert all(counts[k] > 0 for k in counts if k != "empty-cone"), counts


def test_hats_cone_prunes_by_healpix_29(services):
    sql = services["hats"].translate(CORPUS["cone"]).sql
    assert "read_parquet(" in sql and '"_healpix_29" BETWEEN' in sql and '"_x"' not in sql
    assert '"_healpix" BETWEEN' in services["native"].translate(CORPUS["cone"]).sql


def test_tap_service_over_hats(small_archive, small_server, small_hats, tmp_path_factory):
    """``diavo serve --hats`` (here DIAVO_HATS_DIR): the same TAP answers over HTTP."""
    import io

    import requests
    from astropy.io.votable import parse

    from conformance.server_process import ServerProcess

    hats = small_hats
    work = tmp_path_factory.mktemp("hats-server")
    proc = ServerProcess(archive=small_archive[0], state_dir=work / "uws", log_path=work / "server.log",
                         extra_env={"DIAVO_HATS_DIR": str(hats)})
    proc.start()
    try:
        answers = []
        for server in (small_server, proc):
            r = requests.get(f"{server.url}/tap/sync", timeout=60, params={
                "REQUEST": "doQuery", "LANG": "ADQL",
                "QUERY": CORPUS["cone"] + " ORDER BY diaSourceId", "RESPONSEFORMAT": "votable"})
            assert r.status_code == 200, r.text[:300]
            table = parse(io.BytesIO(r.content)).get_first_table()
            answers.append(([(f.name, f.unit, f.ucd) for f in table.fields], table.array.tolist()))
        assert answers[0] == answers[1] and len(answers[0][1]) > 100
    finally:
        proc.stop()


def test_partitions_outside_the_cover_are_not_read(services):
    import re

    def files(adql):
        sql = services["hats"].translate(adql).sql
        return [len(re.findall(r"'[^']*Npix=\d+\.parquet'", m)) for m in re.findall(r"read_parquet\(\[(.*?)\]", sql)]
    total = len(services["hats"].engine.layout.partitions["dp1.DiaSource"])
    assert total > 3
    (pruned,) = files(CORPUS["cone"])
    assert 1 <= pruned < total
    assert files(CORPUS["cone-or"]) == [total]  # under OR the cone cannot exclude a partition
    assert files(CORPUS["not-cone"]) == [total]
    assert files(CORPUS["two-cones"])[0] <= pruned
