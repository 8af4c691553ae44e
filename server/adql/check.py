"""The checking pass: resolve every name of a parsed query against the data model, type every
expression, expand ``*`` from the model and describe the output columns.

``check(query, model, uploads=None)`` returns a :class:`Checked`: the query with its nodes
annotated (nodes.py's annotation slots) and the output columns. Hidden storage columns (``_healpix``) are never in
scope: ``*`` comes from the model, not from the database.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, overload

from . import nodes as n
from .errors import ADQLError
from .functions import AGGREGATES, CATALOGUE, UDFS
from .units import arithmetic, common

__all__ = ["Checked", "EType", "OutCol", "ScopeCol", "check", "UPLOAD_SCHEMA", "METADATA_SCHEMA"]

UPLOAD_SCHEMA = "TAP_UPLOAD"

INTEGERS = ("SMALLINT", "INTEGER", "BIGINT")
NUMERIC_ORDER = ("SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE")
GEOMETRIES = ("POINT", "CIRCLE", "POLYGON", "REGION")
_FELIS_KIND = {
    "boolean": "BOOLEAN", "byte": "SMALLINT", "short": "SMALLINT", "int": "INTEGER", "long": "BIGINT",
    "float": "REAL", "double": "DOUBLE", "char": "VARCHAR", "string": "VARCHAR", "unicode": "VARCHAR",
    "text": "VARCHAR", "binary": "BINARY", "timestamp": "TIMESTAMP",
}
_VOTABLE = {  # ADQL type → (datatype, arraysize, xtype)
    "SMALLINT": ("short", None, None), "INTEGER": ("int", None, None), "BIGINT": ("long", None, None),
    "REAL": ("float", None, None), "DOUBLE": ("double", None, None), "VARCHAR": ("char", "*", None),
    "TIMESTAMP": ("char", "*", "timestamp"), "BOOLEAN": ("boolean", None, None),
    "BINARY": ("unsignedByte", "*", None), "POINT": ("double", "2", "point"),
    "CIRCLE": ("double", "3", "circle"), "POLYGON": ("double", "*", "polygon"),
    "REGION": ("double", "*", None), "ARRAY": ("double", "*", None), "NULL": ("char", "*", None),
    "UNKNOWN": ("char", "*", None),
}


METADATA_SCHEMA = "TAP_SCHEMA"


@dataclass(frozen=True)
class EType:
    """The ADQL type of an expression, with the unit and UCD it carries when known."""

    kind: str
    unit: str | None = None
    ucd: str | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_ORDER

    @property
    def geometry(self) -> bool:
        return self.kind in GEOMETRIES

    @property
    def loose(self) -> bool:  # NULL or unknown: compatible with anything
        return self.kind in ("NULL", "UNKNOWN")


@dataclass
class ScopeCol:
    """A column that a name can resolve to: its ADQL name, where it is read, type and metadata.

    ``source`` is the (unquoted) alias of the relation it is read from and ``field`` its name
    there; a column merged by a FULL JOIN's USING/NATURAL reads either side (``merge``). The SQL
    emitter turns these into its dialect's text; the checker writes no SQL.
    """

    name: str
    source: str | None
    field: str
    etype: EType
    meta: dict
    table: str | None = None  # qualified model table of a plain stored column
    column: str | None = None
    stored_region: bool = False  # an STC-S string column (xtype adql:REGION)
    merge: tuple[ScopeCol, ScopeCol] | None = None


@dataclass
class OutCol:
    name: str
    etype: EType
    meta: dict
    key: str  # for ORDER BY / GROUP BY by alias (lower case unless delimited)
    item: object = None  # the SelectItem or None


@dataclass
class Source:
    """A relation in FROM: ``sql_alias`` (unquoted, unique in the query) and ``relation``, what
    it reads: ("table", schema, name), ("upload", name), ("metadata", name), ("cte", alias) or
    ("derived",) for a subquery."""

    alias: n.Name | None
    table_name: str
    schema_name: str | None
    sql_alias: str
    relation: tuple[str, ...]
    columns: list[ScopeCol]
    qualified: str | None = None  # model table, for the spatial fast path
    query: n.QueryExpr | None = None  # derived table or CTE body (None for stored tables)
    cte: bool = False

    def matches(self, qual: tuple[n.Name, ...]) -> bool:
        if self.alias is not None:
            return len(qual) == 1 and _name_eq(qual[0], self.alias)
        if not qual[-1].matches(self.table_name):
            return False
        if len(qual) >= 2:
            return self.schema_name is not None and qual[-2].matches(self.schema_name)
        return True

    @property
    def label(self) -> str:
        if self.alias is not None:
            return str(self.alias)
        return f"{self.schema_name}.{self.table_name}" if self.schema_name else self.table_name


def _name_eq(a: n.Name, b: n.Name) -> bool:
    if a.delimited or b.delimited:
        return a.text == b.text
    return a.text.lower() == b.text.lower()


@dataclass
class Scope:
    parent: Scope | None
    sources: list[Source] = field(default_factory=list)
    merged: dict[str, ScopeCol] = field(default_factory=dict)  # USING / NATURAL columns
    ctes: dict[str, Source] = field(default_factory=dict)


@dataclass
class Checked:
    """A checked query: the tree, annotated in place (types, bound columns, sources, outputs;
    see nodes.py), and the output columns' metadata."""

    query: n.Query
    columns: list[dict]  # output column metadata, in order
    outputs: list[OutCol]


def _suggest(name: str, candidates) -> str | None:
    names = sorted(set(candidates))
    lower = {c.lower(): c for c in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    return f"did you mean {', '.join(lower[c] for c in close)}?" if close else None


def _err(node, message, code, hint=None) -> ADQLError:
    return ADQLError(message, getattr(node, "line", 0), getattr(node, "column", 0), hint, code)


@lru_cache(maxsize=4096)
def _column_meta(col) -> dict:
    return column_meta(col)


@lru_cache(maxsize=4096)
def _column_type(col) -> EType:
    return column_type(col)


def column_meta(col, name: str | None = None) -> dict:
    attrs = col.votable_attrs()
    return {
        "name": name or col.name,
        "datatype": attrs.get("datatype"),
        "arraysize": attrs.get("arraysize"),
        "unit": attrs.get("unit"),
        "ucd": attrs.get("ucd"),
        "utype": attrs.get("utype"),
        "xtype": attrs.get("xtype"),
        "description": attrs.get("description") or None,
    }


def type_meta(etype: EType, name: str, description: str | None = None) -> dict:
    datatype, arraysize, xtype = _VOTABLE.get(etype.kind, ("char", "*", None))
    return {"name": name, "datatype": datatype, "arraysize": arraysize, "unit": etype.unit,
            "ucd": etype.ucd, "utype": None, "xtype": xtype, "description": description}


def column_type(col) -> EType:
    xtype = (col.xtype or "").lower()
    if xtype in ("adql:region", "region") and col.datatype in ("char", "string", "unicode", "text"):
        return EType("REGION", col.unit, col.ucd)
    if xtype in ("point", "circle", "polygon") and col.datatype in ("double", "float"):
        return EType(xtype.upper(), col.unit, col.ucd)
    size = getattr(col, "arraysize", None)
    if size and col.datatype not in ("char", "string", "unicode", "text", "binary", "timestamp"):
        return EType("ARRAY", col.unit, col.ucd)  # a numeric vector (uploads): select it, test IS NULL
    return EType(_FELIS_KIND[col.datatype], col.unit, col.ucd)


def _promote(a: EType, b: EType) -> str:
    kinds = [k for k in (a.kind, b.kind) if k in NUMERIC_ORDER]
    if not kinds:
        return "DOUBLE"
    return max(kinds, key=NUMERIC_ORDER.index)


class _Checker:
    def __init__(self, model, uploads: Mapping[str, Any] | None) -> None:
        self.model = model
        self.uploads = {k.lower(): v for k, v in (uploads or {}).items()}
        self.aliases_used: set[str] = set()
        self._out: Checked | None = None

    @property
    def out(self) -> Checked:
        """What the running check has found so far (only inside query())."""
        assert self._out is not None
        return self._out

    # ---------------------------------------------------------------- helpers
    def sql_alias(self, wanted: str) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in wanted) or "t"
        alias, i = base, 1
        while alias.lower() in self.aliases_used:
            i += 1
            alias = f"{base}_{i}"
        self.aliases_used.add(alias.lower())
        return alias

    # ---------------------------------------------------------------- queries
    def query(self, q: n.Query) -> Checked:
        self._out = Checked(q, [], [])
        root = Scope(None)
        for cte in q.ctes:
            cte_scope = Scope(None, ctes=dict(root.ctes))
            outs = self.query_expr(cte.query, cte_scope, top_level=True)
            alias = self.sql_alias(cte.name.text)
            src = Source(cte.name, cte.name.text, None, alias, ("cte", alias),
                         [ScopeCol(o.name, None, o.name, o.etype, o.meta) for o in outs], query=cte.query, cte=True)
            root.ctes[cte.name.key] = src
            n.annotate(cte, source=src)
        outs = self.query_expr(q.body, root, top_level=True)
        self.out.outputs = outs
        self.out.columns = [o.meta for o in outs]
        return self.out

    def query_expr(self, qe, scope: Scope, top_level: bool = False) -> list[OutCol]:
        """``scope`` is the enclosing scope (correlation, CTEs); a new one is made per SELECT."""
        if isinstance(qe, n.Select):
            return self.select(qe, scope, ())
        if isinstance(qe, n.SetOp):
            left = self.query_expr(qe.left, scope)
            right = self.query_expr(qe.right, scope)
            if len(left) != len(right):
                raise _err(qe, f"the operands of {qe.op} have {len(left)} and {len(right)} columns", "type")
            for a, b in zip(left, right, strict=False):
                if not (a.etype.loose or b.etype.loose) and a.etype.numeric != b.etype.numeric:
                    raise _err(qe, f"{qe.op} combines columns {a.name} and {b.name} of different types", "type")
            return left
        # QueryExpr
        if isinstance(qe.body, n.Select):
            outs = self.select(qe.body, scope, qe.order_by)
        else:
            outs = self.query_expr(qe.body, scope)
            for item in qe.order_by:
                self.order_by_output(item, outs, required=True)
        return outs

    def order_by_output(self, item: n.OrderItem, outs: list[OutCol], required: bool) -> bool:
        if item.position is not None:
            if not 1 <= item.position <= len(outs):
                raise _err(item, f"ORDER BY position {item.position} is not in the select list "
                                 f"(1 to {len(outs)})", "type")
            n.annotate(item, target=("position", item.position))
            return True
        expr = item.expr
        if isinstance(expr, n.ColumnRef) and len(expr.parts) == 1:
            for o in outs:
                if expr.name.matches(o.name) or (o.key and expr.name.key == o.key):
                    n.annotate(item, target=("output", o.name))
                    return True
        if required:
            raise _err(item, f"ORDER BY {expr if isinstance(expr, n.ColumnRef) else 'expression'} after a "
                             "set operation must name an output column or give its position", "unknown-column",
                       _suggest(str(expr), [o.name for o in outs]) if isinstance(expr, n.ColumnRef) else None)
        return False

    def select(self, sel: n.Select, outer: Scope, order_by) -> list[OutCol]:
        scope = Scope(outer, ctes=outer.ctes if outer else {})
        for from_item in sel.from_:
            self.from_item(from_item, scope, outer)
        outs: list[OutCol] = []
        for item in sel.items:
            if isinstance(item, n.StarItem):
                cols = self.star(item, scope, sel)
                n.annotate(item, expanded=cols)
                for c in cols:
                    outs.append(OutCol(c.name, c.etype, dict(c.meta), c.name.lower(), item))
            else:
                et = self.expr(item.expr, scope)
                if item.alias is not None:
                    name, key = item.alias.text, item.alias.key
                    meta = self.expr_meta(item.expr, et, name)
                elif isinstance(item.expr, n.ColumnRef):
                    col = item.expr.bound
                    name, key = col.name, col.name.lower()
                    meta = dict(col.meta)
                else:
                    name = _generated_name(item.expr, len(outs) + 1)
                    key = ""
                    meta = self.expr_meta(item.expr, et, name)
                outs.append(OutCol(name, et, meta, key, item))
        _dedupe(outs)
        n.annotate(sel, outputs=outs)
        if sel.where is not None:
            self.cond(sel.where, scope)
        targets: list[tuple[str, Any] | None] = []
        for g in sel.group_by:
            targets.append(self.group_term(g, outs, scope))
        n.annotate(sel, group_targets=tuple(targets))
        self.check_grouping(sel, scope)
        if sel.having is not None:
            self.cond(sel.having, scope)
        for item in order_by:
            if not self.order_by_output(item, outs, required=False):
                self.expr(item.expr, scope)
        return outs

    def group_term(self, g, outs: list[OutCol], scope: Scope) -> tuple[str, Any] | None:
        """What a GROUP BY term groups by: a select-list position, an output alias, or itself."""
        if isinstance(g, n.Literal) and g.kind == "integer":
            if not 1 <= g.value <= len(outs):
                raise _err(g, f"GROUP BY position {g.value} is not in the select list", "type")
            return ("position", g.value)
        if isinstance(g, n.ColumnRef) and len(g.parts) == 1 and not self.lookup(g, scope, quiet=True):
            match = [o for o in outs if o.key and g.name.key == o.key]
            if match and isinstance(match[0].item, n.SelectItem):
                return ("expr", match[0].item.expr)
        self.expr(g, scope)
        return None

    def check_grouping(self, sel: n.Select, scope: Scope) -> None:
        """In a grouped SELECT every output is a grouping expression, an aggregate, or built
        from them; say so here, at the column, rather than let the engine refuse the query."""
        items = [i for i in sel.items if isinstance(i, n.SelectItem)]
        if not sel.group_by and not any(_has_aggregate(i.expr) for i in items):
            return
        if len(items) != len(sel.items):
            star = next(i for i in sel.items if isinstance(i, n.StarItem))
            raise _err(star, "* cannot be selected in a grouped query; name the grouped columns", "type")
        grouped_cols, grouped_exprs = set(), []
        for i, g in enumerate(sel.group_by):
            target = sel.group_targets[i]
            if target is None:
                expr = g
            elif target[0] == "expr":
                expr = target[1]
            else:
                expr = sel.items[target[1] - 1].expr if isinstance(sel.items[target[1] - 1], n.SelectItem) else g
            grouped_exprs.append(_shape(expr))
            if isinstance(expr, n.ColumnRef) and expr.bound is not None:
                grouped_cols.add(id(expr.bound))
        local = {id(c) for src in scope.sources for c in src.columns} | {id(c) for c in scope.merged.values()}
        for item in items:
            if _shape(item.expr) in grouped_exprs:
                continue
            for ref in _free_columns(item.expr):
                col = ref.bound
                if col is not None and id(col) in local and id(col) not in grouped_cols:
                    raise _err(ref, f"column {ref} must appear in GROUP BY or inside an aggregate function",
                               "type", "add it to GROUP BY, or wrap it in COUNT/MIN/MAX/AVG/SUM")

    def expr_meta(self, expr, et: EType, name: str) -> dict:
        if isinstance(expr, n.ColumnRef):
            meta = dict(expr.bound.meta)
            meta["name"] = name
            return meta
        return type_meta(et, name)

    # ---------------------------------------------------------------- FROM
    def from_item(self, item, scope: Scope, outer: Scope) -> list[Source]:
        if isinstance(item, n.TableRef):
            src = self.table(item, scope)
            self.add_source(scope, src, item)
            n.annotate(item, source=src)
            return [src]
        if isinstance(item, n.DerivedTable):
            sub_outer = Scope(outer, ctes=scope.ctes) if outer else Scope(None, ctes=scope.ctes)
            outs = self.query_expr(item.query, sub_outer)
            alias = self.sql_alias(item.alias.text)
            src = Source(item.alias, item.alias.text, None, alias, ("derived",),
                         [ScopeCol(o.name, alias, o.name, o.etype, o.meta) for o in outs],
                         query=item.query)
            self.add_source(scope, src, item)
            n.annotate(item, source=src)
            return [src]
        # Join
        require_join_condition(item)
        left = self.from_item(item.left, scope, outer)
        right = self.from_item(item.right, scope, outer)
        names: list[tuple[str, n.Node]] = []
        if item.using is not None:
            names = [(u.text, u) for u in item.using]
        elif item.natural:
            lnames = {c.name.lower(): c.name for s in left for c in s.columns}
            names = [(c.name, item) for s in right for c in s.columns if c.name.lower() in lnames]
        merged = []
        for name, node in names:
            lcol = self._one_column(left, name, node, "left")
            rcol = self._one_column(right, name, node, "right")
            if item.kind == "FULL":  # either side's value, whichever row exists
                col = ScopeCol(lcol.name, None, lcol.field, lcol.etype, lcol.meta, None, lcol.column,
                               lcol.stored_region, merge=(lcol, rcol))
            else:
                side = rcol if item.kind == "RIGHT" else lcol
                col = ScopeCol(lcol.name, side.source, side.field, lcol.etype, lcol.meta, side.table,
                               side.column, side.stored_region, side.merge)
            scope.merged[name.lower()] = col
            merged.append((name.lower(), col))
        n.annotate(item, merged=merged)
        if item.condition is not None:
            self.cond(item.condition, scope)
        return left + right

    def _one_column(self, sources: list[Source], name: str, node, side: str) -> ScopeCol:
        found = [c for s in sources for c in s.columns if c.name.lower() == name.lower()]
        if not found:
            raise _err(node, f"join column {name} is not in the {side} table", "unknown-column",
                       _suggest(name, [c.name for s in sources for c in s.columns]))
        if len(found) > 1:
            raise _err(node, f"join column {name} is ambiguous in the {side} table", "ambiguous-column")
        return found[0]

    def add_source(self, scope: Scope, src: Source, node) -> None:
        for other in scope.sources:
            if src.alias is not None and other.alias is not None and _name_eq(src.alias, other.alias):
                raise _err(node, f"the correlation name {src.alias} is used twice", "type")
        scope.sources.append(src)

    def table(self, ref: n.TableRef, scope: Scope) -> Source:
        parts = ref.parts
        name = parts[-1]
        schema = parts[-2] if len(parts) >= 2 else None
        if schema is None:
            s: Scope | None = scope
            while s is not None:
                cte = next((v for k, v in s.ctes.items() if name.matches(v.table_name)), None)
                if cte is not None:
                    alias = self.sql_alias(ref.alias.text if ref.alias else cte.table_name)
                    cols = [ScopeCol(c.name, alias, c.name, c.etype, c.meta) for c in cte.columns]
                    return Source(ref.alias, cte.table_name, None, alias, cte.relation, cols, cte=True)
                s = s.parent
        if schema is not None and schema.matches(UPLOAD_SCHEMA):
            table = self.uploads.get(name.text.lower())
            if table is None or (name.delimited and table.name != name.text):
                raise _err(name, f"no uploaded table {name}", "unknown-table",
                           _suggest(name.text, [t.name for t in self.uploads.values()]))
            relation: tuple[str, ...] = ("upload", table.name)
            qualified = None
            schema_name = UPLOAD_SCHEMA
        else:
            table = self.model_table(parts, ref)
            if table.schema.upper() == METADATA_SCHEMA:
                relation = ("metadata", table.name)
            else:
                relation = ("table", table.schema, table.name)
            qualified = table.qualified_name
            schema_name = table.schema
        alias = self.sql_alias(ref.alias.text if ref.alias else table.name)
        cols = []
        for c in table.columns:
            et = _column_type(c)
            cols.append(ScopeCol(c.name, alias, c.name, et, _column_meta(c), qualified, c.name,
                                 et.kind == "REGION"))
        return Source(ref.alias, table.name, schema_name, alias, relation, cols, qualified)

    def model_table(self, parts: tuple[n.Name, ...], ref):
        name = parts[-1]
        schemas = self.model.schemas
        if len(parts) >= 2:
            sname = parts[-2]
            matching = [s for s in schemas if sname.matches(s.name)]
            if not matching:
                raise _err(sname, f"no schema {sname}", "unknown-schema",
                           _suggest(sname.text, [s.name for s in schemas] + [UPLOAD_SCHEMA]))
            candidates = [t for t in matching[0].tables]
        else:
            candidates = [t for s in schemas for t in s.tables]
        found = [t for t in candidates if name.matches(t.name)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise _err(name, f"table name {name} is ambiguous", "unknown-table",
                       "qualify it with one of the schemas " + ", ".join(t.schema for t in found))
        names = [t.name if len(parts) >= 2 else t.qualified_name for t in candidates]
        hint = _suggest(name.text, names) or (
            _suggest(name.text, [t.name for t in candidates]) if len(parts) < 2 else None)
        raise _err(name, f"no table {n.dotted(parts)}", "unknown-table", hint)

    def star(self, item: n.StarItem, scope: Scope, sel: n.Select) -> list[ScopeCol]:
        if item.qualifier is None:
            cols: list[ScopeCol] = []
            for f in sel.from_:
                cols.extend(self.expand(f))
            return cols
        matches = [s for s in scope.sources if s.matches(item.qualifier)]
        if not matches:
            raise _err(item, f"no table {n.dotted(item.qualifier)} in FROM", "unknown-table",
                       _suggest(item.qualifier[-1].text, [s.label for s in scope.sources]))
        if len(matches) > 1:
            raise _err(item, f"{n.dotted(item.qualifier)} is ambiguous", "ambiguous-column")
        return list(matches[0].columns)

    def expand(self, item) -> list[ScopeCol]:
        if isinstance(item, (n.TableRef, n.DerivedTable)):
            return list(item.source.columns)
        merged = item.merged or []
        names = {k for k, _ in merged}
        rest = [c for c in self.expand(item.left) + self.expand(item.right) if c.name.lower() not in names]
        return [c for _, c in merged] + rest

    # ---------------------------------------------------------------- names
    @overload
    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: Literal[False] = False) -> ScopeCol: ...
    @overload
    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: bool) -> ScopeCol | None: ...

    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: bool = False) -> ScopeCol | None:
        qual, name = ref.qualifier, ref.name
        s: Scope | None = scope
        qual_seen = False
        while s is not None:
            if qual:
                srcs = [src for src in s.sources if src.matches(qual)]
                if len(srcs) > 1:
                    raise _err(ref, f"{n.dotted(qual)} is ambiguous", "ambiguous-column")
                if srcs:
                    qual_seen = True
                    cols = [c for c in srcs[0].columns if name.matches(c.name)]
                    if cols:
                        return cols[0]
                    if quiet:
                        return None
                    raise _err(name, f"no column {name} in {srcs[0].label}", "unknown-column",
                               _suggest(name.text, [c.name for c in srcs[0].columns]))
            else:
                if name.key in s.merged or (not name.delimited and name.text.lower() in s.merged):
                    return s.merged[name.text.lower()]
                found = [c for src in s.sources for c in src.columns if name.matches(c.name)]
                if len(found) > 1:
                    raise _err(ref, f"column {name} is ambiguous", "ambiguous-column",
                               "qualify it with one of " + ", ".join(
                                   src.label for src in s.sources if any(name.matches(c.name) for c in src.columns)))
                if found:
                    return found[0]
            s = s.parent
        if quiet:
            return None
        if qual and not qual_seen:
            labels = [src.label for src in scope.sources]
            raise _err(ref, f"no table {n.dotted(qual)} in FROM", "unknown-table",
                       _suggest(qual[-1].text, labels + [src.table_name for src in scope.sources]))
        raise _err(name, f"no column {name}", "unknown-column",
                   _suggest(name.text, [c.name for src in scope.sources for c in src.columns]))

    # ---------------------------------------------------------------- expressions
    def expr(self, e, scope: Scope) -> EType:
        et = self._expr(e, scope)
        n.annotate(e, etype=et)
        return et

    def _expr(self, e, scope: Scope) -> EType:
        if isinstance(e, n.Literal):
            if e.kind == "integer":
                return EType("INTEGER" if -2**31 <= e.value < 2**31 else "BIGINT")
            return EType({"real": "DOUBLE", "string": "VARCHAR", "hex": "BIGINT", "null": "NULL"}[e.kind])
        if isinstance(e, n.ColumnRef):
            col = self.lookup(e, scope)
            n.annotate(e, bound=col)
            return col.etype
        if isinstance(e, n.Unary):
            et = self.expr(e.operand, scope)
            if e.op == "~":
                self.need(e.operand, et, "integer", "~")
                return EType(et.kind if et.kind in INTEGERS else "BIGINT")
            self.need(e.operand, et, "numeric", e.op)
            return EType(et.kind, et.unit)  # a negated quantity keeps its unit, not its UCD
        if isinstance(e, n.BinaryOp):
            a, b = self.expr(e.left, scope), self.expr(e.right, scope)
            if e.op == "||":
                for side, t in ((e.left, a), (e.right, b)):
                    if t.geometry:
                        raise _err(side, "|| needs strings or numbers, not a geometry", "type")
                return EType("VARCHAR")
            if e.op in "&|^":
                self.need(e.left, a, "integer", e.op)
                self.need(e.right, b, "integer", e.op)
                return EType(_promote(a, b))
            self.need(e.left, a, "numeric", e.op)
            self.need(e.right, b, "numeric", e.op)
            unit = arithmetic(e.op, a.unit, b.unit, _is_literal(e.left), _is_literal(e.right))
            return EType(_promote(a, b), unit)
        if isinstance(e, n.FunctionCall):
            return self.function(e, scope)
        if isinstance(e, n.GeometryCall):
            return self.geometry(e, scope)
        if isinstance(e, n.Cast):
            et = self.expr(e.operand, scope)
            target = e.target
            if target in ("POINT", "CIRCLE", "POLYGON") and et.kind not in ("VARCHAR", "NULL", target, "REGION"):
                raise _err(e, f"cannot CAST a {et.kind} to {target}", "type")
            kind = {"CHAR": "VARCHAR", "VARCHAR": "VARCHAR", "DOUBLE PRECISION": "DOUBLE"}.get(target, target)
            return EType(kind, et.unit if kind in NUMERIC_ORDER and et.numeric else None)
        if isinstance(e, n.Case):
            if e.operand is not None:
                self.expr(e.operand, scope)
            result = EType("NULL")
            branches = []
            for when, then in e.whens:
                if e.operand is not None:
                    self.expr(when, scope)
                else:
                    self.cond(when, scope)
                branches.append(self.expr(then, scope))
            if e.else_ is not None:
                branches.append(self.expr(e.else_, scope))
            for t in branches:
                if result.loose:
                    result = t
            if result.loose:
                return result
            return EType(result.kind, common([t.unit for t in branches if not t.loose]))
        if isinstance(e, n.ScalarSubquery):
            outs = self.query_expr(e.query, scope)
            if len(outs) != 1:
                raise _err(e, f"a subquery used as a value must return one column, not {len(outs)}", "type")
            if outs[0].etype.geometry:  # its DALI/STC-S output cannot be turned back into a geometry
                raise _err(e, "a subquery used as a value cannot return a geometry", "unsupported")
            return outs[0].etype
        raise _err(e, f"unexpected expression {type(e).__name__}", "unsupported")

    def need(self, node, et: EType, kind: str, what: str) -> None:
        if et.loose:
            return
        ok = {"numeric": et.numeric, "integer": et.kind in INTEGERS, "string": et.kind == "VARCHAR",
              "geometry": et.geometry, "point": et.kind in ("POINT",), "any": not et.geometry or True}[kind]
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            raise _err(node, f"{what} needs {article} {kind} argument, not {et.kind}", "type")

    def function(self, e: n.FunctionCall, scope: Scope) -> EType:
        if e.udf:
            spec = UDFS.get(e.name)
            if spec is None:
                raise _err(e, f"unknown function {e.name}", "unknown-function", _suggest(e.name, list(UDFS)))
        else:
            spec = CATALOGUE[e.name]
        if e.star:
            return EType("BIGINT")
        nargs = len(e.args)
        if nargs < spec.min_args or (spec.max_args is not None and nargs > spec.max_args):
            expected = (f"{spec.min_args}" if spec.max_args == spec.min_args else
                        f"{spec.min_args} or more" if spec.max_args is None else f"{spec.min_args} to {spec.max_args}")
            raise _err(e, f"{e.name} takes {expected} arguments, not {nargs}", "arguments")
        types = []
        for i, arg in enumerate(e.args):
            t = self.expr(arg, scope)
            kind = spec.args[min(i, len(spec.args) - 1)]
            if e.name == "IN_UNIT" and i == 1:
                continue
            self.need(arg, t, kind, e.name)
            types.append(t)
        if e.name in AGGREGATES:
            for arg in e.args:
                for sub in n.walk(arg, into_subqueries=False):
                    if isinstance(sub, n.FunctionCall) and sub.name in AGGREGATES and sub is not e:
                        raise _err(sub, "aggregate functions cannot be nested", "type")
        first = types[0] if types else EType("NULL")
        name = e.name
        if name == "IN_UNIT":
            return self.in_unit(e, first)
        if name == "COALESCE":
            known = [t for t in types if not t.loose]
            return EType(known[0].kind, common([t.unit for t in known])) if known else first
        if name in ("MIN", "MAX"):  # the argument's unit; its UCD names the value, not an extreme
            return EType(first.kind, first.unit)
        if name == "ABS":
            return EType(first.kind if first.numeric else "DOUBLE", first.unit)
        if name == "SUM":
            return EType("BIGINT" if first.kind in INTEGERS else "DOUBLE", first.unit)
        if name == "AVG":
            return EType("DOUBLE", first.unit)
        if name == "MOD":
            return EType(_promote(types[0], types[1]), first.unit)
        if name in ("ROUND", "TRUNCATE", "CEILING", "FLOOR"):
            return EType("DOUBLE", first.unit)
        if name == "DEGREES":
            return EType("DOUBLE", "deg")
        if name == "RADIANS":
            return EType("DOUBLE", "rad")
        return EType(spec.returns if spec.returns not in ("same", "numeric", "sum") else "DOUBLE")

    def in_unit(self, e: n.FunctionCall, et: EType) -> EType:
        import astropy.units as u

        target = e.args[1].value if isinstance(e.args[1], n.Literal) else None
        try:
            dest = u.Unit(target, format="vounit")
        except Exception:
            try:
                dest = u.Unit(target)
            except Exception:
                raise _err(e.args[1], f"unknown unit {target!r}", "unit") from None
        if et.unit is None:
            raise _err(e.args[0], "IN_UNIT needs a value whose unit is known (a column with a unit, "
                                  "or an expression of one)", "unit")
        try:
            src = u.Unit(et.unit, format="vounit")
        except Exception:
            try:
                src = u.Unit(et.unit)
            except Exception:
                raise _err(e.args[0], f"the unit {et.unit!r} of the value is not understood", "unit") from None
        try:
            factor = float(src.to(dest))
        except u.UnitConversionError:
            raise _err(e, f"cannot convert {et.unit} to {target}", "unit") from None
        n.annotate(e, factor=factor)
        return EType("DOUBLE", target)

    def geometry(self, e: n.GeometryCall, scope: Scope) -> EType:
        if e.coordsys is not None:
            self.expr(e.coordsys, scope)
        types = [self.expr(a, scope) for a in e.args]
        name = e.name
        if name == "POINT":
            for a, t in zip(e.args, types, strict=False):
                self.need(a, t, "numeric", name)
            return EType("POINT")
        if name in ("CIRCLE", "BOX"):
            centre_point = len(e.args) == (2 if name == "CIRCLE" else 3)
            for i, (a, t) in enumerate(zip(e.args, types, strict=False)):
                self.need(a, t, "point" if centre_point and i == 0 else "numeric", name)
            return EType("CIRCLE" if name == "CIRCLE" else "POLYGON")
        if name == "POLYGON":
            numeric = len(e.args) >= 6 and len(e.args) % 2 == 0 and all(t.numeric or t.loose for t in types)
            for a, t in zip(e.args, types, strict=False):
                self.need(a, t, "numeric" if numeric else "point", name)
            return EType("POLYGON")
        if name == "REGION":
            return EType("REGION")
        if name in ("CENTROID", "AREA", "COORDSYS"):
            self.need(e.args[0], types[0], "geometry", name)
            return {"CENTROID": EType("POINT"), "AREA": EType("DOUBLE", "deg**2"),
                    "COORDSYS": EType("VARCHAR")}[name]
        if name in ("COORD1", "COORD2"):
            self.need(e.args[0], types[0], "point", name)
            return EType("DOUBLE", "deg")
        if name == "DISTANCE":
            kind = "point" if len(e.args) == 2 else "numeric"
            for a, t in zip(e.args, types, strict=False):
                self.need(a, t, kind, name)
            return EType("DOUBLE", "deg")
        if name in ("CONTAINS", "INTERSECTS"):
            for a, t in zip(e.args, types, strict=False):
                self.need(a, t, "geometry", name)
            return EType("INTEGER")
        raise _err(e, f"unknown geometry function {name}", "unknown-function")

    # ---------------------------------------------------------------- conditions
    def cond(self, c, scope: Scope) -> None:
        if isinstance(c, n.BoolOp):
            self.cond(c.left, scope)
            self.cond(c.right, scope)
        elif isinstance(c, n.Not):
            self.cond(c.operand, scope)
        elif isinstance(c, n.Comparison):
            a, b = self.expr(c.left, scope), self.expr(c.right, scope)
            self.comparable(c, a, b)
        elif isinstance(c, n.Between):
            a = self.expr(c.operand, scope)
            for x in (c.low, c.high):
                self.comparable(c, a, self.expr(x, scope))
        elif isinstance(c, n.InList):
            a = self.expr(c.operand, scope)
            for x in c.items:
                self.comparable(x, a, self.expr(x, scope))
        elif isinstance(c, n.InSubquery):
            a = self.expr(c.operand, scope)
            outs = self.query_expr(c.query, scope)
            if len(outs) != 1:
                raise _err(c, f"the subquery of IN must return one column, not {len(outs)}", "type")
            self.comparable(c, a, outs[0].etype)
        elif isinstance(c, n.Like):
            for x in (c.operand, c.pattern):
                t = self.expr(x, scope)
                self.need(x, t, "string", "ILIKE" if c.case_insensitive else "LIKE")
        elif isinstance(c, n.IsNull):
            self.expr(c.operand, scope)
        elif isinstance(c, n.Exists):
            self.query_expr(c.query, scope)
        else:
            raise _err(c, f"unexpected condition {type(c).__name__}", "unsupported")

    def comparable(self, node, a: EType, b: EType) -> None:
        if a.loose or b.loose:
            return
        groups = [("num" if t.numeric else "str" if t.kind == "VARCHAR" else "time" if t.kind == "TIMESTAMP"
                   else "geo" if t.geometry else t.kind) for t in (a, b)]
        if set(groups) == {"str", "time"}:
            return  # timestamps compare with ISO strings
        if set(groups) == {"BOOLEAN", "num"}:
            return  # ADQL has no boolean literal: uploaded booleans compare with 0 and 1
        if groups[0] != groups[1]:
            raise _err(node, f"cannot compare {a.kind} with {b.kind}", "type")


def _is_aggregate(node) -> bool:
    return isinstance(node, n.FunctionCall) and node.name in AGGREGATES


def _has_aggregate(node) -> bool:
    return any(_is_aggregate(x) for x in n.walk(node, into_subqueries=False))


def _free_columns(node):
    """Column references outside aggregates and subqueries."""
    if isinstance(node, n.ColumnRef):
        yield node
        return
    if _is_aggregate(node) or isinstance(node, n.QueryExpr):
        return
    for child in n.children(node):
        yield from _free_columns(child)


def _shape(node):
    """A node's structure without source positions, to compare expressions as written."""
    if isinstance(node, n.Name):
        return ("name", node.key)
    if isinstance(node, n.Node):
        return (type(node).__name__,) + tuple(_shape(getattr(node, f)) for f in n.syntax_fields(type(node)))
    if isinstance(node, tuple):
        return tuple(_shape(x) for x in node)
    return node


JOIN_WITHOUT_CONDITION = ("a JOIN needs ON <condition> or USING (<columns>) (SQL-92; the ADQL 2.1 grammar "
                          "leaves it out); for every pair of rows write FROM a, b")


def require_join_condition(join: n.Join) -> None:
    """The check-stage rule the BNF leaves to SQL-92: only a NATURAL join may omit ON/USING."""
    if not join.natural and join.condition is None and join.using is None:
        raise _err(join, JOIN_WITHOUT_CONDITION, "type")


def _is_literal(e) -> bool:
    """A number as written, signed or not: multiplying by one is scaling."""
    while isinstance(e, n.Unary):
        e = e.operand
    return isinstance(e, n.Literal)


def _generated_name(expr, position: int) -> str:
    """An unnamed function's output is named after it (``count``, ``avg``; _dedupe adds suffixes
    only on a clash); other unnamed expressions are ``col<position>``."""
    if isinstance(expr, (n.FunctionCall, n.GeometryCall)):
        return expr.name.lower()
    return f"col{position}"


def _dedupe(outs: list[OutCol]) -> None:
    seen: set[str] = set()
    for o in outs:
        base, name, i = o.name, o.name, 1
        while name.lower() in seen:
            i += 1
            name = f"{base}_{i}"
        seen.add(name.lower())
        if name != o.name:
            o.name = name
            o.meta = dict(o.meta, name=name)


def check(query: n.Query, model, uploads: Mapping[str, object] | None = None) -> Checked:
    """Check ``query`` against ``model`` (and ``uploads``: TAP_UPLOAD name → model.Table)."""
    try:
        return _Checker(model, uploads).query(query)
    except RecursionError:
        raise ADQLError("the query is nested too deeply", code="limit") from None
