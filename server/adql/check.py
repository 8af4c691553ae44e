"""The checking pass: resolve every name of a parsed query against the data model, type every
expression, expand ``*`` from the model and describe the output columns.

``check(query, model, uploads=None)`` returns a :class:`Checked`: the query with its nodes
annotated (nodes.py's annotation slots) and the output columns. Hidden storage columns
(``_healpix``) are never in scope: ``*`` comes from the model, not from the database. Names and
relations are in scope.py, types in datatypes.py, expressions in expressions.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from . import nodes as n
from .datatypes import EType, model_column_meta, model_column_type, type_meta
from .errors import ADQLError
from .expressions import ExpressionChecker, has_aggregate, is_aggregate
from .scope import METADATA_SCHEMA, UPLOAD_SCHEMA, OutCol, Scope, ScopeCol, Source, err, name_eq, suggest

__all__ = ["Checked", "EType", "OutCol", "ScopeCol", "check", "UPLOAD_SCHEMA", "METADATA_SCHEMA"]


@dataclass
class Checked:
    """A checked query: the tree, annotated in place (types, bound columns, sources, outputs;
    see nodes.py), and the output columns' metadata."""

    query: n.Query
    columns: list[dict]  # output column metadata, in order
    outputs: list[OutCol]


class _Checker(ExpressionChecker):
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
                raise err(qe, f"the operands of {qe.op} have {len(left)} and {len(right)} columns", "type")
            for a, b in zip(left, right, strict=False):
                if not (a.etype.loose or b.etype.loose) and a.etype.numeric != b.etype.numeric:
                    raise err(qe, f"{qe.op} combines columns {a.name} and {b.name} of different types", "type")
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
                raise err(item, f"ORDER BY position {item.position} is not in the select list "
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
            raise err(item, f"ORDER BY {expr if isinstance(expr, n.ColumnRef) else 'expression'} after a "
                             "set operation must name an output column or give its position", "unknown-column",
                       suggest(str(expr), [o.name for o in outs]) if isinstance(expr, n.ColumnRef) else None)
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
                raise err(g, f"GROUP BY position {g.value} is not in the select list", "type")
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
        if not sel.group_by and not any(has_aggregate(i.expr) for i in items):
            return
        if len(items) != len(sel.items):
            star = next(i for i in sel.items if isinstance(i, n.StarItem))
            raise err(star, "* cannot be selected in a grouped query; name the grouped columns", "type")
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
                    raise err(ref, f"column {ref} must appear in GROUP BY or inside an aggregate function",
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
            raise err(node, f"join column {name} is not in the {side} table", "unknown-column",
                       suggest(name, [c.name for s in sources for c in s.columns]))
        if len(found) > 1:
            raise err(node, f"join column {name} is ambiguous in the {side} table", "ambiguous-column")
        return found[0]

    def add_source(self, scope: Scope, src: Source, node) -> None:
        for other in scope.sources:
            if src.alias is not None and other.alias is not None and name_eq(src.alias, other.alias):
                raise err(node, f"the correlation name {src.alias} is used twice", "type")
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
                raise err(name, f"no uploaded table {name}", "unknown-table",
                           suggest(name.text, [t.name for t in self.uploads.values()]))
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
            et = model_column_type(c)
            cols.append(ScopeCol(c.name, alias, c.name, et, model_column_meta(c), qualified, c.name,
                                 et.kind == "REGION"))
        return Source(ref.alias, table.name, schema_name, alias, relation, cols, qualified)

    def model_table(self, parts: tuple[n.Name, ...], ref):
        name = parts[-1]
        schemas = self.model.schemas
        if len(parts) >= 2:
            sname = parts[-2]
            matching = [s for s in schemas if sname.matches(s.name)]
            if not matching:
                raise err(sname, f"no schema {sname}", "unknown-schema",
                           suggest(sname.text, [s.name for s in schemas] + [UPLOAD_SCHEMA]))
            candidates = [t for t in matching[0].tables]
        else:
            candidates = [t for s in schemas for t in s.tables]
        found = [t for t in candidates if name.matches(t.name)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise err(name, f"table name {name} is ambiguous", "unknown-table",
                       "qualify it with one of the schemas " + ", ".join(t.schema for t in found))
        names = [t.name if len(parts) >= 2 else t.qualified_name for t in candidates]
        hint = suggest(name.text, names) or (
            suggest(name.text, [t.name for t in candidates]) if len(parts) < 2 else None)
        raise err(name, f"no table {n.dotted(parts)}", "unknown-table", hint)

    def star(self, item: n.StarItem, scope: Scope, sel: n.Select) -> list[ScopeCol]:
        if item.qualifier is None:
            cols: list[ScopeCol] = []
            for f in sel.from_:
                cols.extend(self.expand(f))
            return cols
        matches = [s for s in scope.sources if s.matches(item.qualifier)]
        if not matches:
            raise err(item, f"no table {n.dotted(item.qualifier)} in FROM", "unknown-table",
                       suggest(item.qualifier[-1].text, [s.label for s in scope.sources]))
        if len(matches) > 1:
            raise err(item, f"{n.dotted(item.qualifier)} is ambiguous", "ambiguous-column")
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
                    raise err(ref, f"{n.dotted(qual)} is ambiguous", "ambiguous-column")
                if srcs:
                    qual_seen = True
                    cols = srcs[0].named(name)
                    if cols:
                        return cols[0]
                    if quiet:
                        return None
                    raise err(name, f"no column {name} in {srcs[0].label}", "unknown-column",
                               suggest(name.text, [c.name for c in srcs[0].columns]))
            else:
                if name.key in s.merged or (not name.delimited and name.text.lower() in s.merged):
                    return s.merged[name.text.lower()]
                found = [c for src in s.sources for c in src.named(name)]
                if len(found) > 1:
                    raise err(ref, f"column {name} is ambiguous", "ambiguous-column",
                               "qualify it with one of " + ", ".join(
                                   src.label for src in s.sources if any(name.matches(c.name) for c in src.columns)))
                if found:
                    return found[0]
            s = s.parent
        if quiet:
            return None
        if qual and not qual_seen:
            labels = [src.label for src in scope.sources]
            raise err(ref, f"no table {n.dotted(qual)} in FROM", "unknown-table",
                       suggest(qual[-1].text, labels + [src.table_name for src in scope.sources]))
        raise err(name, f"no column {name}", "unknown-column",
                   suggest(name.text, [c.name for src in scope.sources for c in src.columns]))

    # ---------------------------------------------------------------- expressions
def _free_columns(node):
    """Column references outside aggregates and subqueries."""
    if isinstance(node, n.ColumnRef):
        yield node
        return
    if is_aggregate(node) or isinstance(node, n.QueryExpr):
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
        raise err(join, JOIN_WITHOUT_CONDITION, "type")


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
