"""Typing the expressions and conditions of a query: every value gets an ADQL type, a unit
when it is known for sure (units.py), and the functions' argument rules are enforced here, at the
spot the user wrote, rather than left to the engine.
"""

from __future__ import annotations

from typing import Any, Literal, overload

from . import nodes as n
from .datatypes import INTEGERS, NUMERIC_ORDER, EType, promote
from .functions import AGGREGATES, CATALOGUE, UDFS
from .scope import OutCol, Scope, ScopeCol, err, suggest
from .units import arithmetic, common

__all__ = ["ExpressionChecker", "has_aggregate", "is_aggregate", "is_literal"]


class ExpressionChecker:
    """The expression half of the checker; the query half (check._Checker) resolves names and
    subqueries."""

    @overload
    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: Literal[False] = False) -> ScopeCol: ...
    @overload
    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: bool) -> ScopeCol | None: ...

    def lookup(self, ref: n.ColumnRef, scope: Scope, quiet: bool = False) -> ScopeCol | None:
        raise NotImplementedError

    def query_expr(self, qe: Any, scope: Scope, top_level: bool = False) -> list[OutCol]:
        raise NotImplementedError

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
                        raise err(side, "|| needs strings or numbers, not a geometry", "type")
                return EType("VARCHAR")
            if e.op in "&|^":
                self.need(e.left, a, "integer", e.op)
                self.need(e.right, b, "integer", e.op)
                return EType(promote(a, b))
            self.need(e.left, a, "numeric", e.op)
            self.need(e.right, b, "numeric", e.op)
            unit = arithmetic(e.op, a.unit, b.unit, is_literal(e.left), is_literal(e.right))
            return EType(promote(a, b), unit)
        if isinstance(e, n.FunctionCall):
            return self.function(e, scope)
        if isinstance(e, n.GeometryCall):
            return self.geometry(e, scope)
        if isinstance(e, n.Cast):
            et = self.expr(e.operand, scope)
            target = e.target
            if target in ("POINT", "CIRCLE", "POLYGON") and et.kind not in ("VARCHAR", "NULL", target, "REGION"):
                raise err(e, f"cannot CAST a {et.kind} to {target}", "type")
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
                raise err(e, f"a subquery used as a value must return one column, not {len(outs)}", "type")
            if outs[0].etype.geometry:  # its DALI/STC-S output cannot be turned back into a geometry
                raise err(e, "a subquery used as a value cannot return a geometry", "unsupported")
            return outs[0].etype
        raise err(e, f"unexpected expression {type(e).__name__}", "unsupported")

    def need(self, node, et: EType, kind: str, what: str) -> None:
        if et.loose:
            return
        ok = {"numeric": et.numeric, "integer": et.kind in INTEGERS, "string": et.kind == "VARCHAR",
              "geometry": et.geometry, "point": et.kind in ("POINT",), "any": not et.geometry or True}[kind]
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            raise err(node, f"{what} needs {article} {kind} argument, not {et.kind}", "type")

    def function(self, e: n.FunctionCall, scope: Scope) -> EType:
        if e.udf:
            spec = UDFS.get(e.name)
            if spec is None:
                raise err(e, f"unknown function {e.name}", "unknown-function", suggest(e.name, list(UDFS)))
        else:
            spec = CATALOGUE[e.name]
        if e.star:
            return EType("BIGINT")
        nargs = len(e.args)
        if nargs < spec.min_args or (spec.max_args is not None and nargs > spec.max_args):
            expected = (f"{spec.min_args}" if spec.max_args == spec.min_args else
                        f"{spec.min_args} or more" if spec.max_args is None else f"{spec.min_args} to {spec.max_args}")
            raise err(e, f"{e.name} takes {expected} arguments, not {nargs}", "arguments")
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
                        raise err(sub, "aggregate functions cannot be nested", "type")
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
            return EType(promote(types[0], types[1]), first.unit)
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
                raise err(e.args[1], f"unknown unit {target!r}", "unit") from None
        if et.unit is None:
            raise err(e.args[0], "IN_UNIT needs a value whose unit is known (a column with a unit, "
                                  "or an expression of one)", "unit")
        try:
            src = u.Unit(et.unit, format="vounit")
        except Exception:
            try:
                src = u.Unit(et.unit)
            except Exception:
                raise err(e.args[0], f"the unit {et.unit!r} of the value is not understood", "unit") from None
        try:
            factor = float(src.to(dest))
        except u.UnitConversionError:
            raise err(e, f"cannot convert {et.unit} to {target}", "unit") from None
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
        raise err(e, f"unknown geometry function {name}", "unknown-function")

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
                raise err(c, f"the subquery of IN must return one column, not {len(outs)}", "type")
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
            raise err(c, f"unexpected condition {type(c).__name__}", "unsupported")

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
            raise err(node, f"cannot compare {a.kind} with {b.kind}", "type")


def is_aggregate(node) -> bool:
    return isinstance(node, n.FunctionCall) and node.name in AGGREGATES


def has_aggregate(node) -> bool:
    return any(is_aggregate(x) for x in n.walk(node, into_subqueries=False))


def is_literal(e) -> bool:
    """A number as written, signed or not: multiplying by one is scaling."""
    while isinstance(e, n.Unary):
        e = e.operand
    return isinstance(e, n.Literal)
