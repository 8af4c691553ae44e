"""What names resolve to while a query is checked: relations in FROM, their columns, scopes.

The checker resolves names to relations and columns without writing SQL; the SQL emitter turns a
:class:`ScopeCol` and a :class:`Source` into its dialect's text.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from . import nodes as n
from .datatypes import EType
from .errors import ADQLError

__all__ = ["METADATA_SCHEMA", "OutCol", "Scope", "ScopeCol", "Source", "UPLOAD_SCHEMA", "err", "name_eq",
           "suggest"]

UPLOAD_SCHEMA = "TAP_UPLOAD"

METADATA_SCHEMA = "TAP_SCHEMA"


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
    #: columns by lower-case name, built on first lookup (a DiaSource has 87 columns and a query
    #: looks up each of its names: a scan per name was the checker's largest cost)
    _by_name: dict[str, list[ScopeCol]] | None = field(default=None, init=False, repr=False, compare=False)

    def named(self, name: n.Name) -> list[ScopeCol]:
        """The columns ``name`` resolves to here, in column order (as ``name.matches`` decides)."""
        index = self._by_name
        if index is None or sum(map(len, index.values())) != len(self.columns):
            index = {}
            for c in self.columns:
                index.setdefault(c.name.lower(), []).append(c)
            self._by_name = index
        return [c for c in index.get(name.text.lower(), ()) if name.matches(c.name)]

    def matches(self, qual: tuple[n.Name, ...]) -> bool:
        if self.alias is not None:
            return len(qual) == 1 and name_eq(qual[0], self.alias)
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


def name_eq(a: n.Name, b: n.Name) -> bool:
    if a.delimited or b.delimited:
        return a.text == b.text
    return a.text.lower() == b.text.lower()


@dataclass
class Scope:
    parent: Scope | None
    sources: list[Source] = field(default_factory=list)
    merged: dict[str, ScopeCol] = field(default_factory=dict)  # USING / NATURAL columns
    ctes: dict[str, Source] = field(default_factory=dict)


def suggest(name: str, candidates) -> str | None:
    names = sorted(set(candidates))
    lower = {c.lower(): c for c in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    return f"did you mean {', '.join(lower[c] for c in close)}?" if close else None


def err(node, message, code, hint=None) -> ADQLError:
    return ADQLError(message, getattr(node, "line", 0), getattr(node, "column", 0), hint, code)
