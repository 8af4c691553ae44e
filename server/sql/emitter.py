"""Planned ADQL → SQL, for any engine through its :class:`Dialect`.

``emit(planned, dialect)`` walks the checked and planned tree (adql.plan) and writes SQL. String
literals travel as bound parameters; numbers are written into the SQL (they come from the lexer,
so cannot inject anything, and constants let engines prune by statistics). Identifiers are always
quoted in the model's spelling. Geometry values take the dialect's representation; geometry in
the select list comes back as the DALI array. The top-level query's LIMIT is left to
``Translation.limited`` so an engine can stop after MAXREC+1 rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diavo.server.adql import nodes as n
from diavo.server.adql.check import Checked
from diavo.server.adql.errors import ADQLError
from diavo.server.adql.plan import ConeTest, HealpixIndex, PolygonTest, RegionTest, box_vertices, constant
from diavo.server.adql.plan import NotConstant as _NotConstant
from diavo.server.adql.scope import ScopeCol

from .dialect import Dialect

__all__ = ["Translation", "emit"]

_INTEGERS = ("SMALLINT", "INTEGER", "BIGINT")
_CAST_KINDS = {"SMALLINT": "SMALLINT", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "REAL": "REAL",
               "DOUBLE PRECISION": "DOUBLE", "CHAR": "VARCHAR", "VARCHAR": "VARCHAR", "TIMESTAMP": "TIMESTAMP"}
_DOUBLE_ARGS = ("LOG", "LOG10", "SQRT", "EXP", "POWER", "ACOS", "ASIN", "ATAN", "ATAN2", "COS", "COT",
                "SIN", "TAN", "DEGREES", "RADIANS")


@dataclass
class Translation:
    """The SQL of a query and its parameters; ``head`` and ``top``/``offset`` are the same SQL
    split before the outermost LIMIT/OFFSET, so an engine can cap the rows (EngineQuery.sql_for)."""

    sql: str
    params: list = field(default_factory=list)
    columns: list[dict] = field(default_factory=list)
    checked: Checked | None = None
    head: str = ""
    top: int | None = None
    offset: int | None = None


class _Emitter:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list = []
        #: the outermost query's text before its LIMIT/OFFSET, and those (see Translation)
        self.tail: tuple[str, int | None, int | None] | None = None

    def col(self, c: ScopeCol) -> str:
        """The SQL of a resolved column in this dialect."""
        if c.merge is not None:
            return self.d.coalesce(self.col(c.merge[0]), self.col(c.merge[1]))
        if c.source is None:
            raise ADQLError(f"column {c.name} has no relation to be read from", code="unsupported")
        return self.d.column(c.source, c.field)

    def param(self, value: Any) -> str:
        self.params.append(value)
        return self.d.param_marker(len(self.params) - 1)

    def double(self, e: Any) -> str:
        return self.d.double(self.x(e))

    # ---------------------------------------------------------------- queries
    def query(self, q: n.Query) -> str:
        parts = [f"{self.d.relation(cte.source.relation)} AS ({self.query_expr(cte.query)})" for cte in q.ctes]
        body = self.query_expr(q.body, outermost=True)
        prefix = ("WITH " + ", ".join(parts) + " ") if parts else ""
        if self.tail is not None:
            self.tail = (prefix + self.tail[0], self.tail[1], self.tail[2])
        return prefix + body

    def query_expr(self, qe: Any, outermost: bool = False) -> str:
        if isinstance(qe, n.Select):
            return self.select(qe, (), None, outermost)
        if isinstance(qe, n.SetOp):
            op = qe.op + (" ALL" if qe.all else "")
            return f"({self.query_expr(qe.left)}) {op} ({self.query_expr(qe.right)})"
        if isinstance(qe.body, n.Select):
            return self.select(qe.body, qe.order_by, qe.offset, outermost)
        sql = f"SELECT * FROM ({self.query_expr(qe.body)}) AS _setop"
        keys = self.sort_keys(qe.order_by)
        if keys:
            sql += " ORDER BY " + ", ".join(self.order_item(o) for o in keys)
        return self.finish(sql, None, qe.offset, outermost)

    def finish(self, sql: str, top: int | None, offset: int | None, outermost: bool) -> str:
        if outermost:
            self.tail = (sql, top, offset)
        return sql + self.d.limit(top, offset)

    def select(self, sel: n.Select, order_by: Any, offset: int | None, outermost: bool = False) -> str:
        outs = sel.outputs
        items = []
        i = 0
        for item in sel.items:
            if isinstance(item, n.StarItem):
                for col in item.expanded:
                    items.append(f"{self.col(col)} AS {self.d.quote(outs[i].name)}")
                    i += 1
            else:
                items.append(f"{self.output_value(item.expr)} AS {self.d.quote(outs[i].name)}")
                i += 1
        sql = "SELECT " + ("DISTINCT " if sel.quantifier == "DISTINCT" else "") + ", ".join(items)
        sql += " FROM " + ", ".join(self.from_item(f) for f in sel.from_)
        if sel.where is not None:
            sql += " WHERE " + self.cond(sel.where)
        if sel.group_by:
            terms = zip(sel.group_by, sel.group_targets, strict=True)
            sql += " GROUP BY " + ", ".join(self.group_term(g, t) for g, t in terms)
        if sel.having is not None:
            sql += " HAVING " + self.cond(sel.having)
        keys = self.sort_keys(order_by)
        if keys:
            sql += " ORDER BY " + ", ".join(self.order_item(o) for o in keys)
        return self.finish(sql, sel.top, offset, outermost)

    def output_value(self, e: Any) -> str:
        if e.etype.geometry and not (isinstance(e, n.ColumnRef) and e.bound.stored_region):
            if isinstance(e, n.ColumnRef):  # a stored DALI array
                return self.x(e)
            return self.d.geometry_output(self.geo(e), e.etype.kind)
        return self.x(e)

    def group_term(self, g: Any, target: Any) -> str:
        if target is None:
            return self.x(g)
        if target[0] == "position":
            return str(target[1])
        return self.x(target[1])

    def sort_keys(self, order_by: Any) -> list:
        """The ORDER BY items that sort: a constant other than a column position (``ORDER BY 0.0``,
        ``'x'``) orders nothing, and engines refuse it, so it is left out."""
        return [o for o in order_by or () if o.target is not None or not isinstance(o.expr, n.Literal)]

    def order_item(self, o: n.OrderItem) -> str:
        target = o.target
        if target is None:
            sql = self.x(o.expr)
        elif target[0] == "position":
            sql = str(target[1])
        else:
            sql = self.d.quote(target[1])
        return sql + (" DESC NULLS FIRST" if o.descending else " ASC NULLS LAST")

    def from_item(self, f: Any) -> str:
        if isinstance(f, n.TableRef):
            src = f.source
            relation = self.d.parquet(f.files) if f.files else self.d.relation(src.relation)
            return f"{relation} AS {self.d.quote(src.sql_alias)}"
        if isinstance(f, n.DerivedTable):
            return f"({self.query_expr(f.query)}) AS {self.d.quote(f.source.sql_alias)}"
        left, right = self.from_item(f.left), self.from_item(f.right)
        kind = {"INNER": "JOIN", "LEFT": "LEFT JOIN", "RIGHT": "RIGHT JOIN", "FULL": "FULL JOIN"}[f.kind]
        merged = f.merged or []
        if f.condition is not None:
            on = self.cond(f.condition)
        elif merged or f.using is not None or f.natural:
            on = " AND ".join(self._using_pair(f, name) for name, _ in merged) or "TRUE"
        else:
            on = "TRUE"
        return f"({left} {kind} {right} ON {on})"

    def _using_pair(self, join: n.Join, name: str) -> str:
        def find(item: Any) -> str | None:
            if isinstance(item, (n.TableRef, n.DerivedTable)):
                for c in item.source.columns:
                    if c.name.lower() == name:
                        return self.col(c)
                return None
            for k, col in item.merged or []:
                if k == name:
                    return self.col(col)
            return find(item.left) or find(item.right)
        return f"{find(join.left)} = {find(join.right)}"

    # ---------------------------------------------------------------- conditions
    def cond(self, c: Any) -> str:
        if isinstance(c, n.BoolOp):
            return f"({self.cond(c.left)} {c.op} {self.cond(c.right)})"
        if isinstance(c, n.Not):
            return f"(NOT {self.cond(c.operand)})"
        if isinstance(c, n.Comparison):
            test = _spatial_truth(c)
            if test is not None:  # CONTAINS(...) = 1: the dialect's condition (indexable where it can be)
                return self.d.condition(self.x(test))
            return f"({self.x(c.left)} {c.op} {self.x(c.right)})"
        if isinstance(c, (ConeTest, PolygonTest, RegionTest)):
            return self.spatial(c)
        if isinstance(c, n.Between):
            neg = "NOT " if c.negated else ""
            return f"({self.x(c.operand)} {neg}BETWEEN {self.x(c.low)} AND {self.x(c.high)})"
        if isinstance(c, n.InList):
            neg = "NOT " if c.negated else ""
            return f"({self.x(c.operand)} {neg}IN ({', '.join(self.x(i) for i in c.items)}))"
        if isinstance(c, n.InSubquery):
            neg = "NOT " if c.negated else ""
            return f"({self.x(c.operand)} {neg}IN ({self.query_expr(c.query)}))"
        if isinstance(c, n.Like):
            op = ("NOT " if c.negated else "") + ("ILIKE" if c.case_insensitive else "LIKE")
            return f"({self.x(c.operand)} {op} {self.x(c.pattern)})"
        if isinstance(c, n.IsNull):
            return f"({self.x(c.operand)} IS {'NOT ' if c.negated else ''}NULL)"
        if isinstance(c, n.Exists):
            return f"(EXISTS ({self.query_expr(c.query)}))"
        raise ADQLError(f"cannot translate {type(c).__name__}", c.line, c.column, code="unsupported")

    def spatial(self, c: ConeTest | PolygonTest | RegionTest) -> str:
        """A planned spatial predicate: the HEALPix cover (when there is one) around the exact
        test in its fastest form on this dialect."""
        if isinstance(c, RegionTest):
            col = c.footprint
            schema, _, table = (col.table or "").partition(".")
            found = self.d.region_test(
                table=self.d.relation(("table", schema, table)), alias=col.source or "", column=col.column or "",
                bounds=(c.bounds.ra, c.bounds.dec, c.bounds.diameter), shape=self.geo(c.shape), kind=c.kind,
                cap=c.cap, mode=c.mode, normals=c.bounds.normals)
            return found if found is not None else self.cond(c.written)
        pos = c.position
        index = pos.index
        if isinstance(c, ConeTest):
            if index.unit_vector is None:  # no stored vectors: the test as written
                exact = self.cond(c.written)
            else:
                vector = [self.d.column(pos.alias, v) for v in index.unit_vector]
                exact = self.d.cone_on_vectors(vector, _unit_vector(c.ra, c.dec), c.radius, c.strict)
        else:
            exact = self.d.polygon_test(self.col(pos.ra), self.col(pos.dec), c.vertices)
        return self.d.healpix_ranges(self.d.column(pos.alias, index.healpix), c.cover.ranges, exact)

    # ---------------------------------------------------------------- values
    def x(self, e: Any) -> str:
        if isinstance(e, n.Literal):
            if e.kind == "string":
                return self.param(e.value)
            if e.kind == "null":
                return "NULL"
            if e.kind == "real":
                return self.d.real(e.value)
            return str(e.value)
        if isinstance(e, n.ColumnRef):
            return self.col(e.bound)
        if isinstance(e, n.Unary):
            return f"({e.op}{self.x(e.operand)})"
        if isinstance(e, n.BinaryOp):
            return self.binary(e)
        if isinstance(e, n.FunctionCall):
            return self.function(e)
        if isinstance(e, n.GeometryCall):
            return self.geometry(e)
        if isinstance(e, n.Cast):
            return self.cast(e)
        if isinstance(e, n.Case):
            # a geometry result: every branch as a geometry value (a stored STC-S string too)
            val = self.geo if e.etype.geometry else self.x
            sql = "CASE" + (f" {self.x(e.operand)}" if e.operand is not None else "")
            for when, then in e.whens:
                w = self.x(when) if e.operand is not None else self.cond(when)
                sql += f" WHEN {w} THEN {val(then)}"
            if e.else_ is not None:
                sql += f" ELSE {val(e.else_)}"
            return sql + " END"
        if isinstance(e, n.ScalarSubquery):
            return f"({self.query_expr(e.query)})"
        if isinstance(e, HealpixIndex):
            pos = e.position
            return self.d.shift_right(self.d.column(pos.alias, pos.index.healpix), 2 * (pos.index.order - e.order))
        raise ADQLError(f"cannot translate {type(e).__name__}", e.line, e.column, code="unsupported")

    def binary(self, e: n.BinaryOp) -> str:
        a, b = self.x(e.left), self.x(e.right)
        ta, tb = e.left.etype, e.right.etype
        if e.op == "/":
            if ta.kind in _INTEGERS and tb.kind in _INTEGERS:
                return self.d.int_div(a, b)  # ADQL/SQL: integer division of integers
            return f"({a} / {b})"
        if e.op == "||":
            a = a if ta.kind == "VARCHAR" else self.d.cast(a, "VARCHAR")
            b = b if tb.kind == "VARCHAR" else self.d.cast(b, "VARCHAR")
            return self.d.concat(a, b)
        if e.op == "^":
            return self.d.bit_xor(a, b)
        return f"({a} {e.op} {b})"

    def function(self, e: n.FunctionCall) -> str:
        name = e.name
        if e.udf:
            return self.udf(e)
        if e.star:
            return "count(*)"
        if name == "IN_UNIT":  # the unit string is used at translation time, not sent
            return f"({self.double(e.args[0])} * {self.d.real(e.factor)})"
        # MIN/MAX/COALESCE of geometries: arguments as geometry values, like every geometry value
        # (a stored STC-S column would otherwise pass through as a string)
        val = self.geo if e.etype.geometry else self.x
        args = [val(a) for a in e.args]
        distinct = e.quantifier == "DISTINCT"
        if name == "SUM":
            return self.d.cast(self.d.function("SUM", args[:1], distinct),
                               "BIGINT" if e.etype.kind == "BIGINT" else "DOUBLE")
        if name in ("AVG", "MIN", "MAX", "COUNT"):
            return self.d.function(name, args[:1], distinct)
        if name == "MOD":
            return self.d.mod(args[0], args[1])
        if name == "RAND":
            return self.d.random()
        if name in ("ROUND", "TRUNCATE"):
            x = self.d.double(args[0])
            if name == "ROUND":
                return self.d.round(x, args[1] if len(args) > 1 else "0")
            return self.d.truncate(x, args[1] if len(args) > 1 else None)
        if name in ("CEILING", "FLOOR"):
            return self.d.function(name, [self.d.double(args[0])])
        if name in _DOUBLE_ARGS:
            return self.d.function(name, [self.d.double(a) for a in args])
        return self.d.function(name, args)

    def udf(self, e: n.FunctionCall) -> str:
        args = [self.x(a) for a in e.args]
        if e.name == "ivo_healpix_index":
            return self.d.healpix_index(self.d.cast(args[0], "BIGINT"), self.d.double(args[1]),
                                        self.d.double(args[2]))
        if e.name == "ivo_interval_overlaps":
            l1, h1, l2, h2 = args
            return self.d.cast(f"({l1} <= {h2} AND {l2} <= {h1})", "INTEGER")
        if e.name == "ivo_hasword":
            return self.d.hasword(args[0], args[1])
        raise ADQLError(f"no translation for function {e.name}", e.line, e.column, code="unsupported")

    def cast(self, e: n.Cast) -> str:
        if e.target in ("POINT", "CIRCLE", "POLYGON"):
            if e.operand.etype.geometry:
                return self.geo(e.operand)
            return self.d.geometry_from_text(e.target, self.x(e.operand))
        return self.d.cast(self.x(e.operand), _CAST_KINDS[e.target])

    # ---- geometry
    def geo(self, e: Any) -> str:
        """A geometry-valued expression in the dialect's representation."""
        if isinstance(e, n.ColumnRef):
            col = e.bound
            if col.stored_region:
                return self.d.region(self.col(col))
            if col.etype.kind in ("POINT", "CIRCLE", "POLYGON"):
                return self.d.stored_geometry(self.col(col), col.etype.kind)
        return self.x(e)

    def coords(self, p: Any) -> tuple[str, str]:
        if isinstance(p, n.GeometryCall) and p.name == "POINT":
            return self.x(p.args[0]), self.x(p.args[1])
        g = self.geo(p)
        return self.d.coord(g, 1), self.d.coord(g, 2)

    def geometry(self, e: n.GeometryCall) -> str:
        name, args = e.name, e.args
        d = self.d.double
        if name == "POINT":
            return self.d.point(self.double(args[0]), self.double(args[1]))
        if name == "CIRCLE":
            if len(args) == 2:
                ra, dec = self.coords(args[0])
                return self.d.circle(d(ra), d(dec), self.double(args[1]))
            return self.d.circle(*(self.double(a) for a in args))
        if name == "BOX":
            return self.box(args)
        if name == "POLYGON":
            if len(args) >= 6 and len(args) % 2 == 0 and all(a.etype.numeric or a.etype.loose for a in args):
                return self.d.polygon([self.double(a) for a in args])
            return self.d.polygon([d(c) for a in args for c in self.coords(a)])
        if name == "REGION":
            arg = args[0]
            if isinstance(arg, n.Literal) and arg.kind == "string":
                found = self.d.constant_region(arg.value)
                if found is not None:
                    return found
            return self.d.region(self.x(arg))
        if name == "CENTROID":
            return self.d.centroid(self.geo(args[0]), args[0].etype.kind)
        if name == "AREA":
            return self.d.area(self.geo(args[0]), args[0].etype.kind)
        if name in ("COORD1", "COORD2"):
            return self.coords(args[0])[0 if name == "COORD1" else 1]
        if name == "COORDSYS":
            arg = args[0]
            system = "ICRS"
            if (isinstance(arg, n.GeometryCall) and isinstance(arg.coordsys, n.Literal)
                    and arg.coordsys.kind == "string"):
                system = arg.coordsys.value
            return self.param(system)
        if name == "DISTANCE":
            if len(args) == 2:
                (a1, b1), (a2, b2) = self.coords(args[0]), self.coords(args[1])
            else:
                a1, b1, a2, b2 = (self.x(a) for a in args)
            return self.d.distance(d(a1), d(b1), d(a2), d(b2))
        if name in ("CONTAINS", "INTERSECTS"):
            return self.contains(name, *args)
        raise ADQLError(f"cannot translate {name}", e.line, e.column, code="unsupported")

    def box(self, args: tuple) -> str:
        if len(args) == 4:
            try:
                return self.d.constant_polygon(box_vertices(*(constant(a) for a in args)))
            except _NotConstant:
                pass
            ra, dec, w, h = (self.x(a) for a in args)
        else:
            ra, dec = self.coords(args[0])
            w, h = self.x(args[1]), self.x(args[2])
        return self.d.polygon_from_centre(ra, dec, w, h)

    def contains(self, name: str, a: Any, b: Any) -> str:
        from diavo.server.adql.plan import constant_shape

        if name == "INTERSECTS" and isinstance(b, n.GeometryCall) and b.name == "POINT":
            a, b = b, a
        if isinstance(a, n.GeometryCall) and a.name == "POINT":
            ra, dec = self.coords(a)
            if isinstance(b, n.GeometryCall) and b.name == "CIRCLE" and len(b.args) == 3:
                return self.d.point_in_circle(self.d.double(ra), self.d.double(dec),
                                              *(self.double(x) for x in b.args))
            shape = constant_shape(b)
            if shape is not None and shape[0] == "polygon":
                return self.d.point_in_polygon(self.d.double(ra), self.d.double(dec), shape[1])
        fn = self.d.contains if name == "CONTAINS" else self.d.intersects
        return fn(self.geo(a), self.geo(b))


def _spatial_truth(c: n.Comparison) -> Any:
    """The CONTAINS/INTERSECTS call of ``call = 1`` or ``1 = call``, else None."""
    if c.op != "=":
        return None
    for call, other in ((c.left, c.right), (c.right, c.left)):
        if (isinstance(call, n.GeometryCall) and call.name in ("CONTAINS", "INTERSECTS")
                and isinstance(other, n.Literal) and other.kind != "string" and other.value == 1):
            return call
    return None


def _unit_vector(ra: float, dec: float) -> tuple[float, float, float]:
    import math

    a, d = math.radians(ra), math.radians(dec)
    return (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))


def emit(planned: Checked, dialect: Dialect) -> Translation:
    """SQL for a checked and planned query (adql.plan) in ``dialect``."""
    em = _Emitter(dialect)
    try:
        sql = em.query(planned.query)
    except RecursionError:
        raise ADQLError("the query is nested too deeply", code="limit") from None
    head, top, offset = em.tail if em.tail is not None else (sql, None, None)
    return Translation(sql, em.params, planned.columns, planned, head, top, offset)
