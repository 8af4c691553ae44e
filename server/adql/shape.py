"""A query's shape: its text with the numeric literals lifted out, so a query that differs from
an earlier one only in its numbers (a cone at a new centre) skips the parser.

The shape keeps each number's kind (integer or real: ``1`` and ``1.0`` type differently), and
numbers that are not literals of the tree (``TOP n``, ``OFFSET n``) stay in the shape. A parsed
tree is reused only when its numeric literals, in text order, are exactly the lifted numbers;
the checker, planner and emitter always run on the new values, and any error is reported by a
fresh parse of the text itself, so a reused shape never changes an answer or a message.
"""
from __future__ import annotations

import pickle
import re
from typing import Any

from diavo.server.adql import nodes as n

_TOKEN = re.compile(r"""
    (?P<skip>--[^\n]*|'(?:[^']|'')*'|"(?:[^"]|"")*"|0[xX][0-9a-fA-F]+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
""", re.VERBOSE)
#: Keywords whose number is part of the statement, not a literal of the tree.
_COUNTS = {"top", "offset"}


def lift(text: str) -> tuple[str, tuple[str, ...]]:
    """The shape of ``text`` and the numbers lifted from it, in order."""
    parts: list[str] = []
    numbers: list[str] = []
    last = 0
    previous = ""
    for m in _TOKEN.finditer(text):
        if m.lastgroup == "word":
            previous = m.group().lower()
            continue
        if m.lastgroup == "number" and previous not in _COUNTS:
            number = m.group()
            parts.append(text[last:m.start()])
            parts.append("\0r" if any(c in number for c in ".eE") else "\0i")
            numbers.append(number)
            last = m.end()
        previous = ""
    parts.append(text[last:])
    return "".join(parts), tuple(numbers)


def _numeric_literals(tree: n.Node) -> list[n.Literal]:
    found = [x for x in n.walk(tree) if isinstance(x, n.Literal) and x.kind in ("integer", "real")]
    return sorted(found, key=lambda x: (x.line, x.column))


def freeze(tree: n.Node, numbers: tuple[str, ...]) -> bytes | None:
    """The tree kept for its shape, or None when its numeric literals are not the lifted ones."""
    literals = _numeric_literals(tree)
    if [x.text for x in literals] != list(numbers):
        return None
    try:
        return pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return None


def thaw(frozen: bytes, numbers: tuple[str, ...]) -> Any:
    """A fresh copy of a kept tree with ``numbers`` in place of its numeric literals (a copy
    per query: the checker annotates the tree it checks)."""
    tree = pickle.loads(frozen)  # noqa: S301 - bytes this process pickled itself
    for literal, text in zip(_numeric_literals(tree), numbers, strict=True):
        value: Any = float(text) if literal.kind == "real" else int(text)
        n.annotate(literal, value=value, text=text)
    return tree
