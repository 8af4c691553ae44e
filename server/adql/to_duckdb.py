"""Checked ADQL → DuckDB SQL.

``translate(query, model, uploads=None)`` parses (when given text), checks and emits SQL. String
literals travel as bound parameters; numbers are written into the SQL (they come from the lexer,
so cannot inject anything, and constants let DuckDB prune row groups). Identifiers are always
double-quoted in the model's spelling. Geometry values are DOUBLE[] with a leading kind tag
(1 point, 2 circle, 3 polygon), and the SQL functions of geometry.py work on them; geometry in
the select list comes back as the DALI array (tag removed).

A cone or polygon test of a HEALPix-ordered table's own position columns against constant shapes
becomes a range filter on the hidden ``_healpix`` column plus the exact test, so DuckDB skips row
groups by their zone maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from diavo.server.archive.layout import PLAIN, Layout, SpatialIndex

from . import nodes as n
from .check import Checked, ScopeCol
from .dialect import DUCKDB, Dialect
from .errors import ADQLError

__all__ = ["Translation", "emit"]

_SIMPLE_FUNCS = {
    "ABS": "abs", "CEILING": "ceil", "DEGREES": "degrees", "EXP": "exp", "FLOOR": "floor", "LOG": "ln",
    "LOG10": "log10", "PI": "pi", "POWER": "power", "RADIANS": "radians", "SQRT": "sqrt",
    "ACOS": "acos", "ASIN": "asin", "ATAN": "atan", "ATAN2": "atan2", "COS": "cos", "COT": "cot",
    "SIN": "sin", "TAN": "tan", "LOWER": "lower", "UPPER": "upper", "COALESCE": "coalesce",
    "AVG": "avg", "MIN": "min", "MAX": "max", "COUNT": "count",
}
_CAST_TYPES = {"SMALLINT": "SMALLINT", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "REAL": "REAL",
               "DOUBLE PRECISION": "DOUBLE", "CHAR": "VARCHAR", "VARCHAR": "VARCHAR", "TIMESTAMP": "TIMESTAMP"}
_TAGS = {"POINT": 1, "CIRCLE": 2, "POLYGON": 3}
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "<>": "<>"}
#: Stored footprints (table, STC-S column) -> their centre and diameter columns (degrees), whose
#: cap about the centre holds the footprint; CONTAINS/INTERSECTS against constant shapes test
#: that cap first (see _Emitter._region_prefilter).
#: Slack added to the cap test (degrees): ~1000 times the STC-S vertex rounding (5e-7 deg).
REGION_MARGIN_DEG = 1e-3


@dataclass
class Translation:
    sql: str
    params: list = field(default_factory=list)
    columns: list[dict] = field(default_factory=list)
    checked: Checked | None = None


class _Const(Exception):
    pass


def _constant(e) -> float:
    """The value of a constant numeric expression, or _Const."""
    if isinstance(e, n.Literal) and e.kind in ("integer", "real", "hex"):
        return float(e.value)
    if isinstance(e, n.Unary) and e.op in "+-":
        v = _constant(e.operand)
        return -v if e.op == "-" else v
    if isinstance(e, n.BinaryOp) and e.op in "+-*/":
        a, b = _constant(e.left), _constant(e.right)
        if e.op == "/" and b == 0:
            raise _Const
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
    if isinstance(e, n.FunctionCall) and e.name == "PI" and not e.args:
        return math.pi
    raise _Const


def _num(v: float) -> str:
    if math.isfinite(v):
        text = repr(float(v))
        return text if ("e" in text or "E" in text) else text + "e0"
    return f"'{v}'::DOUBLE"


class _Emitter:
    def __init__(self, checked: Checked, layout: Layout = PLAIN, dialect: Dialect = DUCKDB) -> None:
        self.c = checked
        self.layout = layout
        self.d = dialect
        #: Comparisons that are top-level conjuncts of the WHERE being written: their HEALPix
        #: cover may prune partitions. covers: SQL alias prefix -> the covers that must all hold.
        self.prunable: set[int] = set()
        self.covers: dict[str, list[list[tuple[int, int]]]] = {}
        self.params: list = []
        self.spatial = None
        #: True while emitting a WHERE or JOIN ... ON condition: the only places where the
        #: s_region fast path may name the table's rowid (not grouped, not aggregated).
        self.row_condition = False

    def col(self, c: ScopeCol) -> str:
        """The SQL of a resolved column in this dialect."""
        if c.merge is not None:
            return self.d.coalesce(self.col(c.merge[0]), self.col(c.merge[1]))
        if c.source is None:
            raise ADQLError(f"column {c.name} has no relation to be read from", code="unsupported")
        return self.d.column(c.source, c.field)

    def param(self, value) -> str:
        self.params.append(value)
        return "?"

    # ---------------------------------------------------------------- queries
    def query(self, q: n.Query) -> str:
        parts = []
        for cte in q.ctes:
            src = cte.source
            parts.append(f"{self.d.relation(src.relation)} AS ({self.query_expr(cte.query)})")
        body = self.query_expr(q.body)
        return ("WITH " + ", ".join(parts) + " " + body) if parts else body

    def query_expr(self, qe) -> str:
        if isinstance(qe, n.Select):
            return self.select(qe, (), None)
        if isinstance(qe, n.SetOp):
            op = qe.op + (" ALL" if qe.all else "")
            return f"({self.query_expr(qe.left)}) {op} ({self.query_expr(qe.right)})"
        if isinstance(qe.body, n.Select):
            return self.select(qe.body, qe.order_by, qe.offset)
        sql = f"SELECT * FROM ({self.query_expr(qe.body)}) AS _setop"
        if self.sort_keys(qe.order_by):
            sql += " ORDER BY " + ", ".join(self.order_item(o) for o in self.sort_keys(qe.order_by))
        if qe.offset is not None:
            sql += f" OFFSET {qe.offset}"
        return sql

    def select(self, sel: n.Select, order_by, offset) -> str:
        outer, self.row_condition = self.row_condition, False  # a subquery has its own clauses
        try:
            return self._select(sel, order_by, offset)
        finally:
            self.row_condition = outer

    def _select(self, sel: n.Select, order_by, offset) -> str:
        outs = sel.outputs
        items = []
        i = 0
        for item in sel.items:
            if isinstance(item, n.StarItem):
                for col in item.expanded:
                    items.append(f"{self.output_value_col(col)} AS {self.d.quote(outs[i].name)}")
                    i += 1
            else:
                items.append(f"{self.output_value(item.expr)} AS {self.d.quote(outs[i].name)}")
                i += 1
        sql = "SELECT " + ("DISTINCT " if sel.quantifier == "DISTINCT" else "") + ", ".join(items)
        where = ""
        if sel.where is not None:
            # WHERE is written first, so that the FROM of a partitioned table reads only the
            # partitions its spatial conjuncts touch; its bound parameters still follow FROM's.
            outer_params, outer_prunable = self.params, self.prunable
            self.params, self.prunable = [], {id(t) for t in _conjuncts(sel.where)}
            try:
                where = " WHERE " + self.row_cond(sel.where)
                where_params = self.params
            finally:
                self.params, self.prunable = outer_params, outer_prunable
        sql += " FROM " + ", ".join(self.from_item(f) for f in sel.from_) + where
        if sel.where is not None:
            self.params.extend(where_params)
        if sel.group_by:
            terms = zip(sel.group_by, sel.group_targets, strict=True)
            sql += " GROUP BY " + ", ".join(self.group_term(g, t) for g, t in terms)
        if sel.having is not None:
            sql += " HAVING " + self.other_cond(sel.having)
        if self.sort_keys(order_by):
            sql += " ORDER BY " + ", ".join(self.order_item(o) for o in self.sort_keys(order_by))
        if sel.top is not None:
            sql += f" LIMIT {sel.top}"
        if offset is not None:
            sql += f" OFFSET {offset}"
        return sql

    def output_value(self, e) -> str:
        et = e.etype
        if et.kind in ("POINT", "CIRCLE", "POLYGON", "REGION") and not (
            isinstance(e, n.ColumnRef) and e.bound.stored_region
        ):
            if isinstance(e, n.ColumnRef):  # a stored DALI array
                return self.x(e)
            return f"({self.geo(e)})[2:]"
        return self.x(e)

    def output_value_col(self, col) -> str:
        return self.col(col)

    def group_term(self, g, target) -> str:
        if target is None:
            return self.x(g)
        if target[0] == "position":
            return str(target[1])
        return self.x(target[1])

    def sort_keys(self, order_by) -> list:
        """The ORDER BY items that sort: a constant other than a column position (``ORDER BY 0.0``,
        ``'x'``) orders nothing, and DuckDB refuses it, so it is left out."""
        return [o for o in order_by or () if o.target is not None
                or not isinstance(o.expr, n.Literal)]

    def order_item(self, o: n.OrderItem) -> str:
        target = o.target
        if target is None:
            sql = self.x(o.expr)
        elif target[0] == "position":
            sql = str(target[1])
        else:
            sql = self.d.quote(target[1])
        return sql + (" DESC NULLS FIRST" if o.descending else " ASC NULLS LAST")

    def from_item(self, f) -> str:
        if isinstance(f, n.TableRef):
            src = f.source
            parts = self.layout.partitions.get(src.qualified or "") if src.relation[0] == "table" else None
            relation = self.d.parquet(self._files(parts, src)) if parts else self.d.relation(src.relation)
            return f"{relation} AS {self.d.quote(src.sql_alias)}"
        if isinstance(f, n.DerivedTable):
            src = f.source
            return f"({self.query_expr(f.query)}) AS {self.d.quote(src.sql_alias)}"
        left, right = self.from_item(f.left), self.from_item(f.right)
        kind = {"INNER": "JOIN", "LEFT": "LEFT JOIN", "RIGHT": "RIGHT JOIN", "FULL": "FULL JOIN"}[f.kind]
        merged = (f.merged or [])
        if f.condition is not None:
            on = self.row_cond(f.condition)
        elif merged or f.using is not None or f.natural:
            on = " AND ".join(self._using_pair(f, name) for name, _ in merged) or "TRUE"
        else:
            on = "TRUE"
        return f"({left} {kind} {right} ON {on})"

    def _using_pair(self, join: n.Join, name: str) -> str:
        def find(item):
            if isinstance(item, (n.TableRef, n.DerivedTable)):
                for c in item.source.columns:
                    if c.name.lower() == name:
                        return self.col(c)
                return None
            for k, col in (item.merged or []):
                if k == name:
                    return self.col(col)
            return find(item.left) or find(item.right)
        return f"{find(join.left)} = {find(join.right)}"

    # ---------------------------------------------------------------- conditions
    def row_cond(self, c) -> str:
        """A condition on single rows (WHERE, JOIN ... ON)."""
        outer, self.row_condition = self.row_condition, True
        try:
            return self.cond(c)
        finally:
            self.row_condition = outer

    def other_cond(self, c) -> str:
        """A condition on groups (HAVING)."""
        outer, self.row_condition = self.row_condition, False
        try:
            return self.cond(c)
        finally:
            self.row_condition = outer

    def cond(self, c) -> str:
        if isinstance(c, n.BoolOp):
            return f"({self.cond(c.left)} {c.op} {self.cond(c.right)})"
        if isinstance(c, n.Not):
            return f"(NOT {self.cond(c.operand)})"
        if isinstance(c, n.Comparison):
            fast = self.fast_path(c)
            if fast is not None:
                return fast
            return f"({self.x(c.left)} {c.op} {self.x(c.right)})"
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

    # ---- the spatial fast path
    def _position(self, a, b) -> tuple[str, str, str, SpatialIndex] | None:
        """(SQL alias prefix, ra SQL, dec SQL, index) if a, b are a spatial table's own position."""
        if not (isinstance(a, n.ColumnRef) and isinstance(b, n.ColumnRef)):
            return None
        ca, cb = a.bound, b.bound
        if ca is None or cb is None or ca.table is None or ca.table != cb.table:
            return None
        index = self.layout.spatial.get(ca.table)
        if index is None or ca.column is None or cb.column is None or (ca.column, cb.column) != (index.ra, index.dec):
            return None
        if ca.merge is not None or cb.merge is not None or ca.source is None or ca.source != cb.source:
            return None
        return self.d.quote(ca.source) + ".", self.col(ca), self.col(cb), index

    def _shape(self, g):
        """('circle', (ra, dec, r)) or ('polygon', flat) for constant CIRCLE/POLYGON/BOX."""
        if not isinstance(g, n.GeometryCall):
            return None
        try:
            if g.name == "CIRCLE" and len(g.args) == 3:
                return "circle", tuple(_constant(a) for a in g.args)
            if g.name == "POLYGON" and len(g.args) >= 6 and len(g.args) % 2 == 0:
                return "polygon", tuple(_constant(a) for a in g.args)
            if g.name == "BOX" and len(g.args) == 4:
                return "polygon", _box_vertices(*(_constant(a) for a in g.args))
        except _Const:
            return None
        return None

    def fast_path(self, c: n.Comparison):
        left, right, op = c.left, c.right, c.op
        if isinstance(left, n.Literal):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, n.GeometryCall) and left.name in ("CONTAINS", "INTERSECTS") and op == "=" \
                and isinstance(right, n.Literal) and right.kind == "integer" and right.value == 1:
            region = self._region_prefilter(left) if self.row_condition else None
            if region is not None:
                return region
            a, b = left.args
            if left.name == "INTERSECTS" and isinstance(b, n.GeometryCall) and b.name == "POINT":
                a, b = b, a
            if not (isinstance(a, n.GeometryCall) and a.name == "POINT"):
                return None
            pos = self._position(*a.args)
            shape = self._shape(b)
            if pos is None or shape is None:
                return None
            kind, params = shape
            if kind == "circle" and pos[3].unit_vector is None:  # no stored vectors: the generic test
                exact = f"({self.x(c.left)} {c.op} {self.x(c.right)})"
            elif kind == "circle":
                exact = _dot_test(self.d, pos[0], pos[3], params[0], params[1], params[2], ">=")
            else:
                exact = f"adql_in_polygon({pos[1]}, {pos[2]}, [{', '.join(_num(v) for v in params)}]::DOUBLE[])"
            return self._ranges(pos[0], pos[3], kind, params, exact, node=c)
        # DISTANCE(POINT(ra, dec), POINT(c1, c2)) < r  (or <=), also the four-number form
        if isinstance(left, n.GeometryCall) and left.name == "DISTANCE" and op in ("<", "<="):
            args = left.args
            if len(args) == 2:
                p, q = args
                if not (isinstance(p, n.GeometryCall) and p.name == "POINT"
                        and isinstance(q, n.GeometryCall) and q.name == "POINT"):
                    return None
                if self._position(*q.args) and not self._position(*p.args):
                    p, q = q, p
                coords = (*p.args, *q.args)
            else:
                coords = args
                if self._position(coords[2], coords[3]) and not self._position(coords[0], coords[1]):
                    coords = (coords[2], coords[3], coords[0], coords[1])
            pos = self._position(coords[0], coords[1])
            if pos is None:
                return None
            try:
                centre = (_constant(coords[2]), _constant(coords[3]))
                radius = _constant(right)
            except _Const:
                return None
            if radius < 0:
                return "FALSE"
            if pos[3].unit_vector is None:
                exact = f"({self.x(c.left)} {c.op} {self.x(c.right)})"
            else:
                exact = _dot_test(self.d, pos[0], pos[3], centre[0], centre[1], radius, ">" if op == "<" else ">=")
            return self._ranges(pos[0], pos[3], "circle", (*centre, radius), exact, node=c)
        return None

    def _region_prefilter(self, call: n.GeometryCall) -> str | None:
        """CONTAINS/INTERSECTS(constant shape, stored footprint) = 1, either order, on a table whose
        footprint has a centre and a diameter column (ObsCore's s_ra, s_dec, s_fov).

        The rows are chosen by an uncorrelated subquery: a cheap test on those plain columns
        keeps the candidates, an aggregate hands all of them to one call of
        ``adql_region_select``, which parses their STC-S text and runs the exact test (the same
        parser and the same test formulas as ``adql_region`` + ``adql_contains``/
        ``adql_intersects``, batched), and the outer row qualifies when its rowid is among those
        returned. Parsing a few hundred
        footprints once costs far less than parsing every footprint, or a few per scanned vector.

        Both CONTAINS directions and INTERSECTS imply that the footprint meets the shape, hence
        that the footprint's cap (centre (s_ra, s_dec), radius s_fov / 2) meets the shape's cap:
        the centres are at most r_shape + s_fov / 2 apart. That needs s_fov to be a diameter
        about (s_ra, s_dec) that encloses s_region, which is how the archive fills it
        (obscore.obscore_row: twice the largest centre-to-corner distance, from the same corners
        as s_region); REGION_MARGIN_DEG absorbs the six-decimal rounding of the STC-S vertices and
        the rounding of the dot product. Rows with a NULL centre or diameter are candidates.
        """
        from . import geometry

        a, b = call.args
        found = self._region_column(a)
        region_first, other = True, b
        if found is None:
            found, region_first, other = self._region_column(b), False, a
        if found is None:
            return None
        if isinstance(other, n.GeometryCall) and other.name == "POINT" and len(other.args) == 2:
            try:
                shape = ("point", tuple(_constant(x) for x in other.args))
            except _Const:
                return None
        else:
            shape = self._shape(other)
        if shape is None:
            return None
        cap = geometry.enclosing_cap(shape[0], tuple(shape[1]))
        if cap is None or cap[1] >= 90.0:
            return None
        (cx, cy, cz), radius = cap
        prefix, relation, column, (ra_col, dec_col, fov_col) = found
        inner = '"_region_candidates".'
        ra, dec, fov = (f"{inner}{self.d.quote(c)}" for c in (ra_col, dec_col, fov_col))
        dot = (f"cos(radians({dec})) * (cos(radians({ra})) * {_num(cx)} + sin(radians({ra})) * {_num(cy)})"
               f" + sin(radians({dec})) * {_num(cz)}")
        reach = f"({_num(radius + REGION_MARGIN_DEG)} + {fov} / 2.0)"
        unknown = f"{ra} IS NULL OR {dec} IS NULL OR {fov} IS NULL"
        # two conjuncts, so that the trigonometry runs only on the rows the cheap latitude test
        # keeps (the angular distance is at least the difference in latitude)
        centre_dec = math.degrees(math.asin(max(-1.0, min(1.0, cz))))
        near = (f"({unknown} OR abs({dec} - ({_num(centre_dec)})) <= {reach} + {_num(REGION_MARGIN_DEG)}) "
                f"AND ({unknown} OR {dot} >= cos(radians(least({reach}, 180.0))))")
        mode = (1 if region_first else 0) if call.name == "INTERSECTS" else (3 if region_first else 2)
        chosen = (f"SELECT unnest(adql_region_select(list({inner}rowid), list({inner}{self.d.quote(column)}), "
                  f"{self.geo(other)}, {mode})) FROM {relation} AS \"_region_candidates\" WHERE {near}")
        return f"({prefix}rowid IN ({chosen}))"

    def _region_column(self, e) -> tuple[str, str, str, tuple[str, str, str]] | None:
        """(SQL prefix, table relation, column, bound columns) if e is a stored footprint column
        with bounds in the layout, read straight from its table."""
        if not isinstance(e, n.ColumnRef):
            return None
        col = e.bound
        if col is None or not col.stored_region or col.table is None or col.column is None:
            return None
        found = self.layout.regions.get((col.table, col.column))
        bounds = None if found is None else (found.ra, found.dec, found.diameter)
        if bounds is None or col.merge is not None or col.source is None:
            return None
        prefix = self.d.quote(col.source) + "."
        schema, _, table = col.table.partition(".")
        return prefix, f"{self.d.quote(schema)}.{self.d.quote(table)}", col.column, bounds

    def _files(self, parts, src) -> list[str]:
        """The partition files that can hold rows of this source: those meeting every cover that
        a top-level WHERE conjunct put on it (at least one file, so the relation stays typed)."""
        covers = self.covers.get(self.d.quote(src.sql_alias) + ".", [])
        index = self.layout.spatial[src.qualified]
        kept = [p for p in parts
                if all(any(lo <= hi_p and lo_p <= hi for lo, hi in cover)
                       for cover in covers for lo_p, hi_p in [p.index_range(index.order)])]
        return [p.path for p in (kept or parts[:1])]

    def _ranges(self, prefix: str, index: SpatialIndex, kind: str, params, exact: str,
                node=None) -> str | None:
        cover = min(index.order, index.cover_order if index.cover_order is not None else index.order)
        try:
            ranges = _healpix_ranges(kind, tuple(params), cover)
        except ValueError:
            return None
        if cover < index.order:  # the same cells, as ranges of the finer index
            shift = 2 * (index.order - cover)
            ranges = [(lo << shift, ((hi + 1) << shift) - 1) for lo, hi in ranges]
        if node is not None and id(node) in self.prunable:
            self.covers.setdefault(prefix, []).append(ranges)
        col = f"{prefix}{self.d.quote(index.healpix)}"
        if not ranges:
            return "FALSE"
        filt = " OR ".join(f"{col} BETWEEN {lo} AND {hi}" for lo, hi in ranges)
        # The enclosing interval first: DuckDB pushes a plain BETWEEN into the scan's zone maps
        # (row groups outside it are never read); the OR of ranges then trims within them.
        outer = f"{col} BETWEEN {ranges[0][0]} AND {ranges[-1][1]}"
        if len(ranges) == 1:
            return f"({outer} AND {exact})"
        return f"({outer} AND ({filt}) AND {exact})"

    # ---------------------------------------------------------------- values
    def x(self, e) -> str:
        if isinstance(e, n.Literal):
            if e.kind == "string":
                return self.param(e.value)
            if e.kind == "null":
                return "NULL"
            if e.kind == "real":
                return _num(e.value)
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
            # a geometry result: every branch as a tagged DOUBLE[] (a stored STC-S string too)
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
        raise ADQLError(f"cannot translate {type(e).__name__}", e.line, e.column, code="unsupported")

    def binary(self, e: n.BinaryOp) -> str:
        a, b = self.x(e.left), self.x(e.right)
        ta, tb = e.left.etype, e.right.etype
        if e.op == "/":
            ints = ("SMALLINT", "INTEGER", "BIGINT")
            if ta.kind in ints and tb.kind in ints:
                return f"({a} // {b})"  # ADQL/SQL: integer division of integers
            return f"({a} / {b})"
        if e.op == "||":
            a = a if ta.kind == "VARCHAR" else f"CAST({a} AS VARCHAR)"
            b = b if tb.kind == "VARCHAR" else f"CAST({b} AS VARCHAR)"
            return f"({a} || {b})"
        if e.op == "^":
            return f"xor({a}, {b})"
        return f"({a} {e.op} {b})"

    def function(self, e: n.FunctionCall) -> str:
        name = e.name
        if e.udf:
            return self.udf(e)
        if e.star:
            return "count(*)"
        if name == "IN_UNIT":  # the unit string is used at translation time, not sent
            factor = e.factor
            return f"(CAST({self.x(e.args[0])} AS DOUBLE) * {_num(factor)})"
        # MIN/MAX/COALESCE of geometries: arguments as tagged DOUBLE[], like every geometry value
        # (a stored STC-S column would otherwise pass through as a string and lose its first
        # character to the tag-stripping slice of output_value)
        val = self.geo if e.etype.geometry else self.x
        args = [val(a) for a in e.args]
        q = f"{e.quantifier} " if e.quantifier == "DISTINCT" else ""
        if name == "SUM":
            et = e.etype
            sql = f"sum({q}{args[0]})"
            return f"CAST({sql} AS BIGINT)" if et.kind == "BIGINT" else f"CAST({sql} AS DOUBLE)"
        if name in ("AVG", "MIN", "MAX", "COUNT"):
            return f"{_SIMPLE_FUNCS[name]}({q}{args[0]})"
        if name == "MOD":
            return f"({args[0]} % {args[1]})"
        if name == "RAND":
            return "random()"
        if name in ("ROUND", "TRUNCATE"):
            x = f"CAST({args[0]} AS DOUBLE)"
            digits = args[1] if len(args) > 1 else "0"
            if name == "ROUND":
                return f"round({x}, {digits})"
            return f"(trunc({x} * power(10, {digits})) / power(10, {digits}))" if len(args) > 1 else f"trunc({x})"
        if name in ("CEILING", "FLOOR"):
            return f"{_SIMPLE_FUNCS[name]}(CAST({args[0]} AS DOUBLE))"
        if name in ("LOG", "LOG10", "SQRT", "EXP", "POWER", "ACOS", "ASIN", "ATAN", "ATAN2", "COS", "COT",
                    "SIN", "TAN", "DEGREES", "RADIANS"):
            return f"{_SIMPLE_FUNCS[name]}({', '.join(f'CAST({a} AS DOUBLE)' for a in args)})"
        return f"{_SIMPLE_FUNCS[name]}({', '.join(args)})"

    def udf(self, e: n.FunctionCall) -> str:
        args = [self.x(a) for a in e.args]
        if e.name == "ivo_healpix_index":
            order = e.args[0]
            pos = self._position(e.args[1], e.args[2])
            if pos and isinstance(order, n.Literal) and order.kind == "integer" and 0 <= order.value <= pos[3].order:
                return f"({pos[0]}{self.d.quote(pos[3].healpix)} >> {2 * (pos[3].order - order.value)})"
            return (f"adql_healpix_index(CAST({args[0]} AS BIGINT), CAST({args[1]} AS DOUBLE), "
                    f"CAST({args[2]} AS DOUBLE))")
        if e.name == "ivo_interval_overlaps":
            l1, h1, l2, h2 = args
            return f"CAST(({l1} <= {h2} AND {l2} <= {h1}) AS INTEGER)"
        if e.name == "ivo_hasword":
            return (f"CAST(regexp_matches({args[0]}, '\\b' || regexp_escape({args[1]}) || '\\b', 'i') "
                    "AS INTEGER)")
        raise ADQLError(f"no translation for function {e.name}", e.line, e.column, code="unsupported")

    def cast(self, e: n.Cast) -> str:
        if e.target in _TAGS:
            et = e.operand.etype
            if et.geometry:
                return self.geo(e.operand)
            tag = _TAGS[e.target]
            return (f"list_prepend({tag}::DOUBLE, CAST(regexp_split_to_array(trim({self.x(e.operand)}), "
                    f"'[\\s,]+') AS DOUBLE[]))")
        return f"CAST({self.x(e.operand)} AS {_CAST_TYPES[e.target]})"

    # ---- geometry
    def geo(self, e) -> str:
        """A geometry-valued expression as a tagged DOUBLE[]."""
        if isinstance(e, n.ColumnRef):
            col = e.bound
            if col.stored_region:
                return f"adql_region({self.col(col)})"
            tag = _TAGS.get(col.etype.kind)
            if tag:
                return f"list_prepend({tag}::DOUBLE, CAST({self.col(col)} AS DOUBLE[]))"
        return self.x(e)

    def _coords(self, p) -> tuple[str, str]:
        if isinstance(p, n.GeometryCall) and p.name == "POINT":
            return self.x(p.args[0]), self.x(p.args[1])
        g = self.geo(p)
        return f"({g})[2]", f"({g})[3]"

    def geometry(self, e: n.GeometryCall) -> str:
        name, args = e.name, e.args
        d = lambda s: f"CAST({s} AS DOUBLE)"  # noqa: E731
        if name == "POINT":
            return f"[1::DOUBLE, {d(self.x(args[0]))}, {d(self.x(args[1]))}]"
        if name == "CIRCLE":
            if len(args) == 2:
                ra, dec = self._coords(args[0])
                return f"[2::DOUBLE, {d(ra)}, {d(dec)}, {d(self.x(args[1]))}]"
            return "[2::DOUBLE, " + ", ".join(d(self.x(a)) for a in args) + "]"
        if name == "BOX":
            if len(args) == 3:
                ra, dec = self._coords(args[0])
                w, h = self.x(args[1]), self.x(args[2])
            else:
                ra, dec, w, h = (self.x(a) for a in args)
            try:
                flat = _box_vertices(*(_constant(a) for a in (args if len(args) == 4 else ())))
                return "[3::DOUBLE, " + ", ".join(_num(v) for v in flat) + "]"
            except (_Const, TypeError):
                pass
            hw, hh = f"(({w}) / 2.0)", f"(({h}) / 2.0)"
            corners = [(f"{ra} - {hw}", f"{dec} - {hh}"), (f"{ra} - {hw}", f"{dec} + {hh}"),
                       (f"{ra} + {hw}", f"{dec} + {hh}"), (f"{ra} + {hw}", f"{dec} - {hh}")]
            return "[3::DOUBLE, " + ", ".join(d(v) for c in corners for v in c) + "]"
        if name == "POLYGON":
            numeric = len(args) >= 6 and len(args) % 2 == 0 and all(
                a.etype.numeric or a.etype.loose for a in args)
            if numeric:
                return "[3::DOUBLE, " + ", ".join(d(self.x(a)) for a in args) + "]"
            return "[3::DOUBLE, " + ", ".join(d(c) for a in args for c in self._coords(a)) + "]"
        if name == "REGION":
            return f"adql_region({self.x(args[0])})"
        if name == "CENTROID":
            return f"adql_centroid({self.geo(args[0])})"
        if name == "AREA":
            return f"adql_area({self.geo(args[0])})"
        if name in ("COORD1", "COORD2"):
            return self._coords(args[0])[0 if name == "COORD1" else 1]
        if name == "COORDSYS":
            arg = args[0]
            system = "ICRS"
            if (isinstance(arg, n.GeometryCall) and isinstance(arg.coordsys, n.Literal)
                    and arg.coordsys.kind == "string"):
                system = arg.coordsys.value
            return self.param(system)
        if name == "DISTANCE":
            if len(args) == 2:
                (a1, b1), (a2, b2) = self._coords(args[0]), self._coords(args[1])
            else:
                a1, b1, a2, b2 = (self.x(a) for a in args)
            return f"adql_distance({d(a1)}, {d(b1)}, {d(a2)}, {d(b2)})"
        if name in ("CONTAINS", "INTERSECTS"):
            a, b = args
            if name == "INTERSECTS" and isinstance(b, n.GeometryCall) and b.name == "POINT":
                a, b = b, a
            if isinstance(a, n.GeometryCall) and a.name == "POINT":
                ra, dec = self._coords(a)
                shape = self._shape(b)
                if isinstance(b, n.GeometryCall) and b.name == "CIRCLE" and len(b.args) == 3:
                    c = ", ".join(d(self.x(x)) for x in b.args)
                    return f"CAST(adql_in_circle({d(ra)}, {d(dec)}, {c}) AS INTEGER)"
                if shape is not None and shape[0] == "polygon":
                    vertices = ", ".join(_num(v) for v in shape[1])
                    return f"CAST(adql_in_polygon({d(ra)}, {d(dec)}, [{vertices}]::DOUBLE[]) AS INTEGER)"
            fn = "adql_contains" if name == "CONTAINS" else "adql_intersects"
            return f"{fn}({self.geo(a)}, {self.geo(b)})"
        raise ADQLError(f"cannot translate {name}", e.line, e.column, code="unsupported")


def _dot_test(dialect: Dialect, prefix: str, index: SpatialIndex, ra: float, dec: float, radius: float,
              op: str) -> str:
    """Exact cone membership on a spatial table's stored unit vectors: the angle to the centre
    is at most r exactly when the dot product is at least cos(r). Rounding moves the boundary by
    about 1e-16 / sin(r) rad, far below any catalogue's precision, and no trigonometry runs per
    row (the HEALPix ranges have already picked the row groups)."""
    import math

    if radius >= 180.0:
        return "TRUE"
    a, d = math.radians(ra), math.radians(dec)
    centre = (math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d))
    assert index.unit_vector is not None, "only for storages that keep unit vectors"
    pairs = zip(index.unit_vector, centre, strict=True)
    terms = " + ".join(f"{prefix}{dialect.quote(c)} * {_num(v)}" for c, v in pairs)
    return f"({terms} {op} {_num(math.cos(math.radians(radius)))})"


def _conjuncts(c) -> list:
    """The conditions ANDed at the top of ``c``."""
    if isinstance(c, n.BoolOp) and c.op == "AND":
        return _conjuncts(c.left) + _conjuncts(c.right)
    return [c]


@lru_cache(maxsize=256)
def _healpix_ranges(kind: str, params: tuple, depth: int) -> list[tuple[int, int]]:
    from . import geometry

    return geometry.healpix_ranges(kind, params, depth)


def _box_vertices(ra: float, dec: float, w: float, h: float) -> tuple[float, ...]:
    """A constant BOX as the exact polygon ADQL 2.1 defines (great-circle sides at right angles
    to the arms of the cross), so CONTAINS/INTERSECTS with it are exact on the sphere."""
    from .spherical import box_vertices

    return tuple(float(v) for v in box_vertices(ra, dec, w, h))


def emit(checked: Checked, layout: Layout = PLAIN, dialect: Dialect = DUCKDB) -> Translation:
    """SQL for a checked query in ``dialect``; ``layout`` (from the engine's storage) enables the
    fast paths."""
    em = _Emitter(checked, layout, dialect)
    try:
        sql = em.query(checked.query)
    except RecursionError:
        raise ADQLError("the query is nested too deeply", code="limit") from None
    return Translation(sql, em.params, checked.columns, checked)
