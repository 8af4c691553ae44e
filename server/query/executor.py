"""The one path user queries take: parse -> check -> translate -> engine.

No query text reaches an engine except as the translator's output, and the engine connection
is read-only; this module is where the two meet, so protocol handlers and the command line share
it.
"""
from __future__ import annotations

from dataclasses import dataclass

from diavo.server.engine.base import Cancel, Engine, EngineQuery, Limits, ResultSet


@dataclass
class QueryService:
    model: object  # archive.model.DataModel
    engine: Engine

    def translate(self, adql: str, uploads=None) -> EngineQuery:
        from diavo.server.adql.to_duckdb import translate

        t = translate(adql, self.model, uploads=uploads)
        return EngineQuery(sql=t.sql, params=tuple(t.params), columns=tuple(t.columns))

    def run(self, adql: str, limits: Limits, cancel: Cancel | None = None, uploads=None) -> ResultSet:
        return self.engine.execute(self.translate(adql, uploads), limits, cancel)


def open_service(root) -> QueryService:
    """A QueryService over an archive directory with the embedded DuckDB engine."""
    from pathlib import Path

    from diavo.server.archive.model import load_model
    from diavo.server.engine.duckdb_engine import DuckDBEngine

    return QueryService(model=load_model(), engine=DuckDBEngine(Path(root)))
