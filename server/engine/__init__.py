"""Engines run translated queries. Each sits behind the narrow interface of ``base``.

``open_engine(settings.engine, root, model)`` builds the one the settings name; the app and the
command line never construct an engine class themselves.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diavo.server.engine.base import Engine

#: Engine names ``--engine`` / ``DIAVO_ENGINE`` accept.
ENGINES = ("duckdb",)


def open_engine(name: str, root: Path, model, hats_dir: Path | None = None) -> Engine:
    """The engine called ``name`` over the archive at ``root`` (unknown names: ValueError); with
    ``hats_dir``, the spatial tables are read from the HATS catalogs there."""
    key = (name or "duckdb").strip().lower()
    if key == "duckdb":
        from diavo.server.engine.duckdb_engine import DuckDBEngine

        return DuckDBEngine(Path(root), model, hats_dir=hats_dir)
    raise ValueError(f"unknown engine {name!r}: this diavo has {', '.join(ENGINES)}")
