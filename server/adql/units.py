"""The unit of a computed column, or none when the server cannot be sure of it.

A wrong unit is worse than none: TOPCAT and astropy convert with it. The rules, in order:

- a column carries its unit; ``IN_UNIT(x, 'u')`` carries ``u``;
- a sum or difference of terms in one unit keeps it; adding a literal to a term keeps the term's
  unit (an offset written in that unit); terms in different or unknown units give none;
- a product or quotient of two values with known units gets the composed unit
  (``deg * deg`` → ``deg**2``, ``nJy / d`` → ``nJy.d**-1``); a dimensionless result gives none;
- scaling by a literal (``ra * 60``, ``DISTANCE(...) * 3600``) gives none: the server cannot know
  what unit the factor converts to (``IN_UNIT`` says it);
- functions keep the unit where it is defined (ABS, ROUND, FLOOR, CEILING, TRUNCATE, MOD, MIN,
  MAX, SUM, AVG, a numeric CAST) and give none otherwise; COUNT has none;
- CASE and COALESCE keep a unit only when every branch has that same unit.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1024)
def _parse(unit: str):
    import astropy.units as u

    try:
        return u.Unit(unit, format="vounit")
    except ValueError:
        return u.Unit(unit)  # a unit written in astropy's generic form


@lru_cache(maxsize=1024)
def compose(a: str, b: str, op: str) -> str | None:
    """The VOUnit of ``a * b`` (op ``*``) or ``a / b`` (op ``/``); None when unsure or dimensionless."""
    try:
        ua, ub = _parse(a), _parse(b)
        result = ua * ub if op == "*" else ua / ub
        text = result.to_string("vounit")
    except (ValueError, TypeError):
        return None
    return text or None


def arithmetic(op: str, a: str | None, b: str | None, left_literal: bool, right_literal: bool) -> str | None:
    """The unit of ``left op right`` from the operands' units and whether each is a literal."""
    if op in "+-":
        if a == b:
            return a
        if right_literal and b is None:
            return a
        if left_literal and a is None:
            return b
        return None
    if op in "*/":
        if left_literal or right_literal or a is None or b is None:
            return None
        return compose(a, b, op)
    return None


def common(units: list[str | None]) -> str | None:
    """The one unit all branches share, else None."""
    first = units[0] if units else None
    return first if all(x == first for x in units) else None
