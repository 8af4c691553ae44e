"""The typed syntax tree of an ADQL 2.1 query: frozen dataclasses built by parser.py.

Every node carries the 1-based ``line`` and ``column`` where it starts (keyword-only, ignored by
equality), so later stages can point at the spot in error messages. Names keep whether they were
delimited: regular identifiers compare case-insensitively, delimited ones exactly (ADQL 2.1 §2.1.4).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "Between", "BinaryOp", "BoolOp", "CTE", "Case", "Cast", "ColumnRef", "Comparison", "Condition",
    "DerivedTable", "Exists", "Expr", "FromItem", "FunctionCall", "GeometryCall", "InList",
    "InSubquery", "IsNull", "Join", "Like", "Literal", "Name", "Node", "Not", "OrderItem", "Query",
    "QueryExpr", "ScalarSubquery", "Select", "SelectItem", "SetOp", "StarItem", "Subquery",
    "TableRef", "Unary", "annotate", "children", "syntax_fields", "walk",
]


#: Marks an annotation slot: a field the checker and the planner fill on the tree itself, ignored
#: by equality, repr and walks (a rewrite pass that replaces a node with ``dataclasses.replace``
#: carries its annotations along).
NOTE = {"note": True}


def annotate(node: Node, **values: Any) -> None:
    """Set annotation slots of a (frozen) node. Trees are built per query, so this never
    touches a tree another query shares."""
    for key, value in values.items():
        object.__setattr__(node, key, value)


@dataclass(frozen=True)
class Node:
    line: int = field(default=0, kw_only=True, compare=False, repr=False)
    column: int = field(default=0, kw_only=True, compare=False, repr=False)
    #: the ADQL type (check.EType) of an expression, once checked
    etype: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)


@dataclass(frozen=True)
class Name(Node):
    """An identifier as written: ``text`` without quotes, ``delimited`` when it was "quoted"."""

    text: str
    delimited: bool = False

    def matches(self, name: str) -> bool:
        return self.text == name if self.delimited else self.text.lower() == name.lower()

    @property
    def key(self) -> str:
        """A form for dictionaries of user-defined names (aliases, CTE names)."""
        return self.text if self.delimited else self.text.lower()

    def __str__(self) -> str:
        return '"' + self.text.replace('"', '""') + '"' if self.delimited else self.text


def dotted(parts: tuple[Name, ...]) -> str:
    return ".".join(str(p) for p in parts)


# ---------------------------------------------------------------- value expressions

@dataclass(frozen=True)
class Literal(Node):
    """``kind``: integer, real, string, hex or null; ``text`` is the literal as written."""

    value: Any
    kind: str
    text: str = ""


@dataclass(frozen=True)
class ColumnRef(Node):
    parts: tuple[Name, ...]

    @property
    def name(self) -> Name:
        return self.parts[-1]

    @property
    def qualifier(self) -> tuple[Name, ...]:
        return self.parts[:-1]

    def __str__(self) -> str:
        return dotted(self.parts)

    #: the check.ScopeCol the name resolves to
    bound: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class Unary(Node):
    op: str  # '-', '+', '~'
    operand: Expr


@dataclass(frozen=True)
class BinaryOp(Node):
    op: str  # + - * / || & | ^
    left: Expr
    right: Expr


@dataclass(frozen=True)
class FunctionCall(Node):
    """Math, trigonometric, aggregate, string, COALESCE, IN_UNIT and user-defined functions.

    ``name`` is upper case for ADQL functions and as written (lower-cased) for UDFs; ``star`` marks
    COUNT(*); ``quantifier`` is DISTINCT or ALL inside an aggregate.
    """

    name: str
    args: tuple[Expr, ...] = ()
    quantifier: str | None = None
    star: bool = False
    udf: bool = False

    #: IN_UNIT: the conversion factor to the requested unit
    factor: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class GeometryCall(Node):
    """POINT, CIRCLE, BOX, POLYGON, REGION, CENTROID, AREA, COORD1, COORD2, COORDSYS, DISTANCE,
    CONTAINS, INTERSECTS; ``coordsys`` is the optional first string (or NULL) of the constructors."""

    name: str
    args: tuple[Expr, ...]
    coordsys: Expr | None = None


@dataclass(frozen=True)
class Cast(Node):
    operand: Expr
    target: str  # SMALLINT INTEGER BIGINT REAL DOUBLE PRECISION CHAR VARCHAR TIMESTAMP POINT CIRCLE POLYGON
    length: int | None = None


@dataclass(frozen=True)
class Case(Node):
    """Simple CASE (``operand`` set, ``whens`` of values) or searched CASE (``whens`` of conditions)."""

    operand: Expr | None
    whens: tuple[tuple[Expr | Condition, Expr], ...]
    else_: Expr | None = None


@dataclass(frozen=True)
class ScalarSubquery(Node):
    query: QueryExpr


Subquery = ScalarSubquery

Expr = Literal | ColumnRef | Unary | BinaryOp | FunctionCall | GeometryCall | Cast | Case | ScalarSubquery


# ---------------------------------------------------------------- conditions

@dataclass(frozen=True)
class Comparison(Node):
    op: str  # = <> < > <= >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # AND, OR
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Not(Node):
    operand: Condition


@dataclass(frozen=True)
class Between(Node):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class InList(Node):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class InSubquery(Node):
    operand: Expr
    query: QueryExpr
    negated: bool = False


@dataclass(frozen=True)
class Like(Node):
    operand: Expr
    pattern: Expr
    negated: bool = False
    case_insensitive: bool = False  # ILIKE


@dataclass(frozen=True)
class IsNull(Node):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class Exists(Node):
    query: QueryExpr


Condition = Comparison | BoolOp | Not | Between | InList | InSubquery | Like | IsNull | Exists


# ---------------------------------------------------------------- FROM

@dataclass(frozen=True)
class TableRef(Node):
    parts: tuple[Name, ...]  # [catalog.][schema.]table
    alias: Name | None = None

    def __str__(self) -> str:
        return dotted(self.parts)

    #: the check.Source this relation is
    source: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)
    #: a partitioned table: the files the planner keeps for this query
    files: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class DerivedTable(Node):
    query: QueryExpr
    alias: Name

    source: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class Join(Node):
    left: FromItem
    right: FromItem
    kind: str = "INNER"  # INNER LEFT RIGHT FULL
    natural: bool = False
    condition: Condition | None = None
    using: tuple[Name, ...] | None = None

    #: USING/NATURAL columns: (lower-case name, merged check.ScopeCol) pairs
    merged: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

FromItem = TableRef | DerivedTable | Join


# ---------------------------------------------------------------- queries

@dataclass(frozen=True)
class SelectItem(Node):
    expr: Expr
    alias: Name | None = None


@dataclass(frozen=True)
class StarItem(Node):
    """``*`` (no qualifier) or ``qualifier.*``."""

    qualifier: tuple[Name, ...] | None = None

    #: the check.ScopeCol list it stands for
    expanded: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class OrderItem(Node):
    expr: Expr
    descending: bool = False
    position: int | None = None  # ORDER BY 2: the 1-based select-list position

    #: ("position", k) or ("output", name) when it sorts by an output column
    target: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class Select(Node):
    items: tuple[SelectItem | StarItem, ...]
    from_: tuple[FromItem, ...]
    quantifier: str | None = None  # DISTINCT or ALL
    top: int | None = None
    where: Condition | None = None
    group_by: tuple[Expr, ...] = ()
    having: Condition | None = None

    #: its output columns (check.OutCol), and what each GROUP BY term groups by
    outputs: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)
    group_targets: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class SetOp(Node):
    op: str  # UNION EXCEPT INTERSECT
    left: Select | SetOp | QueryExpr
    right: Select | SetOp | QueryExpr
    all: bool = False


@dataclass(frozen=True)
class QueryExpr(Node):
    """A <select_expression>: a SELECT or set operation with its ORDER BY and OFFSET."""

    body: Select | SetOp | QueryExpr
    order_by: tuple[OrderItem, ...] = ()
    offset: int | None = None


@dataclass(frozen=True)
class CTE(Node):
    name: Name
    query: QueryExpr

    source: Any = field(default=None, kw_only=True, compare=False, repr=False, metadata=NOTE)

@dataclass(frozen=True)
class Query(Node):
    """A whole query: WITH list and body."""

    body: QueryExpr
    ctes: tuple[CTE, ...] = ()


_SYNTAX_FIELDS: dict[type, tuple[str, ...]] = {}


def syntax_fields(cls: type) -> tuple[str, ...]:
    """The fields of a node class that hold what was written (no positions, no annotations)."""
    names = _SYNTAX_FIELDS.get(cls)
    if names is None:  # a cache of a pure function of the (fixed) node classes
        names = tuple(f.name for f in fields(cls) if f.name not in ("line", "column") and not f.metadata.get("note"))
        _SYNTAX_FIELDS[cls] = names
    return names


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes, in field order (tuples and (when, then) pairs are flattened)."""
    for name in syntax_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item
                elif isinstance(item, tuple):
                    yield from (x for x in item if isinstance(x, Node))


def walk(node: Node, *, into_subqueries: bool = True) -> Iterator[Node]:
    """Depth-first pre-order over ``node`` and its descendants."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if not into_subqueries and current is not node and isinstance(current, QueryExpr):
            continue
        stack.extend(reversed(list(children(current))))
