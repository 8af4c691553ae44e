"""The SQL each dialect writes, fixed in golden files, and the plan's spatial nodes.

``tests/golden/duckdb.json`` holds, for representative ADQL (every spatial fast path, each
spelling a dialect decides), the exact SQL and parameters the DuckDB dialect emits on the native
storage and on HATS partitions. A change to the emitter or a dialect that changes SQL shows up
here as a diff to review; after reviewing, ``DIAVO_UPDATE_GOLDEN=1 pytest tests/test_sql_dialects.py``
rewrites the file. The answers themselves are tested elsewhere (test_storage_corpus, the TAP
tests); this file pins the text.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from diavo.server.adql import nodes as n
from diavo.server.adql.check import check
from diavo.server.adql.errors import ADQLError
from diavo.server.adql.parser import parse
from diavo.server.adql.plan import ConeTest, HealpixIndex, PolygonTest, RegionTest, plan
from diavo.server.archive.layout import PLAIN, Layout, Partition
from diavo.server.archive.model import Column, Table, load_model
from diavo.server.archive.store import physical_layout
from diavo.server.engine.base import EngineQuery
from diavo.server.sql.dialect import Dialect
from diavo.server.sql.duckdb_dialect import DUCKDB
from diavo.server.sql.emitter import emit

GOLDEN = Path(__file__).parent / "golden" / "duckdb.json"
CONE = "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(53.1, -27.8, 0.05)) = 1"
QUERIES = [
    CONE,
    "SELECT TOP 5 diaSourceId, ra FROM dp1.DiaSource WHERE 1 = CONTAINS(POINT(ra, dec), "
    "POLYGON(53.0, -27.9, 53.2, -27.9, 53.1, -27.7)) ORDER BY ra DESC",
    "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), BOX(53.1, -27.8, 0.2, 0.1)) = 1",
    "SELECT s.diaSourceId, DISTANCE(POINT(s.ra, s.dec), POINT(53.1, -27.8)) * 3600 AS sep FROM dp1.DiaSource AS s "
    "WHERE DISTANCE(POINT(53.1, -27.8), POINT(s.ra, s.dec)) < 0.01 AND s.band = 'r'",
    "SELECT obs_id FROM ivoa.ObsCore WHERE CONTAINS(POINT(53.1, -27.8), s_region) = 1",
    "SELECT obs_id, s_region FROM ivoa.ObsCore WHERE INTERSECTS(CIRCLE(53.1, -27.8, 0.1), s_region) = 1 OFFSET 1",
    "SELECT ivo_healpix_index(10, ra, dec) AS hpx, COUNT(*) FROM dp1.DiaSource GROUP BY hpx",
    "SELECT visit / 2, visit / 2.0, visit ^ 3, band || visit, MOD(visit, 7) FROM dp1.DiaSource",
    "SELECT IN_UNIT(ra, 'arcsec'), SUM(visit), SUM(psfFlux), TRUNCATE(ra, 2), ROUND(dec), CEILING(ra), LOG(ra) "
    "FROM dp1.DiaSource GROUP BY ra, dec",
    "SELECT CAST('10 20' AS POINT), POINT(ra, dec), CIRCLE(POINT(ra, dec), 0.1), CENTROID(s_region), "
    "AREA(s_region), COORD1(POINT(ra, dec)) FROM dp1.DiaSource, ivoa.ObsCore",
    "SELECT visit FROM dp1.DiaSource AS s FULL JOIN dp1.Visit AS v USING (visit)",
    "SELECT u.id, s.diaSourceId FROM TAP_UPLOAD.mine AS u JOIN dp1.DiaSource AS s "
    "ON CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ra, u.dec, 0.001)) = 1",
    "SELECT table_name FROM TAP_SCHEMA.tables WHERE ivo_hasword(description, 'difference') = 1",
    "WITH b AS (SELECT band, COUNT(*) AS n FROM dp1.DiaSource GROUP BY band) SELECT * FROM b ORDER BY n",
    "SELECT band FROM dp1.DiaSource UNION SELECT band FROM dp1.Visit ORDER BY 1 OFFSET 2",
]


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def layouts(model):
    """The native storage's layout and a HATS one (partition files need not exist to emit SQL)."""
    from diavo.server.archive.store import hats_index_of

    native = physical_layout(model)
    spatial = {name: hats_index_of(ix.ra, ix.dec) for name, ix in native.spatial.items()}
    parts = {name: tuple(Partition(1, p, f"/hats/{name}/Npix={p}.parquet") for p in range(48))
             for name in spatial}
    return {"native": native, "hats": Layout(spatial=spatial, regions=native.regions, partitions=parts)}


UPLOAD = Table("TAP_UPLOAD", "mine", "", (Column("id", "long"), Column("ra", "double", unit="deg"),
                                          Column("dec", "double", unit="deg")))


def emitted(model, layout, adql, dialect=DUCKDB):
    t = emit(plan(check(parse(adql), model, {"mine": UPLOAD}), layout), dialect)
    return {"sql": t.sql, "params": [str(p) for p in t.params]}


def test_duckdb_sql_is_the_golden_text(model, layouts):
    got = {f"{name} | {q}": emitted(model, layout, q) for q in QUERIES for name, layout in layouts.items()}
    if os.environ.get("DIAVO_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key


def test_spatial_predicates_are_plan_nodes(model, layouts):
    def planned(adql, layout):
        return list(n.walk(plan(check(parse(adql), model, {"mine": UPLOAD}), layout).query))

    nodes = planned(QUERIES[0], layouts["native"])
    cone = next(x for x in nodes if isinstance(x, ConeTest))
    assert (cone.ra, cone.dec, cone.radius, cone.strict) == (53.1, -27.8, 0.05, False)
    assert cone.cover.order == 16 and cone.cover.ranges and cone.position.alias == "DiaSource"
    hats = planned(QUERIES[0], layouts["hats"])
    assert next(x for x in hats if isinstance(x, ConeTest)).cover.order == 29
    assert any(isinstance(x, PolygonTest) for x in planned(QUERIES[1], layouts["native"]))
    assert any(isinstance(x, PolygonTest) for x in planned(QUERIES[2], layouts["native"]))  # BOX
    assert any(isinstance(x, ConeTest) and x.strict for x in planned(QUERIES[3], layouts["native"]))
    assert any(isinstance(x, RegionTest) and x.mode == 2 for x in planned(QUERIES[4], layouts["native"]))
    assert any(isinstance(x, HealpixIndex) for x in planned(QUERIES[6], layouts["native"]))
    # no layout, no fast paths: the tree is the checked one
    plain = planned(QUERIES[0], PLAIN)
    assert not any(isinstance(x, (ConeTest, PolygonTest, RegionTest)) for x in plain)
    # a shape that is not constant (an uploaded centre) stays the generic test
    assert not any(isinstance(x, ConeTest) for x in planned(QUERIES[11], layouts["native"]))


def test_pruning_keeps_only_partitions_that_meet_the_cover(model, layouts):
    layout = layouts["hats"]
    q = plan(check(parse(QUERIES[0]), model), layout).query
    ref = next(x for x in n.walk(q) if isinstance(x, n.TableRef))
    everything = layout.partitions["dp1.DiaSource"]
    assert 0 < len(ref.files) < len(everything)
    # under OR, or inside a correlated subquery on an outer table, a cone prunes nothing
    for adql in (
        QUERIES[0].replace("= 1", "= 1 OR diaSourceId = 3"),
        "SELECT a.diaSourceId FROM dp1.DiaSource AS a WHERE NOT EXISTS (SELECT 1 FROM dp1.Visit AS v "
        "WHERE v.visit = a.visit AND CONTAINS(POINT(a.ra, a.dec), CIRCLE(53.1, -27.8, 0.05)) = 1)",
    ):
        q = plan(check(parse(adql), model), layout).query
        outer = next(x for x in n.walk(q) if isinstance(x, n.TableRef) and x.source.sql_alias in ("DiaSource", "a"))
        assert len(outer.files) == len(everything), adql


class Ansi(Dialect):
    """The base dialect as it stands: standard SQL, no geometry."""


def test_base_dialect_spells_standard_sql_and_refuses_geometry(model, layouts):
    sql = emitted(model, PLAIN, "SELECT visit / 2, visit ^ 3, CAST(ra AS DOUBLE PRECISION) FROM dp1.DiaSource",
                  Ansi())["sql"]
    assert '("DiaSource"."visit" / 2)' in sql and '("DiaSource"."visit" # 3)' in sql
    assert 'CAST("DiaSource"."ra" AS DOUBLE PRECISION)' in sql
    with pytest.raises(ADQLError, match="not available on the ansi engine"):
        emitted(model, PLAIN, "SELECT POINT(ra, dec) FROM dp1.DiaSource", Ansi())
    # the planned cone on stored unit vectors is plain arithmetic, even without geometry
    cone = emitted(model, layouts["native"], QUERIES[0], Ansi())["sql"]
    assert '"DiaSource"."_x" * ' in cone and "_healpix" in cone


def test_maxrec_becomes_the_dialects_limit(model):
    t = emit(plan(check(parse("SELECT TOP 10 ra FROM dp1.DiaSource ORDER BY ra OFFSET 3"), model), PLAIN), DUCKDB)
    q = EngineQuery(t.sql, tuple(t.params), head=t.head, top=t.top, offset=t.offset)
    assert q.sql_for(None, DUCKDB) == t.sql and t.sql.endswith(" LIMIT 10 OFFSET 3")
    assert q.sql_for(4, DUCKDB).endswith(" LIMIT 5 OFFSET 3")  # MAXREC+1 tells overflow from a fit
    assert q.sql_for(100, DUCKDB).endswith(" LIMIT 10 OFFSET 3")
    t = emit(plan(check(parse("SELECT band FROM dp1.DiaSource UNION SELECT band FROM dp1.Visit"), model), PLAIN),
             DUCKDB)
    q = EngineQuery(t.sql, head=t.head, top=t.top, offset=t.offset)
    assert t.sql.startswith("SELECT * FROM (") and q.sql_for(0, DUCKDB) == t.sql + " LIMIT 1"
