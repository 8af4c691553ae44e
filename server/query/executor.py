"""The one path user queries take: parse -> check -> translate -> engine.

No query text reaches an engine except as the translator's output, and the engine connection
is read-only; this module is where the two meet, so protocol handlers and the command line share
it.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from diavo.server.adql.shape import freeze, lift, thaw
from diavo.server.engine.base import Cancel, Engine, EngineQuery, Limits, ResultSet, ResultStream

#: Parsed trees kept by shape (a few kB each).
SHAPES_KEPT = 512


@dataclass
class QueryService:
    model: object  # archive.model.DataModel
    engine: Engine

    def __post_init__(self) -> None:
        import threading
        from functools import lru_cache

        # Clients repeat queries (TOPCAT's metadata queries, notebooks re-run, monitoring): the
        # translation of a text without uploads depends on nothing else, so keep recent ones.
        self._cached = lru_cache(maxsize=512)(self._translate)
        # ... and scripts send one query at many positions: keep the parsed tree of each shape.
        self._shapes: dict[str, bytes] = {}
        self._shapes_lock = threading.Lock()

    def _translate(self, adql: str, uploads=None) -> EngineQuery:
        from diavo.server.adql.errors import ADQLError

        if uploads:
            return self._compile(adql, uploads)
        key, numbers = lift(adql)
        frozen = self._shapes.get(key)
        if frozen is not None:
            t0 = time.perf_counter()
            tree = thaw(frozen, numbers)
            try:
                return self._compile(adql, None, tree, time.perf_counter() - t0)
            except ADQLError:
                pass  # the message and its position come from the text itself, parsed afresh
        return self._compile(adql, None, shape=(key, numbers))

    def _compile(self, adql: str, uploads=None, tree=None, parse_s: float = 0.0,
                 shape: tuple[str, tuple[str, ...]] | None = None) -> EngineQuery:
        from diavo.server.adql.check import check
        from diavo.server.adql.parser import parse
        from diavo.server.adql.plan import plan
        from diavo.server.sql.emitter import emit

        t0 = time.perf_counter()
        if tree is None:
            tree = parse(adql)
            if shape is not None:
                self._keep(shape, tree)
        t1 = time.perf_counter()
        checked = check(tree, self.model, uploads)
        t2 = time.perf_counter()
        t = emit(plan(checked, self.engine.layout), self.engine.dialect)
        t3 = time.perf_counter()
        return EngineQuery(sql=t.sql, params=tuple(t.params), columns=tuple(t.columns),
                           timings=(("parse", parse_s or t1 - t0), ("check", t2 - t1), ("translate", t3 - t2)),
                           head=t.head, top=t.top, offset=t.offset)

    def _keep(self, shape: tuple[str, tuple[str, ...]], tree) -> None:
        """Keep a freshly parsed tree (before the checker annotates it) for its shape."""
        frozen = freeze(tree, shape[1])
        if frozen is None:
            return
        with self._shapes_lock:
            if len(self._shapes) >= SHAPES_KEPT:
                self._shapes.pop(next(iter(self._shapes)))
            self._shapes[shape[0]] = frozen

    def translate(self, adql: str, uploads=None) -> EngineQuery:
        """``uploads`` maps TAP_UPLOAD names to model Tables (the checker's view of them)."""
        if uploads:
            return self._compile(adql, uploads)
        return self._cached(adql)

    def run(self, adql: str, limits: Limits, cancel: Cancel | None = None, uploads=None) -> ResultSet:
        """``uploads`` maps TAP_UPLOAD names to objects with ``.table`` (model) and ``.data`` (Arrow)."""
        tables, data = _split(uploads)
        return self.engine.execute(self.translate(adql, tables), limits, cancel, data)

    def stream(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
               uploads=None) -> ResultStream:
        _, data = _split(uploads)
        return self.engine.stream(query, limits, cancel, data)

    def close(self) -> None:
        self.engine.close()


def _split(uploads) -> tuple[dict | None, dict | None]:
    if not uploads:
        return None, None
    return ({k: u.table for k, u in uploads.items()}, {k: u.data for k, u in uploads.items()})


def open_service(root, engine: str = "duckdb") -> QueryService:
    """A QueryService over an archive directory with the embedded DuckDB engine."""
    from pathlib import Path

    from diavo.server.archive.model import load_model
    from diavo.server.engine import open_engine

    model = load_model()
    return QueryService(model=model, engine=open_engine(engine, Path(root), model))


def translate(query, model=None, *, uploads: Mapping[str, object] | None = None, layout=None, dialect=None):
    """Parse (if ``query`` is text), check, plan and emit a query (the command line's
    ``adql translate``, tests, benchmarks). ``layout`` defaults to the archive storage's own and
    ``dialect`` to DuckDB's, so the SQL is what the default served archive runs.

    ``uploads`` maps TAP_UPLOAD table names to model ``Table`` objects; the engine must provide
    each as the relation its dialect names (``Dialect.upload_relation(name)``).
    """
    from diavo.server.adql.check import check
    from diavo.server.adql.parser import parse
    from diavo.server.adql.plan import plan
    from diavo.server.archive.store import physical_layout
    from diavo.server.sql.duckdb_dialect import DUCKDB
    from diavo.server.sql.emitter import emit

    if model is None:
        from diavo.server.archive.model import load_model

        model = load_model()
    tree = parse(query) if isinstance(query, str) else query
    planned = plan(check(tree, model, uploads), physical_layout(model) if layout is None else layout)
    return emit(planned, DUCKDB if dialect is None else dialect)
