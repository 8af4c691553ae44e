"""The plan: a checked query with its spatial predicates recognised as their own nodes.

Checking says what a query means; planning says how a storage can answer it fast without
changing the answer. Given the storage's :class:`Layout`, the planner rewrites

- ``CONTAINS(POINT(t.ra, t.dec), CIRCLE(...)) = 1`` and ``DISTANCE(...) < r`` on a spatial
  table's own position into a :class:`ConeTest`,
- the same against a constant POLYGON or BOX into a :class:`PolygonTest`,
- ``CONTAINS``/``INTERSECTS`` of a constant shape and a stored footprint with bounding columns
  (in WHERE or ON) into a :class:`RegionTest`,
- ``ivo_healpix_index(k, t.ra, t.dec)`` at an order the table stores into a
  :class:`HealpixIndex`,

each carrying the :class:`HealpixCover` of its shape at the table's index order, and annotates
each partitioned table with the partition files that a top-level WHERE conjunct's cover leaves.
The emitter writes each node through the engine's dialect; the exact test the user wrote is kept
(``written``) for dialects with no faster form. Nothing here writes SQL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from diavo.server.archive.layout import Layout, Partition, RegionBounds, SpatialIndex

from . import nodes as n
from .check import Checked
from .scope import ScopeCol

__all__ = ["ConeTest", "HealpixCover", "HealpixIndex", "PolygonTest", "Position", "RegionTest",
           "constant", "plan"]

_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "<>": "<>"}


@dataclass(frozen=True)
class HealpixCover:
    """Inclusive ranges of the nested HEALPix index at ``order`` whose union covers a shape
    (a superset: rows outside it cannot match; rows inside still take the exact test)."""

    order: int
    ranges: tuple[tuple[int, int], ...]

    def meets(self, lo: int, hi: int) -> bool:
        return any(a <= hi and lo <= b for a, b in self.ranges)


@dataclass(frozen=True)
class Position:
    """A spatial table's own position columns, read through one FROM source."""

    alias: str  # the source's SQL alias
    ra: ScopeCol
    dec: ScopeCol
    index: SpatialIndex


@dataclass(frozen=True, eq=False)
class ConeTest(n.Node):
    """The position lies within ``radius`` degrees of (``ra``, ``dec``) (strictly, for
    ``DISTANCE < r``)."""

    position: Position
    ra: float
    dec: float
    radius: float
    strict: bool
    cover: HealpixCover
    written: n.Comparison


@dataclass(frozen=True, eq=False)
class PolygonTest(n.Node):
    """The position lies in the constant polygon (flat vertices, degrees; a BOX as its ADQL 2.1
    great-circle polygon)."""

    position: Position
    vertices: tuple[float, ...]
    cover: HealpixCover
    written: n.Comparison


@dataclass(frozen=True, eq=False)
class RegionTest(n.Node):
    """CONTAINS/INTERSECTS of a stored footprint and a constant shape, with a bounding cap
    (centre unit vector, radius degrees) of the shape; ``mode`` as geometry.region_select."""

    footprint: ScopeCol
    bounds: RegionBounds
    shape: n.Expr  # the constant geometry as written
    kind: str  # point, circle or polygon
    cap: tuple[tuple[float, float, float], float]
    mode: int
    written: n.Comparison


@dataclass(frozen=True, eq=False)
class HealpixIndex(n.Node):
    """The nested HEALPix index of a spatial table's position at ``order`` (≤ its stored order)."""

    position: Position
    order: int


class NotConstant(Exception):
    pass


def constant(e: Any) -> float:
    """The value of a constant numeric expression, or NotConstant."""
    if isinstance(e, n.Literal) and e.kind in ("integer", "real", "hex"):
        return float(e.value)
    if isinstance(e, n.Unary) and e.op in "+-":
        v = constant(e.operand)
        return -v if e.op == "-" else v
    if isinstance(e, n.BinaryOp) and e.op in "+-*/":
        a, b = constant(e.left), constant(e.right)
        if e.op == "/" and b == 0:
            raise NotConstant
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[e.op]
    if isinstance(e, n.FunctionCall) and e.name == "PI" and not e.args:
        return math.pi
    raise NotConstant


def box_vertices(ra: float, dec: float, w: float, h: float) -> tuple[float, ...]:
    """A constant BOX as the exact polygon ADQL 2.1 defines (great-circle sides at right angles
    to the arms of the cross), so tests against it are exact on the sphere."""
    from .spherical import box_vertices as vertices

    return tuple(float(v) for v in vertices(ra, dec, w, h))


def constant_shape(g: Any) -> tuple[str, tuple[float, ...]] | None:
    """('circle', (ra, dec, r)) or ('polygon', flat) for a constant CIRCLE/POLYGON/BOX."""
    if not isinstance(g, n.GeometryCall):
        return None
    try:
        if g.name == "CIRCLE" and len(g.args) == 3:
            return "circle", tuple(constant(a) for a in g.args)
        if g.name == "POLYGON" and len(g.args) >= 6 and len(g.args) % 2 == 0:
            return "polygon", tuple(constant(a) for a in g.args)
        if g.name == "BOX" and len(g.args) == 4:
            return "polygon", box_vertices(*(constant(a) for a in g.args))
    except NotConstant:
        return None
    return None


@lru_cache(maxsize=256)
def _ranges(kind: str, params: tuple, order: int) -> tuple[tuple[int, int], ...]:
    from .cover import healpix_ranges

    return tuple(healpix_ranges(kind, params, order))


def cover(index: SpatialIndex, kind: str, params: tuple[float, ...]) -> HealpixCover | None:
    """The shape's cover at the index's order, computed at its cover order and shifted."""
    at = min(index.order, index.cover_order if index.cover_order is not None else index.order)
    try:
        ranges = _ranges(kind, tuple(params), at)
    except ValueError:
        return None
    if at < index.order:  # the same cells, as ranges of the finer index
        shift = 2 * (index.order - at)
        ranges = tuple((lo << shift, ((hi + 1) << shift) - 1) for lo, hi in ranges)
    return HealpixCover(index.order, ranges)


class _Planner:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # ---------------------------------------------------------------- walking
    def node(self, node: Any, row: bool) -> Any:
        """``node`` with its spatial predicates replaced; ``row`` while inside a WHERE or ON
        (the only places a footprint's rows may be chosen by id)."""
        if isinstance(node, n.Select):
            return self.select(node)
        if isinstance(node, n.QueryExpr):  # a subquery has its own clauses
            return self.rebuild(node, False)
        if isinstance(node, n.Comparison):
            planned = self.comparison(node, row)
            if planned is not None:
                return planned
        if isinstance(node, n.FunctionCall) and node.udf and node.name == "ivo_healpix_index":
            planned = self.healpix_index(node)
            if planned is not None:
                return planned
        if isinstance(node, n.Join):
            return self.rebuild(node, row, condition=True)
        return self.rebuild(node, row)

    def rebuild(self, node: Any, row: bool, condition: bool = False) -> Any:
        changes = {}
        for name in n.syntax_fields(type(node)):
            value = getattr(node, name)
            new = self.value(value, True if (condition and name == "condition") else row)
            if new is not value:
                changes[name] = new
        return replace(node, **changes) if changes else node

    def value(self, value: Any, row: bool) -> Any:
        if isinstance(value, n.Node):
            return self.node(value, row)
        if isinstance(value, tuple):
            new = tuple(self.value(v, row) for v in value)
            return value if all(a is b for a, b in zip(new, value, strict=True)) else new
        return value

    def select(self, sel: n.Select) -> n.Select:
        changes: dict[str, Any] = {}
        for name in ("items", "from_", "group_by", "having"):
            value = getattr(sel, name)
            new = self.value(value, False)
            if new is not value:
                changes[name] = new
        if sel.group_targets and any(t is not None and t[0] == "expr" for t in sel.group_targets):
            # an alias grouped by stands for its select item's expression: plan it the same way,
            # so GROUP BY and the select list stay the same SQL
            targets = tuple(("expr", self.node(t[1], False)) if t is not None and t[0] == "expr" else t
                            for t in sel.group_targets)
            changes["group_targets"] = targets
        if sel.where is not None:
            changes["where"] = self.node(sel.where, True)
            conjuncts = _conjuncts(changes["where"])
            changes["from_"] = tuple(self.prune(f, conjuncts) for f in changes.get("from_", sel.from_))
        else:
            changes["from_"] = tuple(self.prune(f, []) for f in changes.get("from_", sel.from_))
        return replace(sel, **changes)

    def prune(self, item: Any, conjuncts: list[Any]) -> Any:
        """Annotate each partitioned table of this FROM with the files it must read: those that
        meet the cover of every top-level WHERE conjunct on its position (at least one file, so
        the relation keeps its columns' types)."""
        if isinstance(item, n.Join):
            left, right = self.prune(item.left, conjuncts), self.prune(item.right, conjuncts)
            return item if (left is item.left and right is item.right) else replace(item, left=left, right=right)
        if not isinstance(item, n.TableRef) or item.source is None or item.source.relation[0] != "table":
            return item
        parts: tuple[Partition, ...] = self.layout.partitions.get(item.source.qualified or "", ())
        if not parts:
            return item
        covers = [c.cover for c in conjuncts if isinstance(c, (ConeTest, PolygonTest))
                  and c.position.alias == item.source.sql_alias]
        kept = [p for p in parts if all(cov.meets(*p.index_range(cov.order)) for cov in covers)]
        new = replace(item)
        n.annotate(new, files=tuple(p.path for p in (kept or parts[:1])))
        return new

    # ---------------------------------------------------------------- recognising
    def position(self, a: Any, b: Any) -> Position | None:
        """The position if ``a``, ``b`` are a spatial table's own (ra, dec) through one source."""
        if not (isinstance(a, n.ColumnRef) and isinstance(b, n.ColumnRef)):
            return None
        ca, cb = a.bound, b.bound
        if ca is None or cb is None or ca.table is None or ca.table != cb.table:
            return None
        index = self.layout.spatial.get(ca.table)
        if index is None or (ca.column, cb.column) != (index.ra, index.dec):
            return None
        if ca.merge is not None or cb.merge is not None or ca.source is None or ca.source != cb.source:
            return None
        return Position(ca.source, ca, cb, index)

    def comparison(self, c: n.Comparison, row: bool) -> n.Node | None:
        left, right, op = c.left, c.right, c.op
        if isinstance(left, n.Literal):
            left, right, op = right, left, _FLIP[op]
        if isinstance(left, n.GeometryCall) and left.name in ("CONTAINS", "INTERSECTS") and op == "=" \
                and isinstance(right, n.Literal) and right.kind == "integer" and right.value == 1:
            region = self.region(left, c) if row else None
            if region is not None:
                return region
            return self.point_in_shape(left, c)
        if isinstance(left, n.GeometryCall) and left.name == "DISTANCE" and op in ("<", "<="):
            return self.distance(left, right, op, c)
        return None

    def point_in_shape(self, call: n.GeometryCall, c: n.Comparison) -> n.Node | None:
        a, b = call.args
        if call.name == "INTERSECTS" and isinstance(b, n.GeometryCall) and b.name == "POINT":
            a, b = b, a
        if not (isinstance(a, n.GeometryCall) and a.name == "POINT"):
            return None
        pos = self.position(*a.args)
        shape = constant_shape(b)
        if pos is None or shape is None:
            return None
        kind, params = shape
        found = cover(pos.index, kind, params)
        if found is None:  # an invalid shape: its exact test, as written, says NULL
            return None
        if kind == "circle":
            ra, dec, radius = params
            return ConeTest(pos, ra, dec, radius, False, found, c, line=c.line, column=c.column)
        return PolygonTest(pos, params, found, c, line=c.line, column=c.column)

    def distance(self, call: n.GeometryCall, right: Any, op: str, c: n.Comparison) -> n.Node | None:
        """DISTANCE(POINT(ra, dec), POINT(c1, c2)) < r (or <=), also the four-number form."""
        args = call.args
        if len(args) == 2:
            p, q = args
            if not (isinstance(p, n.GeometryCall) and p.name == "POINT"
                    and isinstance(q, n.GeometryCall) and q.name == "POINT"):
                return None
            if self.position(*q.args) and not self.position(*p.args):
                p, q = q, p
            coords = (*p.args, *q.args)
        else:
            coords = args
            if self.position(coords[2], coords[3]) and not self.position(coords[0], coords[1]):
                coords = (coords[2], coords[3], coords[0], coords[1])
        pos = self.position(coords[0], coords[1])
        if pos is None:
            return None
        try:
            ra, dec, radius = constant(coords[2]), constant(coords[3]), constant(right)
        except NotConstant:
            return None
        strict = op == "<"
        if radius < 0:  # no distance is negative: nothing matches
            return ConeTest(pos, ra, dec, radius, strict, HealpixCover(pos.index.order, ()), c,
                            line=c.line, column=c.column)
        found = cover(pos.index, "circle", (ra, dec, radius))
        if found is None:
            return None
        return ConeTest(pos, ra, dec, radius, strict, found, c, line=c.line, column=c.column)

    def region(self, call: n.GeometryCall, c: n.Comparison) -> RegionTest | None:
        """CONTAINS/INTERSECTS(constant shape, stored footprint) = 1, either order, on a table
        whose footprint has bounding columns in the layout."""
        from .cover import enclosing_cap

        a, b = call.args
        found, region_first, other = self.footprint(a), True, b
        if found is None:
            found, region_first, other = self.footprint(b), False, a
        if found is None:
            return None
        shape: tuple[str, tuple[float, ...]] | None
        if isinstance(other, n.GeometryCall) and other.name == "POINT" and len(other.args) == 2:
            try:
                shape = ("point", tuple(constant(x) for x in other.args))
            except NotConstant:
                return None
        else:
            shape = constant_shape(other)
        if shape is None:
            return None
        cap = enclosing_cap(shape[0], tuple(shape[1]))
        if cap is None or cap[1] >= 90.0:
            return None
        mode = (1 if region_first else 0) if call.name == "INTERSECTS" else (3 if region_first else 2)
        return RegionTest(found[0], found[1], other, shape[0], cap, mode, c, line=c.line, column=c.column)

    def footprint(self, e: Any) -> tuple[ScopeCol, RegionBounds] | None:
        if not isinstance(e, n.ColumnRef):
            return None
        col = e.bound
        if col is None or not col.stored_region or col.table is None or col.column is None:
            return None
        bounds = self.layout.regions.get((col.table, col.column))
        if bounds is None or col.merge is not None or col.source is None:
            return None
        return col, bounds

    def healpix_index(self, e: n.FunctionCall) -> HealpixIndex | None:
        order = e.args[0]
        pos = self.position(e.args[1], e.args[2])
        if pos and isinstance(order, n.Literal) and order.kind == "integer" and 0 <= order.value <= pos.index.order:
            planned = HealpixIndex(pos, order.value, line=e.line, column=e.column)
            n.annotate(planned, etype=e.etype)
            return planned
        return None


def _conjuncts(c: Any) -> list[Any]:
    """The conditions ANDed at the top of ``c``."""
    if isinstance(c, n.BoolOp) and c.op == "AND":
        return _conjuncts(c.left) + _conjuncts(c.right)
    return [c]


def plan(checked: Checked, layout: Layout) -> Checked:
    """The checked query with its spatial predicates planned for a storage of ``layout``."""
    planner = _Planner(layout)
    try:
        query = planner.node(checked.query, False)
    except RecursionError:
        from .errors import ADQLError

        raise ADQLError("the query is nested too deeply", code="limit") from None
    return Checked(query, checked.columns, checked.outputs)
