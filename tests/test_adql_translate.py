"""Checking against the data model, translation to DuckDB SQL, and running it on a demo archive."""
from __future__ import annotations

import pytest

from diavo.server.adql.check import check
from diavo.server.adql.errors import ADQLError
from diavo.server.adql.parser import parse
from diavo.server.archive.model import load_model
from diavo.server.engine import duckdb_functions
from diavo.server.query.executor import translate


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def con(small_archive):
    from diavo.server.archive import store

    c = store.connect(small_archive[0])
    duckdb_functions.register(c)
    duckdb_functions.register_healpix_index(c)
    yield c
    c.close()


def run(con, model, adql, **kw):
    t = translate(adql, model, **kw)
    return t, con.execute(t.sql, t.params).fetchall()


def rows(con, sql, params=()):
    return con.execute(sql, list(params)).fetchall()


# ---------------------------------------------------------------- checking errors

@pytest.mark.parametrize("adql,code,needle", [
    ("SELECT psfflx FROM dp1.DiaSource", "unknown-column", "psfFlux"),
    ("SELECT ra FROM dp1.DiaSorce", "unknown-table", "DiaSource"),
    ("SELECT ra FROM dq1.DiaSource", "unknown-schema", "dp1"),
    ("SELECT visit FROM dp1.DiaSource AS s, dp1.Visit AS v", "ambiguous-column", None),
    ("SELECT x.ra FROM dp1.DiaSource AS s", "unknown-table", None),
    ("SELECT dp1.DiaSource.ra FROM dp1.DiaSource AS s", "unknown-table", None),
    ("SELECT _healpix FROM dp1.DiaSource", "syntax", None),
    ('SELECT "_healpix" FROM dp1.DiaSource', "unknown-column", None),
    ('SELECT "diasourceid" FROM dp1.DiaSource', "unknown-column", "diaSourceId"),
    ("SELECT ABS(band) FROM dp1.DiaSource", "type", None),
    ("SELECT ra FROM dp1.DiaSource WHERE band = 3", "type", None),
    ("SELECT ROUND(ra, 1, 2) FROM dp1.DiaSource", "syntax", None),
    ("SELECT ivo_hasword(band) FROM dp1.DiaSource", "arguments", None),
    ("SELECT IN_UNIT(ra, 'm') FROM dp1.DiaSource", "unit", None),
    ("SELECT IN_UNIT(visit, 'deg') FROM dp1.DiaSource", "unit", None),
    ("SELECT ra FROM dp1.DiaSource UNION SELECT ra, dec FROM dp1.DiaSource", "type", None),
    ("SELECT ra FROM dp1.DiaSource ORDER BY 3", "type", None),
    ("SELECT a FROM TAP_UPLOAD.nothing", "unknown-table", None),
    ("SELECT ra FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), band) = 1", "type", None),
])
def test_check_errors(model, adql, code, needle):
    with pytest.raises(ADQLError) as info:
        translate(adql, model)
    assert info.value.code == code, str(info.value)
    assert info.value.line >= 1
    if needle:
        assert needle in str(info.value)


def test_suggestion_for_psfflx(model):
    with pytest.raises(ADQLError) as info:
        check(parse("SELECT psfflx FROM dp1.DiaSource"), model)
    assert (info.value.line, info.value.column) == (1, 8)
    assert "psfFlux" in info.value.hint


def test_star_comes_from_the_model(model):
    t = translate("SELECT * FROM dp1.DiaSource", model)
    names = [c["name"] for c in t.columns]
    assert names == [c.name for c in model.table("dp1.DiaSource").columns]
    assert "_healpix" not in t.sql.split("FROM")[0]
    t2 = translate("SELECT s.*, v.airmass FROM dp1.DiaSource AS s JOIN dp1.Visit AS v USING (visit)", model)
    assert len(t2.columns) == len(names) + 1


def test_output_metadata(model):
    t = translate("SELECT diaSourceId, ra AS alpha, COUNT(*), AVG(psfFlux), POINT('ICRS', ra, dec), "
                  "CIRCLE(ra, dec, 1), POLYGON(1, 2, 3, 4, 5, 6), DISTANCE(ra, dec, 1, 2), ra, ra "
                  "FROM dp1.DiaSource GROUP BY diaSourceId, ra, dec", model)
    cols = {c["name"]: c for c in t.columns}
    assert cols["diaSourceId"]["datatype"] == "long"
    assert cols["alpha"]["unit"] == "deg" and cols["alpha"]["ucd"] == model.table("dp1.DiaSource").column("ra").ucd
    count, avg, point, circle, polygon, dist = t.columns[2:8]
    assert count["datatype"] == "long"
    assert avg["datatype"] == "double" and avg["unit"] == "nJy"
    assert (point["datatype"], point["arraysize"], point["xtype"]) == ("double", "2", "point")
    assert (circle["arraysize"], circle["xtype"]) == ("3", "circle")
    assert (polygon["arraysize"], polygon["xtype"]) == ("*", "polygon")
    assert dist["unit"] == "deg"
    assert [c["name"] for c in t.columns[-2:]] == ["ra", "ra_2"]  # deduplicated


def test_identifiers_quoted_from_model_and_strings_bound(model):
    t = translate("SELECT DIASOURCEID FROM DP1.DIASOURCE WHERE band = 'r'", model)
    assert '"diaSourceId"' in t.sql and '"dp1"."DiaSource"' in t.sql
    assert "'r'" not in t.sql and t.params == ["r"]


def test_fast_path_sql(model):
    for adql in [
        "SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 59, -49, 0.1)) = 1",
        "SELECT diaSourceId FROM dp1.DiaSource AS s WHERE 1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(59, -49, 1./10))",
        "SELECT diaSourceId FROM dp1.DiaSource WHERE INTERSECTS(CIRCLE(59, -49, 0.1), POINT(ra, dec)) = 1",
        "SELECT diaSourceId FROM dp1.DiaSource WHERE DISTANCE(POINT(ra, dec), POINT(59, -49)) < 0.1",
        "SELECT diaObjectId FROM dp1.DiaObject WHERE CONTAINS(POINT(ra, dec), POLYGON(58.9, -49.1, 59.1, -49.1, 59, -48.9)) = 1",
        "SELECT diaObjectId FROM dp1.DiaObject WHERE CONTAINS(POINT(ra, dec), BOX(59, -49, 0.2, 0.2)) = 1",
    ]:
        sql = translate(adql, model).sql
        assert '"_healpix" BETWEEN' in sql, adql
        assert "\"_z\" * " in sql or "adql_in_polygon" in sql  # exact test: dot product (cones) or polygon
    generic = translate("SELECT obs_id FROM ivoa.ObsCore WHERE CONTAINS(POINT(s_ra, s_dec), CIRCLE(59, -49, 1)) = 1",
                        model).sql
    assert "_healpix" not in generic
    not_const = translate("SELECT diaSourceId FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(ra, -49, 1)) = 1",
                          model).sql
    assert "_healpix" not in not_const


# ---------------------------------------------------------------- running on the demo archive

def test_tutorial_query(con, model):
    visit, detector = 2024110800246, 2
    _, got = run(con, model, f"SELECT diaSourceId, x, y FROM dp1.DiaSource WHERE visit = {visit} AND detector = {detector}")
    want = rows(con, 'SELECT "diaSourceId", x, y FROM dp1."DiaSource" WHERE visit = ? AND detector = ?',
                [visit, detector])
    assert got and sorted(got) == sorted(want)


@pytest.mark.parametrize("shape,brute", [
    ("CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 59.0, -49.0, 0.2)) = 1",
     "adql_distance(ra, dec, 59.0, -49.0) <= 0.2"),
    ("DISTANCE(POINT(ra, dec), POINT(59.0, -49.0)) < 0.3", "adql_distance(ra, dec, 59.0, -49.0) < 0.3"),
    ("CONTAINS(POINT(ra, dec), POLYGON(58.8, -49.2, 59.3, -49.2, 59.0, -48.8)) = 1",
     "adql_in_polygon(ra, dec, [58.8, -49.2, 59.3, -49.2, 59.0, -48.8]::DOUBLE[])"),
])
def test_cone_and_polygon_equal_brute_force(con, model, shape, brute):
    t, got = run(con, model, f"SELECT diaSourceId FROM dp1.DiaSource WHERE {shape}")
    assert "_healpix" in t.sql
    want = rows(con, f'SELECT "diaSourceId" FROM dp1."DiaSource" WHERE {brute}')
    assert len(got) > 10 and sorted(got) == sorted(want)


def test_join_diasource_visit(con, model):
    _, got = run(con, model, "SELECT v.band, COUNT(*) AS n FROM dp1.DiaSource AS s JOIN dp1.Visit AS v "
                             "ON s.visit = v.visit GROUP BY v.band ORDER BY n DESC")
    want = rows(con, 'SELECT v.band, COUNT(*) AS n FROM dp1."DiaSource" s JOIN dp1."Visit" v ON s.visit = v.visit '
                     "GROUP BY v.band ORDER BY n DESC")
    assert got == want
    _, using = run(con, model, "SELECT COUNT(*) FROM dp1.DiaSource NATURAL JOIN dp1.Visit")
    assert using[0][0] == rows(con, 'SELECT COUNT(*) FROM dp1."DiaSource" s JOIN dp1."Visit" v '
                                    "ON s.visit = v.visit AND s.band = v.band AND s.ra = v.ra AND s.dec = v.dec")[0][0]


def test_group_by_alias_position_and_having(con, model):
    _, a = run(con, model, "SELECT band AS b, COUNT(*) FROM dp1.DiaSource GROUP BY b HAVING COUNT(*) > 10 ORDER BY b")
    _, b = run(con, model, "SELECT band, COUNT(*) FROM dp1.DiaSource GROUP BY 1 HAVING COUNT(*) > 10 ORDER BY 1")
    assert a == b and len(a) >= 2


def test_set_operations(con, model):
    _, union = run(con, model, "SELECT visit FROM dp1.Visit WHERE band = 'g' UNION SELECT visit FROM dp1.Visit "
                               "WHERE band = 'r' ORDER BY visit")
    want = rows(con, "SELECT visit FROM dp1.\"Visit\" WHERE band IN ('g', 'r') ORDER BY visit")
    assert union == want
    _, exc = run(con, model, "SELECT visit FROM dp1.Visit EXCEPT SELECT visit FROM dp1.Visit WHERE band = 'g'")
    _, inter = run(con, model, "SELECT visit FROM dp1.Visit INTERSECT SELECT visit FROM dp1.Visit WHERE band = 'g'")
    total = rows(con, 'SELECT COUNT(*) FROM dp1."Visit"')[0][0]
    assert len(exc) + len(inter) == total


def test_with_and_subqueries(con, model):
    _, a = run(con, model, "WITH bright AS (SELECT diaSourceId, visit FROM dp1.DiaSource WHERE psfFlux > 1000) "
                           "SELECT COUNT(*) FROM bright AS b JOIN dp1.Visit AS v ON b.visit = v.visit")
    want = rows(con, 'SELECT COUNT(*) FROM dp1."DiaSource" WHERE "psfFlux" > 1000')
    assert a == want
    _, b = run(con, model, "SELECT COUNT(*) FROM dp1.DiaSource WHERE visit IN (SELECT visit FROM dp1.Visit WHERE band = 'r')")
    _, c = run(con, model, "SELECT COUNT(*) FROM dp1.DiaSource AS s WHERE EXISTS "
                           "(SELECT 1 FROM dp1.Visit AS v WHERE v.visit = s.visit AND v.band = 'r')")
    _, d = run(con, model, "SELECT COUNT(*) FROM (SELECT s.band FROM dp1.DiaSource AS s) AS q WHERE q.band = 'r'")
    assert b == c == d
    _, e = run(con, model, "SELECT COUNT(*) FROM dp1.Visit WHERE airmass > (SELECT AVG(airmass) FROM dp1.Visit)")
    assert 0 < e[0][0] < rows(con, 'SELECT COUNT(*) FROM dp1."Visit"')[0][0]


def test_top_offset_order_nulls(con, model):
    _, all_ = run(con, model, "SELECT diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId")
    _, page = run(con, model, "SELECT TOP 5 diaSourceId FROM dp1.DiaSource ORDER BY diaSourceId OFFSET 10")
    assert page == all_[10:15]
    _, nulls = run(con, model, "SELECT ssObjectId FROM dp1.DiaSource ORDER BY ssObjectId")
    if any(r[0] is None for r in nulls):
        assert nulls[-1][0] is None  # NULLS LAST for ASC


def test_expressions_run(con, model):
    t, got = run(con, model, "SELECT TOP 1 7/2, 7.0/2, MOD(7, 3), 0x0F & 6, 5 | 2, 5 ^ 1, ~0, "
                             "TRUNCATE(3.456, 2), ROUND(3.456, 1), LOG(EXP(1)), LOG10(100), POWER(2, 10), "
                             "CAST(ra AS INTEGER), LOWER('AbC') || UPPER('x') || 1, COALESCE(NULL, 3), "
                             "IN_UNIT(ra, 'arcsec') / ra, CASE WHEN ra > 0 THEN 'pos' ELSE 'neg' END, "
                             "ivo_interval_overlaps(1, 2, 2, 3), ivo_hasword('the big cat', 'BIG'), "
                             "ivo_healpix_index(5, ra, dec), COORD1(POINT(1, 2)), COORDSYS(POINT('ICRS', 1, 2)) "
                             "FROM dp1.DiaSource WHERE band ILIKE 'R' AND band LIKE 'r%'")
    r = got[0]
    assert r[:8] == (3, 3.5, 1, 6, 7, 4, -1, 3.45)
    assert r[8] == pytest.approx(3.5) and r[9] == pytest.approx(1) and r[10] == pytest.approx(2)
    assert r[11] == 1024 and r[13] == "abcX1" and r[14] == 3 and r[15] == pytest.approx(3600)
    assert r[16] == "pos" and r[17] == 1 and r[18] == 1 and r[20] == 1.0 and r[21] == "ICRS"
    ra, dec = rows(con, "SELECT ra, dec FROM dp1.\"DiaSource\" WHERE band = 'r' LIMIT 1")[0]
    from diavo.server.archive.store import healpix_index
    assert r[19] == int(healpix_index([ra], [dec], 5)[0])


def test_geometry_in_select_and_obscore(con, model):
    t, got = run(con, model, "SELECT TOP 3 obs_id, s_region, POINT('ICRS', s_ra, s_dec) AS p, AREA(s_region) AS a "
                             "FROM ivoa.ObsCore WHERE INTERSECTS(s_region, CIRCLE('ICRS', 59, -49, 1)) = 1")
    assert got and len(got[0][2]) == 2 and got[0][3] > 0
    assert isinstance(got[0][1], str) and got[0][1].startswith("POLYGON")
    cols = {c["name"]: c for c in t.columns}
    assert cols["s_region"]["xtype"] == "adql:REGION" and cols["p"]["xtype"] == "point"
    _, inside = run(con, model, "SELECT COUNT(*) FROM ivoa.ObsCore WHERE CONTAINS(POINT(s_ra, s_dec), s_region) = 1")
    assert inside[0][0] == rows(con, 'SELECT COUNT(*) FROM ivoa."ObsCore"')[0][0]


def test_uploads(con, model):
    import pyarrow as pa

    from diavo.server.archive.model import Column, Table

    up = Table("TAP_UPLOAD", "mine", "", (Column("id", "int"), Column("ra", "double", unit="deg"),
                                           Column("dec", "double", unit="deg")))
    from diavo.server.sql.duckdb_dialect import DUCKDB

    data = pa.table({"id": [1, 2], "ra": [59.0, 10.0], "dec": [-49.0, 10.0]})
    con.register(DUCKDB.upload_relation("mine"), data)
    t, got = run(con, model, "SELECT u.id, COUNT(*) FROM TAP_UPLOAD.mine AS u JOIN dp1.DiaSource AS s "
                             "ON DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < 0.1 GROUP BY u.id",
                 uploads={"mine": up})
    assert len(got) == 1 and got[0][0] == 1 and got[0][1] > 0
    assert [c["name"] for c in translate("SELECT * FROM TAP_UPLOAD.mine", model, uploads={"mine": up}).columns] \
        == ["id", "ra", "dec"]


def test_constant_box_is_the_exact_adql_polygon(con, model):
    """BOX(53.1, -27.8, 0.4, 0.2): the top side is the great circle through (53.1, -27.7) at
    right angles to the meridian, so its corners lie north of dec -27.7, yet at the box's own RA
    a point just north of -27.7 is outside while one just south is inside."""
    from diavo.server.adql.spherical import box_vertices

    corners = [float(v) for v in box_vertices(53.1, -27.8, 0.4, 0.2)]
    t = translate("SELECT TOP 1 ra FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), BOX(53.1, -27.8, 0.4, 0.2)) = 1", model)
    for v in corners:
        assert repr(float(v)) in t.sql.replace("e0", "")
    inside = rows(con, "SELECT adql_contains([1, 53.1, -27.7001]::DOUBLE[], [3, " + ", ".join(map(repr, corners)) + "]::DOUBLE[])")
    edge_mid = rows(con, "SELECT adql_contains([1, 53.1, -27.69995]::DOUBLE[], [3, " + ", ".join(map(repr, corners)) + "]::DOUBLE[])")
    assert inside[0][0] == 1 and edge_mid[0][0] == 0


@pytest.mark.parametrize("adql", [
    "SELECT band, COUNT(*) FROM dp1.DiaSource GROUP BY band",
    "SELECT s.band AS b, COUNT(*) AS n, AVG(psfFlux) FROM dp1.DiaSource AS s GROUP BY b",
    "SELECT band, COUNT(*) FROM dp1.DiaSource GROUP BY 1",
    "SELECT ROUND(RA, 1) AS r, COUNT(*) FROM dp1.DiaSource GROUP BY round(ra, 1)",
    "SELECT band || 'x' AS bx, COUNT(*) FROM dp1.DiaSource GROUP BY band",
    "SELECT band, visit, MAX(snr) FROM dp1.DiaSource GROUP BY band, visit HAVING COUNT(*) > 3",
])
def test_grouped_queries_accepted_and_run(con, model, adql):
    t, got = run(con, model, adql)
    assert got


@pytest.mark.parametrize("adql,col", [
    ("SELECT band, visit, COUNT(*) FROM dp1.DiaSource GROUP BY band", 14),
    ("SELECT ra, COUNT(*) FROM dp1.DiaSource", 8),
    ("SELECT * FROM dp1.DiaSource GROUP BY band", 8),
])
def test_ungrouped_columns_are_adql_errors_at_their_position(model, adql, col):
    with pytest.raises(ADQLError) as info:
        translate(adql, model)
    assert info.value.line == 1 and info.value.column == col


def test_identifiers_and_relations_go_through_the_dialect(model):
    """The checker writes no SQL: a dialect that quotes with backticks (as Spark SQL does) gets
    backticks for every identifier and relation, and the DuckDB dialect today's text."""
    from diavo.server.adql.check import check
    from diavo.server.adql.parser import parse
    from diavo.server.adql.plan import plan
    from diavo.server.archive.layout import PLAIN
    from diavo.server.archive.model import Column, Table
    from diavo.server.sql.dialect import Dialect
    from diavo.server.sql.duckdb_dialect import DUCKDB
    from diavo.server.sql.emitter import emit

    class Backticks(Dialect):
        @staticmethod
        def quote(name: str) -> str:
            return "`" + name.replace("`", "``") + "`"

    adql = ("SELECT s.diaSourceId, v.airmass, u.x FROM dp1.DiaSource AS s FULL JOIN dp1.Visit AS v USING (visit) "
            "JOIN TAP_UPLOAD.mine AS u ON u.id = s.diaSourceId")
    up = Table("TAP_UPLOAD", "mine", "", (Column("id", "long"), Column("x", "double")))
    planned = plan(check(parse(adql), model, {"mine": up}), PLAIN)
    duck = emit(planned, DUCKDB).sql
    tick = emit(planned, Backticks()).sql
    assert '"dp1"."DiaSource" AS "s"' in duck and '"tap_upload__mine" AS "u"' in duck
    assert "`dp1`.`DiaSource` AS `s`" in tick and "`tap_upload__mine` AS `u`" in tick and '"' not in tick
    assert 'COALESCE("s"."visit", "v"."visit")' in emit(plan(check(parse(
        "SELECT visit FROM dp1.DiaSource AS s FULL JOIN dp1.Visit AS v USING (visit)"), model), PLAIN), DUCKDB).sql
    assert DUCKDB.relation(("metadata", "Columns")) == '"tap_schema__columns"'
