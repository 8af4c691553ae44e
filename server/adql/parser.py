"""ADQL 2.1 text → syntax tree (nodes.py), with lark's LALR parser over ``adql21.lark``.

``parse(text)`` either returns a :class:`nodes.Query` or raises :class:`ADQLError` with the line and
column of the problem; no lark exception (and no RecursionError) ever escapes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from . import nodes as n
from .errors import ADQLError
from .functions import RESERVED_WORDS, UDFS

__all__ = ["ADQLError", "MAX_QUERY_LENGTH", "parse"]

GRAMMAR = Path(__file__).with_name("adql21.lark")
MAX_QUERY_LENGTH = 200_000  # characters; a TAP query is text typed or generated for a person



def _reject_reserved(token: Token) -> Token:
    """Reserved words that are not keywords of the grammar (DATE, FLOAT...) are not identifiers."""
    if token.value.upper() in RESERVED_WORDS:
        raise ADQLError(
            f"{token.value!r} is a reserved word and cannot be used as a name",
            token.line or 0, token.column or 0,
            hint=f'write it as the delimited identifier "{token.value}"',
        )
    return token


@lru_cache(maxsize=1)
def _get_parser() -> Lark:
    """The LALR parser, built once per process. Building its tables costs seconds, so lark
    keeps them in its cache (keyed by the grammar's hash, in the temp directory); later
    processes load them in milliseconds."""
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"REGULAR_IDENTIFIER": _reject_reserved},
        cache=True,
    )


# ---------------------------------------------------------------- errors

_TOKEN_WORDS = {
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "STAR": "'*'", "$END": "end of query",
    "REGULAR_IDENTIFIER": "a name", "DELIMITED_IDENTIFIER": "a name",
    "UNSIGNED_NUMERIC_LITERAL": "a number", "CHARACTER_STRING_LITERAL": "a string",
    "COMP_OP": "a comparison operator", "PLUS": "'+'", "MINUS": "'-'", "SLASH": "'/'",
    "HEX_LITERAL": "a number",
}


def _describe_expected(expected: Iterable[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(e, e) for e in expected})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words)


def _syntax_error(exc: UnexpectedInput, text: str) -> ADQLError:
    line = getattr(exc, "line", 0) or 0
    column = getattr(exc, "column", 0) or 0
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else -1
        char = text[pos] if 0 <= pos < len(text) else "?"
        hint = None
        if char == '"':
            hint = "a delimited identifier needs a closing double quote"
        elif char == "'":
            hint = "a string needs a closing single quote"
        elif char == "_":
            hint = 'a regular identifier starts with a letter; write "_name" for others'
        return ADQLError(f"unexpected character {char!r}", line, column, hint)
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            return ADQLError("unexpected end of query", _last_line(text), _end_column(text),
                             hint=f"expected {_describe_expected(exc.expected)}")
        value = str(token.value)
        expected = set(exc.expected)
        hint = f"expected {_describe_expected(expected)}"
        before = text[:token.start_pos].rstrip().split()
        if value.upper() == "FROM" and before and before[-1].upper() in ("SELECT", "DISTINCT", "ALL") \
                or value.upper() == "FROM" and len(before) >= 2 and before[-2].upper() == "TOP":
            return ADQLError("the select list is empty", line, column,
                             "name the columns to return, or * for all of them")
        if value.upper() in RESERVED_WORDS and value[:1].isalpha() and (
            "REGULAR_IDENTIFIER" in expected or "DELIMITED_IDENTIFIER" in expected
        ):
            hint = f'{value!r} is a reserved word; write "{value}" to use it as a name'
        return ADQLError(f"unexpected {value!r}", line, column, hint)
    return ADQLError(f"syntax error: {exc}", line, column)


def _last_line(text: str) -> int:
    return text.count("\n") + 1


def _end_column(text: str) -> int:
    return len(text) - (text.rfind("\n") + 1) + 1


# ---------------------------------------------------------------- tree builder

def _pos(meta) -> dict:
    if getattr(meta, "empty", True):
        return {}
    return {"line": meta.line, "column": meta.column}


def _tpos(token: Token) -> dict:
    return {"line": token.line or 0, "column": token.column or 0}


def _number(token: Token) -> n.Literal:
    text = str(token)
    if any(c in text for c in ".eE"):
        return n.Literal(float(text), "real", text, **_tpos(token))
    return n.Literal(int(text), "integer", text, **_tpos(token))


def _unsigned_integer(token: Token, what: str) -> int:
    text = str(token)
    if not text.isdigit():
        raise ADQLError(f"{what} must be an unsigned integer, not {text}", token.line or 0, token.column or 0)
    return int(text)


def _is_coordsys(arg) -> bool:
    return isinstance(arg, n.Literal) and arg.kind in ("string", "null")


def _setop(op: str, all_: bool):
    """A builder method for one set operator (the grammar has a rule per operator)."""
    def build(self, meta, c):
        return n.SetOp(op, c[0], c[1], all_, **_pos(meta))
    return build


def _binary(op: str):
    """A builder method for one binary operator."""
    def build(self, meta, c):
        return n.BinaryOp(op, c[0], c[1], **_pos(meta))
    return build


@v_args(meta=True)
class _Builder(Transformer):
    """Lark parse tree → nodes. Rule names follow adql21.lark."""

    def __init__(self, functions: set[str] | None, syntax_only: bool = False) -> None:
        super().__init__(visit_tokens=False)
        self.functions = functions  # None: accept any user-defined function name
        #: Only the BNF: no type rules (the checker against the model applies them).
        self.syntax_only = syntax_only

    # ---- queries
    def query_specification(self, meta, c):
        with_, body = c
        return n.Query(body, tuple(with_ or ()), **_pos(meta))

    def with_clause(self, meta, c):
        seen = set()
        for cte in c:
            if cte.name.key in seen:
                raise ADQLError(f"common table expression {cte.name} is defined twice", cte.line, cte.column)
            seen.add(cte.name.key)
        return c

    def with_query(self, meta, c):
        return n.CTE(c[0], c[1], **_pos(meta))

    def query_name(self, meta, c):
        return c[0]

    def select_expression(self, meta, c):
        body, order, offset = c
        if isinstance(body, n.QueryExpr) and not order and offset is None:
            return body
        return n.QueryExpr(body, tuple(order or ()), offset, **_pos(meta))

    union = _setop("UNION", False)
    union_all = _setop("UNION", True)
    except_ = _setop("EXCEPT", False)
    except_all = _setop("EXCEPT", True)
    intersect = _setop("INTERSECT", False)
    intersect_all = _setop("INTERSECT", True)

    def select_query(self, meta, c):
        quantifier, top, items, from_, where, group, having = c
        return n.Select(tuple(items), tuple(from_), quantifier, top, where, tuple(group or ()), having,
                        **_pos(meta))

    def distinct(self, meta, c):
        return "DISTINCT"

    def all(self, meta, c):
        return "ALL"

    def set_limit(self, meta, c):
        return c[0]

    def unsigned_decimal(self, meta, c):
        return _unsigned_integer(c[0], "this value")

    def select_all(self, meta, c):
        return n.StarItem(None, **_pos(meta))

    def select_list(self, meta, c):
        return c

    def qualified_asterisk(self, meta, c):
        return n.StarItem(tuple(c), **_pos(meta))

    def derived_column(self, meta, c):
        return n.SelectItem(c[0], c[1], **_pos(meta))

    def as_clause(self, meta, c):
        return c[0]

    def column_name(self, meta, c):
        return c[0]

    # ---- FROM
    def from_clause(self, meta, c):
        return c

    def table_name(self, meta, c):
        if len(c) > 3:
            raise ADQLError(f"too many parts in table name {n.dotted(tuple(c))}", c[0].line, c[0].column)
        return tuple(c)

    def table_ref(self, meta, c):
        return n.TableRef(c[0], c[1], **_pos(meta))

    def derived_ref(self, meta, c):
        return n.DerivedTable(c[0], c[1], **_pos(meta))

    def derived_table(self, meta, c):
        return c[0]

    def table_subquery(self, meta, c):
        body = c[0]
        return body if isinstance(body, n.QueryExpr) else n.QueryExpr(body, **_pos(meta))

    def correlation_specification(self, meta, c):
        return c[0]

    def correlation_name(self, meta, c):
        return c[0]

    def qualified_join(self, meta, c):
        left, kind, right, spec = c
        cond, using = (None, spec) if isinstance(spec, tuple) else (spec, None)
        return n.Join(left, right, kind or "INNER", False, cond, using, **_pos(meta))

    def natural_join(self, meta, c):
        left, kind, right = c
        return n.Join(left, right, kind or "INNER", True, **_pos(meta))

    def inner(self, meta, c):
        return "INNER"

    def join_type(self, meta, c):
        return c[0]

    def left(self, meta, c):
        return "LEFT"

    def right(self, meta, c):
        return "RIGHT"

    def full(self, meta, c):
        return "FULL"

    def join_condition(self, meta, c):
        return c[0]

    def named_columns_join(self, meta, c):
        return c[0]

    def join_column_list(self, meta, c):
        return tuple(c)

    # ---- clauses
    def where_clause(self, meta, c):
        return c[0]

    def group_by_clause(self, meta, c):
        return c[0]

    def group_by_term_list(self, meta, c):
        return c

    def group_by_term(self, meta, c):
        return c[0]

    def having_clause(self, meta, c):
        return c[0]

    def order_by_clause(self, meta, c):
        return c[0]

    def order_by_term_list(self, meta, c):
        return c

    def order_by_term(self, meta, c):
        expr, desc = c
        position = None
        if isinstance(expr, n.Literal) and expr.kind == "integer":
            position = expr.value
        return n.OrderItem(expr, bool(desc), position, **_pos(meta))

    def order_by_expression(self, meta, c):
        return c[0]

    def asc(self, meta, c):
        return False

    def desc(self, meta, c):
        return True

    def offset_clause(self, meta, c):
        return c[0]

    # ---- conditions
    def or_(self, meta, c):
        return n.BoolOp("OR", c[0], c[1], **_pos(meta))

    def and_(self, meta, c):
        return n.BoolOp("AND", c[0], c[1], **_pos(meta))

    def not_(self, meta, c):
        return n.Not(c[0], **_pos(meta))

    def comparison_predicate(self, meta, c):
        op = str(c[1])
        return n.Comparison("<>" if op == "!=" else op, c[0], c[2], **_pos(meta))

    def between_predicate(self, meta, c):
        return n.Between(c[0], c[2], c[3], c[1] is not None, **_pos(meta))

    def in_predicate(self, meta, c):
        operand, neg, value = c
        if isinstance(value, n.QueryExpr):
            return n.InSubquery(operand, value, neg is not None, **_pos(meta))
        return n.InList(operand, tuple(value), neg is not None, **_pos(meta))

    def in_value_list(self, meta, c):
        return c

    def like_predicate(self, meta, c):
        operand, neg, op, pattern = c
        return n.Like(operand, pattern, neg is not None, op.type == "ILIKE", **_pos(meta))

    def null_predicate(self, meta, c):
        return n.IsNull(c[0], c[1] is not None, **_pos(meta))

    def exists_predicate(self, meta, c):
        return n.Exists(c[0], **_pos(meta))

    def negation(self, meta, c):
        return True

    # ---- value expressions
    concatenation = _binary("||")
    bit_and = _binary("&")
    bit_or = _binary("|")
    bit_xor = _binary("^")
    add = _binary("+")
    sub = _binary("-")
    mul = _binary("*")
    div = _binary("/")

    def neg(self, meta, c):
        return n.Unary("-", c[0], **_pos(meta))

    def pos(self, meta, c):
        return n.Unary("+", c[0], **_pos(meta))

    def bit_not(self, meta, c):
        return n.Unary("~", c[0], **_pos(meta))

    def scalar_subquery(self, meta, c):
        return n.ScalarSubquery(c[0], **_pos(meta))

    def null(self, meta, c):
        return n.Literal(None, "null", "NULL", **_pos(meta))

    def number(self, meta, c):
        return _number(c[0])

    def hex(self, meta, c):
        return n.Literal(int(str(c[0]), 16), "hex", str(c[0]), **_tpos(c[0]))

    def character_string_literal(self, meta, c):
        text = str(c[0])
        return n.Literal(text[1:-1].replace("''", "'"), "string", text, **_tpos(c[0]))

    def column_reference(self, meta, c):
        if len(c) > 4:
            raise ADQLError(f"too many parts in column name {n.dotted(tuple(c))}", c[0].line, c[0].column)
        return n.ColumnRef(tuple(c), **_pos(meta))

    def signed_integer(self, meta, c):
        return n.Literal(_unsigned_integer(c[0], "this argument"), "integer", str(c[0]), **_pos(meta))

    def negative_integer(self, meta, c):
        return n.Literal(-_unsigned_integer(c[0], "this argument"), "integer", "-" + str(c[0]), **_pos(meta))

    # ---- functions
    def _call(self, meta, c):
        name = c[0]
        args = tuple(a for a in c[1:] if a is not None)
        return n.FunctionCall(name.type, args, **_pos(meta))

    trig_function = _call
    case_folding_function = _call

    def math_function(self, meta, c):
        name = c[0]
        if name.type == "RAND" and c[1] is not None:
            return n.FunctionCall("RAND", (n.Literal(c[1], "integer", str(c[1]), **_pos(meta)),), **_pos(meta))
        return self._call(meta, c)

    def in_unit_function(self, meta, c):
        return n.FunctionCall("IN_UNIT", (c[1], c[2]), **_pos(meta))

    def coalesce_expression(self, meta, c):
        return n.FunctionCall("COALESCE", tuple(c[1:]), **_pos(meta))

    def count_star(self, meta, c):
        return n.FunctionCall("COUNT", (), star=True, **_pos(meta))

    def set_function_specification(self, meta, c):
        return c[0]

    def general_set_function(self, meta, c):
        name, quantifier, arg = c
        return n.FunctionCall(name.type, (arg,), quantifier=quantifier, **_pos(meta))

    def cast_specification(self, meta, c):
        target, length = c[2]
        return n.Cast(c[1], target, length, **_pos(meta))

    def character_string_type(self, meta, c):
        return (c[0].type, c[1])

    def length(self, meta, c):
        return _unsigned_integer(c[0], "a length")

    def numeric_type(self, meta, c):
        return ("DOUBLE PRECISION" if c[0].type == "DOUBLE" else c[0].type, None)

    def datetime_type(self, meta, c):
        return ("TIMESTAMP", None)

    def geometry_type(self, meta, c):
        return (c[0].type, None)

    def simple_case(self, meta, c):
        operand, *whens, else_ = c
        return n.Case(operand, tuple(whens), else_, **_pos(meta))

    def searched_case(self, meta, c):
        *whens, else_ = c
        return n.Case(None, tuple(whens), else_, **_pos(meta))

    def simple_when_clause(self, meta, c):
        return (c[0], c[1])

    searched_when_clause = simple_when_clause

    def else_clause(self, meta, c):
        return c[0]

    def extract_coordsys(self, meta, c):
        return n.GeometryCall("COORDSYS", (c[1],), **_pos(meta))

    def user_defined_function(self, meta, c):
        token = c[0]
        name = str(token).lower()
        if self.functions is not None and name not in self.functions:
            close = difflib.get_close_matches(name, sorted(self.functions), n=3)
            raise ADQLError(f"unknown function {str(token)!r}", token.line or 0, token.column or 0,
                            hint=f"did you mean {', '.join(close)}?" if close else None,
                            code="unknown-function")
        return n.FunctionCall(name, tuple(a for a in c[1:] if a is not None), udf=True, **_pos(meta))

    def user_defined_function_name(self, meta, c):
        return c[0]

    # ---- geometry
    def _geometry1(self, meta, c):
        return n.GeometryCall(c[0].type, tuple(c[1:]), **_pos(meta))

    contains = intersects = area = coord1 = coord2 = centroid = distance_function = _geometry1

    def region(self, meta, c):
        return n.GeometryCall("REGION", (c[1],), **_pos(meta))

    def geometry_args(self, meta, c):
        return list(c)

    def _constructor(self, meta, c):
        name = c[0].type
        args = c[1]
        coordsys = None
        if name == "POLYGON":
            if _is_coordsys(args[0]) and len(args) >= 4:
                coordsys, args = args[0], args[1:]
            numeric_form = len(args) >= 6 and len(args) % 2 == 0
            if not numeric_form:
                if len(args) < 3:
                    raise ADQLError("POLYGON needs at least three vertices", **_pos(meta))
                for a in args:  # the <coord_value> form: points or column references
                    if isinstance(a, (n.Literal, n.BinaryOp, n.Unary)):
                        raise ADQLError("POLYGON needs an even number (at least six) of coordinates, "
                                        "or at least three points", a.line, a.column)
        else:
            full = {"POINT": 3, "CIRCLE": 4, "BOX": 5}[name]  # with a coordinate system
            if len(args) == full or (len(args) == full - 1 and name != "POINT" and _is_coordsys(args[0])):
                if not _is_coordsys(args[0]) and not self.syntax_only:
                    a = args[0]
                    raise ADQLError(f"the first of {full} {name} arguments must be a coordinate system string",
                                    a.line, a.column, code="type")
                coordsys, args = args[0], args[1:]
            lowest = 2 if name == "POINT" else full - 2
            if not lowest <= len(args) <= full - 1:
                forms = {"POINT": "POINT([coordsys,] ra, dec)",
                         "CIRCLE": "CIRCLE([coordsys,] ra, dec, radius) or CIRCLE([coordsys,] point, radius)",
                         "BOX": "BOX([coordsys,] ra, dec, width, height) or BOX([coordsys,] point, width, height)"}
                raise ADQLError(f"wrong number of arguments for {name}", hint=forms[name], code="arguments",
                                **_pos(meta))
            if name != "POINT" and len(args) == full - 2:  # the <coord_value> centre form
                a = args[0]
                if isinstance(a, (n.Literal, n.BinaryOp, n.Unary)):
                    raise ADQLError(f"the centre of {name} must be a point or give two coordinates",
                                    a.line, a.column, code="arguments")
            for a in args:
                if isinstance(a, n.Literal) and a.kind == "string" and not self.syntax_only:
                    raise ADQLError(f"a coordinate of {name} cannot be a string", a.line, a.column, code="type")
        return n.GeometryCall(name, tuple(args), coordsys, **_pos(meta))

    point = circle = box = polygon = _constructor

    # ---- identifiers
    def regular_identifier(self, meta, c):
        return n.Name(str(c[0]), False, **_tpos(c[0]))

    def delimited_identifier(self, meta, c):
        text = str(c[0])[1:-1].replace('""', '"')
        return n.Name(text, True, **_tpos(c[0]))


def parse(text: str, *, functions: Iterable[str] | None = (), any_function: bool = False,
          syntax_only: bool = False) -> n.Query:
    """Parse one ADQL 2.1 query.

    User-defined function names must be among the UDFs of ``functions.UDFS`` or those given in
    ``functions`` (e.g. declared by a test collection); ``any_function=True`` accepts any name.
    ``syntax_only=True`` is the BNF alone (``diavo adql check``): any function name, and none of
    the type rules the service applies (a string where POINT wants a number).
    """
    if not isinstance(text, str):
        raise ADQLError("the query must be text")
    if len(text) > MAX_QUERY_LENGTH:
        raise ADQLError(f"the query is longer than {MAX_QUERY_LENGTH} characters", code="limit")
    if not text.strip():
        raise ADQLError("the query is empty", 1, 1)
    known = None if any_function or syntax_only else {f.lower() for f in (functions or ())} | set(UDFS)
    try:
        tree = _get_parser().parse(text)
        return _Builder(known, syntax_only).transform(tree)
    except ADQLError:
        raise
    except VisitError as exc:
        if isinstance(exc.orig_exc, ADQLError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise ADQLError("the query is nested too deeply", code="limit") from None
        raise ADQLError(f"cannot read the query: {exc.orig_exc}") from None
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except RecursionError:
        raise ADQLError("the query is nested too deeply", code="limit") from None
    except LarkError as exc:
        raise ADQLError(f"cannot read the query: {exc}") from None
