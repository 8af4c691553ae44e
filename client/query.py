"""Butler-style ``where`` expressions translated to one ADQL query on ivoa.ObsCore.

expr.py parses the expression into a tree; the renderer here writes ADQL from that tree alone.
No text of the user's expression is ever pasted into ADQL: identifiers map to a fixed table of
ObsCore columns, and every value (literal or bound) is re-rendered here — strings quoted with
doubled quotes, numbers through ``repr`` of a Python int or float. Anything outside the
supported forms raises ``QueryExpressionError`` naming the part and its position, so a query is
never silently answered with different rows than asked for.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from astropy.time import Time

from .expr import (
    FLIP,
    BindRef,
    BoolOp,
    Compare,
    FieldRef,
    Function,
    InList,
    Node,
    Not,
    Overlaps,
    Pair,
    QueryExpressionError,
    Value,
    parse,
)
from .refs import DIFFERENCE_IMAGE, DatasetType, Timespan

__all__ = ["QueryExpressionError", "translate_where", "constraints_adql", "order_by_adql",
           "datasets_query", "FIELDS", "ORDER_FIELDS", "RESULT_COLUMNS"]

OBSCORE = "ivoa.ObsCore"

#: Columns a DatasetRef is built from (see DatasetRef.from_row).
RESULT_COLUMNS = ("obs_publisher_did", "access_url", "access_format", "dataproduct_subtype",
                  "obs_collection", "instrument_name", "lsst_visit", "lsst_detector", "lsst_band",
                  "lsst_filter", "lsst_day_obs", "t_min", "t_max")


# ---------------------------------------------------------------------------------------------
# Dimension fields and the ObsCore columns behind them
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A dimension field of the expression language and how it is stored in ObsCore."""

    column: str  # for kind "timespan": "t_min,t_max"
    kind: str  # int | str | float | time | timespan | region


_TIMESPAN = Field("t_min,t_max", "timespan")
FIELDS: dict[str, Field] = {
    "instrument": Field("instrument_name", "str"),
    "instrument.name": Field("instrument_name", "str"),
    "detector": Field("lsst_detector", "int"),
    "detector.id": Field("lsst_detector", "int"),
    "visit": Field("lsst_visit", "int"),
    "visit.id": Field("lsst_visit", "int"),
    "band": Field("lsst_band", "str"),
    "band.name": Field("lsst_band", "str"),
    "physical_filter": Field("lsst_filter", "str"),
    "physical_filter.name": Field("lsst_filter", "str"),
    "day_obs": Field("lsst_day_obs", "int"),
    "day_obs.id": Field("lsst_day_obs", "int"),
    "visit.day_obs": Field("lsst_day_obs", "int"),
    "visit.exposure_time": Field("t_exptime", "float"),
    "visit.timespan": _TIMESPAN,
    "visit.timespan.begin": Field("t_min", "time"),
    "visit.timespan.end": Field("t_max", "time"),
    "visit_detector_region.region": Field("s_region", "region"),
}

#: order_by terms (a leading '-' sorts descending).
ORDER_FIELDS: dict[str, str] = {
    "visit.timespan.begin": "t_min",
    "visit.timespan.end": "t_max",
    "visit": "lsst_visit",
    "visit.id": "lsst_visit",
    "detector": "lsst_detector",
    "detector.id": "lsst_detector",
    "day_obs": "lsst_day_obs",
    "band": "lsst_band",
    "band.name": "lsst_band",
    "physical_filter": "lsst_filter",
    "instrument": "instrument_name",
}


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def adql_string(value: str) -> str:
    if "\x00" in value:
        raise ValueError("strings may not contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def adql_number(value: Any) -> str:
    """An int or a finite float, re-rendered from its Python value (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(f)


class _Renderer:
    def __init__(self, text: str, bind: Mapping[str, Any]) -> None:
        self.text = text
        self.bind = dict(bind)

    def fail(self, message: str, node: Node) -> NoReturn:
        raise QueryExpressionError(message, self.text, node.pos)

    # operands -----------------------------------------------------------------------------
    def resolve(self, node: Node) -> Node:
        """Bind references (``:name`` or a bare bind key) become Values; fields are checked."""
        if isinstance(node, BindRef):
            if node.name not in self.bind:
                have = ", ".join(sorted(self.bind)) or "nothing"
                self.fail(f"no bind value for :{node.name} (bind has: {have})", node)
            return Value(node.pos, self.bind[node.name], bind=node.name)
        if isinstance(node, FieldRef):
            key = node.name.lower()
            if key in FIELDS:
                return FieldRef(node.pos, key)
            if node.name in self.bind:
                return Value(node.pos, self.bind[node.name], bind=node.name)
            self.fail(f"unknown or unsupported dimension field {node.name!r} (supported: "
                      f"{', '.join(sorted(FIELDS))})", node)
        return node

    def describe(self, node: Value) -> str:
        return f":{node.bind}" if node.bind else repr(node.value)

    def scalar(self, node: Node, kind: str, field_name: str) -> str:
        """Render a value for comparison with a field of ``kind``."""
        if not isinstance(node, Value):
            self.fail(f"{field_name} can only be compared with a value", node)
        v = node.value
        try:
            if kind == "int":
                if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                    if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
                        return str(int(float(v)))
                    self.fail(f"{field_name} is an integer; {self.describe(node)} is not", node)
                return adql_number(v)
            if kind == "float":
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    self.fail(f"{field_name} is a number; {self.describe(node)} is not", node)
                return adql_number(v)
            if kind == "str":
                if not isinstance(v, str):
                    self.fail(f"{field_name} is a string; {self.describe(node)} is not (quote it)", node)
                return adql_string(v)
            if kind == "time":
                return adql_number(self.mjd(node))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, QueryExpressionError):
                raise
            self.fail(f"cannot use {self.describe(node)} here: {exc}", node)
        self.fail(f"{field_name} cannot be compared", node)

    def mjd(self, node: Node) -> float:
        """A single time as MJD (UTC, the scale of ObsCore's t_min/t_max)."""
        if isinstance(node, Value) and isinstance(node.value, Time) and node.value.isscalar:
            return float(node.value.utc.mjd)
        what = self.describe(node) if isinstance(node, Value) else "this"
        self.fail(f"expected a time (an astropy Time or T'...'), not {what}", node)

    def timespan(self, node: Node) -> tuple[float | None, float | None] | float:
        """A Timespan / (begin, end) pair → (begin, end) MJD UTC; a single time → its MJD."""
        if isinstance(node, Pair):
            ends: list[float | None] = []
            for part in (node.first, node.second):
                part = self.resolve(part)
                if isinstance(part, Value) and part.value is None:
                    ends.append(None)
                else:
                    ends.append(self.mjd(part))
            if ends[0] is not None and ends[1] is not None and ends[1] < ends[0]:
                self.fail("the timespan ends before it begins", node)
            return ends[0], ends[1]
        node = self.resolve(node)
        if isinstance(node, Value) and isinstance(node.value, Timespan):
            return node.value.begin_mjd, node.value.end_mjd
        if isinstance(node, Value) and isinstance(node.value, Time):
            return self.mjd(node)
        what = self.describe(node) if isinstance(node, Value) else "this operand"
        self.fail(f"visit.timespan OVERLAPS needs a Timespan, a (begin, end) pair or a time; got {what}", node)

    def coordinate(self, node: Node, what: str, lo: float, hi: float) -> str:
        node = self.resolve(node)
        if isinstance(node, Value) and hasattr(node.value, "unit") and hasattr(node.value, "to_value"):
            node = Value(node.pos, float(node.value.to_value("deg")), node.bind)  # Quantity / Angle
        if not isinstance(node, Value) or isinstance(node.value, bool) or not isinstance(node.value, numbers.Real):
            self.fail(f"{what} must be a number of degrees", node)
        v = float(node.value)
        if not (math.isfinite(v) and lo <= v <= hi):
            self.fail(f"{what} {v!r} is outside [{lo:g}, {hi:g}] degrees", node)
        return adql_number(v)

    def region(self, node: Node) -> str:
        node = self.resolve(node)
        if isinstance(node, Function) and node.name == "POINT":
            ra = self.coordinate(node.args[0], "POINT ra", -360.0, 360.0)
            dec = self.coordinate(node.args[1], "POINT dec", -90.0, 90.0)
            return f"CONTAINS(POINT('ICRS', {ra}, {dec}), s_region) = 1"
        if isinstance(node, Function) and node.name == "CIRCLE":
            ra = self.coordinate(node.args[0], "CIRCLE ra", -360.0, 360.0)
            dec = self.coordinate(node.args[1], "CIRCLE dec", -90.0, 90.0)
            r = self.coordinate(node.args[2], "CIRCLE radius", 0.0, 180.0)
            return f"INTERSECTS(CIRCLE('ICRS', {ra}, {dec}, {r}), s_region) = 1"
        self.fail("visit_detector_region.region OVERLAPS needs POINT(ra, dec) or CIRCLE(ra, dec, radius)", node)

    # predicates ---------------------------------------------------------------------------
    def render(self, node: Node) -> str:
        if isinstance(node, BoolOp):
            return f" {node.op} ".join(self.wrap(item) for item in node.items)
        if isinstance(node, Not):
            return f"NOT ({self.render(node.item)})"
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, Overlaps):
            return self.overlaps(node)
        self.fail("expected a condition (a comparison, IN or OVERLAPS), not a bare value", node)

    def is_field(self, node: Node) -> bool:
        return not isinstance(node, Pair) and isinstance(self.resolve(node), FieldRef)

    def wrap(self, node: Node) -> str:
        text = self.render(node)
        return f"({text})" if isinstance(node, BoolOp) else text

    def compare(self, node: Compare) -> str:
        left, right, op = self.resolve(node.left), self.resolve(node.right), node.op
        if not isinstance(left, FieldRef) and isinstance(right, FieldRef):
            left, right, op = right, left, FLIP[op]
        if not isinstance(left, FieldRef):
            self.fail("a comparison needs a dimension field on one side", node)
        if isinstance(right, FieldRef):
            self.fail(f"comparing two fields ({left.name} and {right.name}) is not supported", node)
        field = FIELDS[left.name]
        if field.kind in ("timespan", "region"):
            self.fail(f"{left.name} supports only OVERLAPS, not {op}", node)
        if field.kind == "str" and op not in ("=", "<>"):
            self.fail(f"{left.name} is a name: use = or != (not {op})", node)
        if isinstance(right, Value) and isinstance(right.value, (list, tuple, set, frozenset)):
            self.fail(f":{right.bind} holds several values; use IN", right)
        return f"{field.column} {op} {self.scalar(right, field.kind, left.name)}"

    def in_list(self, node: InList) -> str:
        item = self.resolve(node.item)
        if not isinstance(item, FieldRef):
            self.fail("IN needs a dimension field on its left", node.item)
        field = FIELDS[item.name]
        if field.kind not in ("int", "str", "float"):
            self.fail(f"{item.name} cannot be used with IN", node.item)
        rendered: list[str] = []
        for v in node.values:
            v = self.resolve(v)
            if isinstance(v, Value) and isinstance(v.value, (list, tuple, set, frozenset)):
                seq = sorted(v.value, key=repr) if isinstance(v.value, (set, frozenset)) else v.value
                rendered.extend(self.scalar(Value(v.pos, x, v.bind), field.kind, item.name) for x in seq)
            else:
                rendered.append(self.scalar(v, field.kind, item.name))
        if not rendered:
            return "1 = 1" if node.negated else "1 = 0"
        neg = "NOT " if node.negated else ""
        return f"{field.column} {neg}IN ({', '.join(rendered)})"

    def overlaps(self, node: Overlaps) -> str:
        left, right = node.left, node.right
        if not self.is_field(left) and self.is_field(right):
            left, right = right, left
        if not self.is_field(left):
            self.fail("OVERLAPS needs visit.timespan or visit_detector_region.region on one side", node)
        left = self.resolve(left)
        assert isinstance(left, FieldRef)
        field = FIELDS[left.name]
        if field.kind == "timespan":
            span = self.timespan(right)
            if isinstance(span, float):
                t = adql_number(span)
                return f"(t_min <= {t} AND t_max > {t})"
            begin, end = span
            parts = []
            if end is not None:
                parts.append(f"t_min < {adql_number(end)}")
            if begin is not None:
                parts.append(f"t_max > {adql_number(begin)}")
            return "(" + " AND ".join(parts) + ")" if parts else "1 = 1"
        if field.kind == "region":
            return self.region(right)
        self.fail(f"{left.name} does not support OVERLAPS (only visit.timespan and "
                  "visit_detector_region.region do)", node)


def translate_where(where: str, bind: Mapping[str, Any] | None = None) -> str:
    """The ADQL condition for a Butler-style expression ('' for an empty one)."""
    if where is None or not where.strip():
        return ""
    tree = parse(where)
    try:
        return _Renderer(where, bind or {}).render(tree)
    except RecursionError:
        raise QueryExpressionError("the expression nests too deeply") from None


def constraints_adql(data_id: Mapping[str, Any]) -> list[str]:
    """Equality conditions for data ID keys (``visit=..., detector=...``)."""
    out = []
    for key, value in data_id.items():
        field = FIELDS.get(str(key).lower())
        if field is None or field.kind not in ("int", "str", "float"):
            raise QueryExpressionError(f"unknown or unsupported data ID key {key!r} (supported: "
                                       "instrument, detector, visit, band, day_obs, physical_filter)")
        renderer = _Renderer("", {})
        out.append(f"{field.column} = {renderer.scalar(Value(0, value), field.kind, str(key))}")
    return out


def order_by_adql(order_by: str | Iterable[str] | None) -> list[str]:
    """ADQL ORDER BY items for Butler order_by terms ('-' prefix: descending)."""
    if order_by is None:
        return []
    terms = [order_by] if isinstance(order_by, str) else list(order_by)
    out = []
    for term in terms:
        if not isinstance(term, str):
            raise QueryExpressionError(f"order_by terms are strings, not {term!r}")
        text = term.strip()
        desc = text.startswith("-")
        name = text[1:].strip().lower() if desc else text.lower()
        column = ORDER_FIELDS.get(name)
        if column is None:
            raise QueryExpressionError(f"unsupported order_by term {term!r} (supported: "
                                       f"{', '.join(ORDER_FIELDS)}, each optionally with a '-' prefix)")
        out.append(f"{column} DESC" if desc else column)
    return out


def datasets_query(dataset_type: DatasetType = DIFFERENCE_IMAGE, where: str = "",
                   bind: Mapping[str, Any] | None = None, order_by: str | Sequence[str] | None = None,
                   limit: int | None = None, data_id: Mapping[str, Any] | None = None) -> str:
    """The one ADQL query on ivoa.ObsCore answering a ``query_datasets`` call."""
    conditions = [f"dataproduct_subtype = {adql_string(dataset_type.subtype)}"]
    conditions += constraints_adql(data_id or {})
    condition = translate_where(where, bind)
    if condition:
        conditions.append(f"({condition})")
    order = order_by_adql(order_by)
    for tiebreak in ("lsst_visit", "lsst_detector"):
        if not any(o.split()[0] == tiebreak for o in order):
            order.append(tiebreak)
    top = ""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer or None, not {limit!r}")
        top = f"TOP {int(limit)} "
    return (f"SELECT {top}{', '.join(RESULT_COLUMNS)} FROM {OBSCORE} WHERE "
            + " AND ".join(conditions) + " ORDER BY " + ", ".join(order))
