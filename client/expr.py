"""Tokenizer and recursive-descent parser for Butler-style ``where`` expressions.

It only builds a syntax tree with the position of every part; what the parts mean, and the
ADQL they become, is decided in query.py. Grammar (keywords case-insensitive)::

    expr      := and_expr ("OR" and_expr)*
    and_expr  := not_expr ("AND" not_expr)*
    not_expr  := "NOT" not_expr | "(" expr ")" | predicate
    predicate := operand (cmp operand | ["NOT"] "IN" "(" operand ("," operand)* ")"
                          | "OVERLAPS" operand)
    operand   := field | :bind | bind-name | number | 'string' | T'time'
                 | POINT(ra, dec) | CIRCLE(ra, dec, radius) | "(" operand "," operand ")"
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

from astropy.time import Time

__all__ = ["QueryExpressionError", "Token", "tokenize", "parse", "Node", "BoolOp", "Not", "FieldRef",
           "Value", "BindRef", "Function", "Pair", "Compare", "InList", "Overlaps", "FLIP"]


class QueryExpressionError(ValueError):
    """A where expression (or order_by term) this translator cannot turn into ADQL."""

    def __init__(self, message: str, expression: str = "", position: int | None = None) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        text = message
        if position is not None and expression:
            text += f" (at character {position + 1})\n    {expression}\n    {' ' * position}^"
        super().__init__(text)


_CMP_OPS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: The operator to use when a comparison's two sides are swapped (3 < detector → detector > 3).
FLIP = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_KEYWORDS = {"AND", "OR", "NOT", "IN", "OVERLAPS"}
_FUNCTIONS = {"POINT": 2, "CIRCLE": 3}


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # name keyword number string time bind op ( ) , - + end
    text: str
    pos: int
    value: Any = None


_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<time>[Tt]'(?P<tbody>[^']*)')
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<range>\d+\.\.)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<bind>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|<>|!=|==|=|<|>)
  | (?P<punct>[(),+-])
""", re.VERBOSE)


_TOKEN_KINDS = ("space", "time", "range", "string", "number", "bind", "name", "op", "punct")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise QueryExpressionError(f"unexpected character {text[pos]!r}", text, pos)
        kind = next(k for k in _TOKEN_KINDS if m.group(k) is not None)
        raw = m.group()
        if kind == "space":
            pass
        elif kind == "time":
            tokens.append(Token("time", raw, pos, _parse_time(m.group("tbody"), text, pos)))
        elif kind == "range":
            raise QueryExpressionError("integer ranges (a..b) are not supported: list the values in "
                                       "IN (...) or compare with >= and <=", text, pos)
        elif kind == "string":
            q = raw[0]
            tokens.append(Token("string", raw, pos, raw[1:-1].replace(q + q, q)))
        elif kind == "number":
            value: int | float = int(raw) if re.fullmatch(r"\d+", raw) else float(raw)
            tokens.append(Token("number", raw, pos, value))
        elif kind == "bind":
            tokens.append(Token("bind", raw, pos, raw[1:]))
        elif kind == "name":
            upper = raw.upper()
            if upper in _KEYWORDS:
                tokens.append(Token("keyword", upper, pos))
            else:
                tokens.append(Token("name", raw, pos))
        elif kind == "op":
            tokens.append(Token("op", raw, pos))
        elif kind == "punct":
            tokens.append(Token(raw, raw, pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


_TIME_FORMATS = {"mjd", "jd", "iso", "isot", "unix", "fits"}
_TIME_SCALES = {"tai", "utc", "tt", "tdb", "ut1"}


def _parse_time(body: str, text: str, pos: int) -> Time:
    """T'value[/format][/scale]': scale defaults to TAI, a bare number is an MJD."""
    value, *options = body.split("/")
    fmt, scale = None, "tai"
    for opt in options:
        o = opt.strip().lower()
        if o in _TIME_FORMATS:
            fmt = o
        elif o in _TIME_SCALES:
            scale = o
        else:
            raise QueryExpressionError(f"unknown time format or scale {opt!r} in T'{body}'", text, pos)
    value = value.strip()
    try:
        if fmt is None and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
            return Time(float(value), format="mjd", scale=scale)
        if fmt in ("mjd", "jd", "unix"):
            return Time(float(value), format=fmt, scale=scale)
        return Time(value, format=fmt, scale=scale)
    except ValueError:
        raise QueryExpressionError(f"cannot read time literal T'{body}' (write ISO 8601 such as "
                                   "T'2024-11-09T00:00:00', or T'60623.5/mjd'; TAI unless '/utc' "
                                   "is appended)", text, pos) from None


# ---------------------------------------------------------------------------------------------
# Syntax tree
# ---------------------------------------------------------------------------------------------

@dataclass
class Node:
    pos: int


@dataclass
class BoolOp(Node):
    op: str  # AND | OR
    items: list[Node]


@dataclass
class Not(Node):
    item: Node


@dataclass
class FieldRef(Node):
    name: str


@dataclass
class Value(Node):
    """A literal or a bound value (``bind`` names it for messages)."""

    value: Any
    bind: str | None = None


@dataclass
class BindRef(Node):
    name: str


@dataclass
class Function(Node):
    name: str  # POINT | CIRCLE
    args: list[Node]


@dataclass
class Pair(Node):
    """``(a, b)``: a timespan literal on the right of OVERLAPS."""

    first: Node
    second: Node


@dataclass
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass
class InList(Node):
    item: Node
    values: list[Node]
    negated: bool


@dataclass
class Overlaps(Node):
    left: Node
    right: Node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def at(self, kind: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def expect(self, kind: str, what: str) -> Token:
        if not self.at(kind):
            self.fail(f"expected {what}")
        return self.take()

    def fail(self, message: str, token: Token | None = None) -> NoReturn:
        t = token or self.tok
        found = "the end of the expression" if t.kind == "end" else repr(t.text)
        raise QueryExpressionError(f"{message}, found {found}", self.text, t.pos)

    # grammar
    def parse(self) -> Node:
        node = self.expr()
        if not self.at("end"):
            self.fail("expected AND, OR or the end of the expression")
        return node

    def expr(self) -> Node:
        return self._chain("OR", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("AND", self.not_expr)

    def _chain(self, op: str, sub) -> Node:
        first = sub()
        items = [first]
        while self.at("keyword", op):
            self.take()
            items.append(sub())
        return items[0] if len(items) == 1 else BoolOp(first.pos, op, items)

    def not_expr(self) -> Node:
        if self.at("keyword", "NOT"):
            t = self.take()
            return Not(t.pos, self.not_expr())
        if self.at("("):
            # a parenthesised condition, unless the parenthesis opens a (begin, end) operand
            start = self.i
            self.take()
            try:
                inner = self.expr()
            except QueryExpressionError as exc:
                self.i = start
                try:
                    return self.predicate()
                except QueryExpressionError:
                    raise exc from None
            if not self.at(")"):
                self.fail("expected ')'")
            self.take()
            return inner
        return self.predicate()

    def predicate(self) -> Node:
        left = self.operand()
        t = self.tok
        if t.kind == "op":
            self.take()
            return Compare(t.pos, _CMP_OPS[t.text], left, self.operand())
        negated = False
        if self.at("keyword", "NOT"):
            self.take()
            negated = True
            if not self.at("keyword", "IN"):
                self.fail("expected IN after NOT")
        if self.at("keyword", "IN"):
            t = self.take()
            self.expect("(", "'(' after IN")
            values = [self.operand()]
            while self.at(","):
                self.take()
                values.append(self.operand())
            self.expect(")", "')' closing the IN list")
            return InList(t.pos, left, values, negated)
        if self.at("keyword", "OVERLAPS"):
            t = self.take()
            return Overlaps(t.pos, left, self.operand())
        self.fail("expected a comparison (=, !=, <, <=, >, >=), IN or OVERLAPS")

    def operand(self) -> Node:
        t = self.tok
        if t.kind in ("-", "+"):
            self.take()
            num = self.tok
            if num.kind != "number":
                self.fail(f"expected a number after {t.text!r}")
            self.take()
            return Value(t.pos, -num.value if t.kind == "-" else num.value)
        if t.kind in ("number", "string", "time"):
            self.take()
            return Value(t.pos, t.value)
        if t.kind == "bind":
            self.take()
            return BindRef(t.pos, t.value)
        if t.kind == "name":
            self.take()
            upper = t.text.upper()
            if self.at("("):
                if upper not in _FUNCTIONS:
                    raise QueryExpressionError(f"unsupported function {t.text}() (supported: "
                                               f"{', '.join(_FUNCTIONS)})", self.text, t.pos)
                self.take()
                args = [self.operand()]
                while self.at(","):
                    self.take()
                    args.append(self.operand())
                self.expect(")", f"')' closing {upper}(")
                if len(args) != _FUNCTIONS[upper]:
                    raise QueryExpressionError(f"{upper}() takes {_FUNCTIONS[upper]} arguments, "
                                               f"not {len(args)}", self.text, t.pos)
                return Function(t.pos, upper, args)
            return FieldRef(t.pos, t.text)
        if t.kind == "(":
            self.take()
            first = self.operand()
            self.expect(",", "',' in a (begin, end) pair")
            second = self.operand()
            self.expect(")", "')' closing the (begin, end) pair")
            return Pair(t.pos, first, second)
        self.fail("expected a dimension field, a value or a :bind name")


def parse(text: str) -> Node:
    """The syntax tree of an expression; QueryExpressionError points at the first bad part."""
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise QueryExpressionError("the expression nests too deeply") from None
