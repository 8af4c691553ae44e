"""ADQL 2.1 syntax: accepted and rejected queries, error positions, identifiers, literals, clauses."""
from __future__ import annotations

import pytest

from diavo.server.adql import nodes as n
from diavo.server.adql.errors import ADQLError
from diavo.server.adql.parser import parse

VALID = [
    "SELECT * FROM t",
    "select * from t",
    "SeLeCt a FrOm t",
    "SELECT a AS b, c d, e AS \"Mixed Case\" FROM t",
    "SELECT DISTINCT TOP 10 a FROM t",
    "SELECT ALL a FROM t",
    "SELECT t.*, u.x FROM s.t AS t, u",
    "SELECT a FROM cat.sch.t",
    "SELECT ra, dec, * FROM t",
    "SELECT a FROM t WHERE a BETWEEN 1 AND 2 AND b NOT BETWEEN 3 AND 4",
    "SELECT a FROM t WHERE a IN (1, 2, 3) OR a NOT IN (SELECT b FROM u)",
    "SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.b = t.a)",
    "SELECT a FROM t WHERE s LIKE 'x%' AND s NOT ILIKE '%Y' AND s IS NOT NULL AND z IS NULL",
    "SELECT a FROM t WHERE NOT (a = 1 OR b <> 2) AND c != 3 AND d <= 4 AND e >= 5 AND f < 6 AND g > 7",
    "SELECT a FROM t WHERE a = (SELECT MAX(b) FROM u)",
    "SELECT a FROM t1 JOIN t2 ON t1.a = t2.b",
    "SELECT a FROM t1 INNER JOIN t2 USING (a, b)",
    "SELECT a FROM t1 LEFT OUTER JOIN t2 USING (a) RIGHT JOIN t3 ON x = y FULL JOIN t4 USING (z)",
    "SELECT a FROM t1 NATURAL JOIN t2",
    # the BNF's <join_specification> is optional, for every join type and operand
    "SELECT a FROM t1 INNER JOIN t2",
    "SELECT a FROM t1 JOIN t2 LEFT OUTER JOIN t3 FULL JOIN t4",
    "SELECT a FROM (t1 JOIN t2) RIGHT JOIN (SELECT b FROM t3) AS s",
    "SELECT a FROM (SELECT b FROM t) AS s JOIN (t2 NATURAL JOIN t3)",
    # a comment holding quotes that ends the text without a newline
    "SELECT a FROM t -- it's \"here\" 'and' there",
    "SELECT a FROM t --'",
    "SELECT a FROM (t1 JOIN t2 USING (a)), t3",
    "SELECT a FROM (SELECT a FROM t) AS q",
    "SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1 ORDER BY 2 DESC, a ASC",
    "SELECT a FROM t ORDER BY a OFFSET 10",
    "SELECT a FROM t UNION SELECT a FROM u",
    "SELECT a FROM t UNION ALL SELECT a FROM u EXCEPT SELECT a FROM v INTERSECT ALL SELECT a FROM w",
    "(SELECT TOP 1 a FROM t ORDER BY a) UNION (SELECT TOP 1 a FROM t ORDER BY a DESC)",
    "WITH q AS (SELECT a FROM t), r AS (SELECT a FROM q) SELECT * FROM r",
    "SELECT CAST(a AS INTEGER), CAST(b AS DOUBLE PRECISION), CAST(c AS VARCHAR(3)), CAST(d AS TIMESTAMP) FROM t",
    "SELECT COALESCE(a, b, 0), LOWER(s) || UPPER(s), IN_UNIT(ra, 'rad') FROM t",
    "SELECT CASE WHEN a > 1 THEN 'x' ELSE 'y' END, CASE a WHEN 1 THEN 2 END FROM t",
    "SELECT 0x1F & a, a | 2, a ^ 3, ~a FROM t",
    "SELECT abs(a), ceiling(a), degrees(a), exp(a), floor(a), log(a), log10(a), mod(a, 2), pi(), "
    "power(a, 2), radians(a), rand(), rand(3), round(a), round(a, -1), sqrt(a), truncate(a), truncate(a, 2) FROM t",
    "SELECT acos(a), asin(a), atan(a), atan2(a, b), cos(a), cot(a), sin(a), tan(a) FROM t",
    "SELECT POINT('ICRS', 1, 2), POINT(1, 2), CIRCLE('', 1, 2, 3), CIRCLE(POINT(1, 2), 3), "
    "BOX('ICRS', 1, 2, 3, 4), POLYGON(1, 2, 3, 4, 5, 6), POLYGON(p1, p2, p3), REGION('CIRCLE ICRS 1 2 3') FROM t",
    "SELECT AREA(c), CENTROID(c), COORD1(p), COORD2(p), COORDSYS(p), DISTANCE(p, q), DISTANCE(1, 2, 3, 4) FROM t",
    "SELECT a FROM t WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 1, 2, 0.1)) = 1",
    "SELECT a FROM t WHERE 1 = INTERSECTS(s_region, CIRCLE(1, 2, 3))",
    "SELECT ivo_healpix_index(10, ra, dec) FROM t",
    "SELECT a -- a comment\nFROM t -- another",
    "SELECT 'it''s', \"a \"\"quoted\"\" name\" FROM t",
    "SELECT 1, 1.5, .5, 1., 1e3, 1.5E-3 FROM t",
    "SELECT \"distance\", \"_x\" FROM t",
    "SELECT TAP_UPLOAD.t.a FROM TAP_UPLOAD.t",
]

INVALID = [  # (query, line, column) of the reported error
    ("SELECT FROM t", 1, 8),
    ("SELECT a FROM", 1, 14),
    ("SELECT a FROM t WHERE", 1, 22),
    ("SELECT distance FROM t", 1, 17),
    ("SELECT a FROM t\nWHERE date = 1", 2, 7),
    ("SELECT _a FROM t", 1, 8),
    ("SELECT a FROM t WHERE CONTAINS(p, c)", 1, 37),
    ("SELECT TOP -1 a FROM t", 1, 12),
    ("SELECT a FROM t OFFSET 1.5", 1, 24),
    ("SELECT a FROM t WHERE b = 'open", 1, 27),
    ("SELECT \"a FROM t", 1, 8),
    ("SELECT CAST(a AS FLOAT) FROM t", 1, 18),
    ("SELECT POINT(a, 1, 2) FROM t", 1, 14),
    ("SELECT CIRCLE('ICRS', 1, 2) FROM t", 1, 23),
    ("SELECT POLYGON(1, 2, 3, 4, 5) FROM t", 1, 16),
    ("SELECT COALESCE() FROM t", 1, 17),
    ("SELECT no_such_udf(a) FROM t", 1, 8),
    ("SELECT * FROM (WITH q AS (SELECT a FROM t) SELECT * FROM q) AS x", 1, 16),
    ("SELECT a FROM t;", 1, 16),
]


@pytest.mark.parametrize("query", VALID)
def test_valid(query):
    assert isinstance(parse(query), n.Query)


@pytest.mark.parametrize("query,line,column", INVALID)
def test_invalid_with_position(query, line, column):
    with pytest.raises(ADQLError) as info:
        parse(query)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"line {line}, column {column}: ")


def test_tree_shape():
    q = parse("SELECT TOP 5 s.a AS x, COUNT(*) FROM dp1.T AS s WHERE s.b > 2 GROUP BY s.a ORDER BY 2 DESC OFFSET 1")
    sel = q.body.body
    assert isinstance(sel, n.Select) and sel.top == 5
    assert sel.items[0].alias.text == "x" and str(sel.items[0].expr) == "s.a"
    assert sel.items[1].expr == n.FunctionCall("COUNT", (), star=True)
    assert [p.text for p in sel.from_[0].parts] == ["dp1", "T"]
    assert isinstance(sel.where, n.Comparison) and sel.where.op == ">"
    assert q.body.order_by[0].position == 2 and q.body.order_by[0].descending
    assert q.body.offset == 1
    assert (sel.where.line, sel.where.column) == (1, 55)


def test_identifiers_case():
    q = parse('SELECT Abc, "Abc" FROM t')
    a, b = (i.expr.name for i in q.body.body.items)
    assert not a.delimited and a.matches("aBC")
    assert b.delimited and b.matches("Abc") and not b.matches("abc")
    assert parse('SELECT "a""b" FROM t').body.body.items[0].expr.name.text == 'a"b'


def test_literals():
    items = parse("SELECT 0x1f, 0XFF, 12, 1.5, 2e3, 'a''b', NULL FROM t").body.body.items
    values = [(i.expr.value, i.expr.kind) for i in items]
    assert values == [(31, "hex"), (255, "hex"), (12, "integer"), (1.5, "real"), (2000.0, "real"),
                      ("a'b", "string"), (None, "null")]


def test_geometry_coordsys():
    g = parse("SELECT CIRCLE('ICRS', 1, 2, 3), CIRCLE(p, 3) FROM t").body.body.items
    assert g[0].expr.coordsys.value == "ICRS" and len(g[0].expr.args) == 3
    assert g[1].expr.coordsys is None and len(g[1].expr.args) == 2


def test_set_operation_precedence():
    q = parse("SELECT a FROM t UNION SELECT a FROM u INTERSECT SELECT a FROM v")
    assert q.body.body.op == "UNION" and q.body.body.right.op == "INTERSECT"


def test_reserved_word_hint():
    with pytest.raises(ADQLError) as info:
        parse("SELECT a FROM t WHERE year = 1")
    assert "reserved" in str(info.value) and '"year"' in info.value.hint


@pytest.mark.parametrize(("text", "valid"), [
    ("", False), ("   ", False), ("\x00\x01\x02", False),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000 + " FROM t", True),
    ("SELECT " + "abs(" * 600 + "1" + ")" * 600 + " FROM t", False),
    ("SELECT a FROM t WHERE " + " AND ".join(["a = 1"] * 3000), False),  # too deep: refused, no crash
    ("x" * 300_000, False), ("SELECT 'é' FROM t WHERE a = '\u2603'", True), ("SELECT a FROM t WHERE a = 1e99999", True),
])
def test_garbage_only_raises_adql_error(text, valid):
    if valid:
        assert isinstance(parse(text), n.Query)
        return
    with pytest.raises(ADQLError) as info:
        parse(text)
    assert str(info.value).strip() and info.value.line >= 0 and info.value.column >= 0


def test_random_bytes_never_escape():
    """Every random text either parses to a query or is refused with a positioned ADQLError."""
    import random

    rnd = random.Random(7)
    alphabet = "SELECT FROM WHERE a b ( ) , . * ' \" - + / 1 2 = < > |"
    outcomes = {"parsed": 0, "refused": 0}

    def attempt(text: str) -> None:
        try:
            assert isinstance(parse(text), n.Query)
            outcomes["parsed"] += 1
        except ADQLError as exc:
            assert str(exc).strip() and exc.line >= 0 and exc.column >= 0
            outcomes["refused"] += 1

    for _ in range(500):
        attempt("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))))
    for _ in range(200):
        attempt(bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 80))).decode("latin-1"))
    assert outcomes["refused"] > 600  # the seed is fixed: almost all of this is not ADQL


@pytest.mark.parametrize("text,column", [("SELECT FROM x", 8), ("SELECT DISTINCT FROM x", 17),
                                         ("SELECT TOP 5 FROM x", 14)])
def test_empty_select_list_is_named(text, column):
    with pytest.raises(ADQLError, match="select list is empty") as info:
        parse(text)
    assert (info.value.line, info.value.column) == (1, column)
