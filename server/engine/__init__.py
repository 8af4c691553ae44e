"""Engines run translated queries. Each sits behind the narrow interface of ``base``.

``open_engine(settings.engine, root, model)`` builds the one the settings name; the app and the
command line never construct an engine class themselves.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diavo.server.engine.base import Engine

#: Engine names ``--engine`` / ``DIAVO_ENGINE`` accept; a ``postgresql://`` URL names the
#: PostgreSQL engine on that database.
ENGINES = ("duckdb", "spark", "postgresql://USER@HOST:PORT/DB")


def is_postgres_url(name: str) -> bool:
    return name.strip().lower().startswith(("postgresql://", "postgres://"))


def engine_name(name: str) -> str:
    """The canonical spelling of an engine setting (names lower-cased, URLs kept), or ValueError."""
    if is_postgres_url(name):
        return name.strip()
    key = name.strip().lower()
    if key not in ENGINES[:2]:
        raise ValueError(f"unknown engine {name!r}; this diavo has {', '.join(ENGINES)}")
    return key


def open_engine(name: str, root: Path, model, hats_dir: Path | None = None, *, spark_master: str = "local[2]",
                spark_conf: dict[str, str] | None = None) -> Engine:
    """The engine called ``name`` over the archive at ``root`` (unknown names: ValueError); with
    ``hats_dir``, the spatial tables are read from the HATS catalogs there (Spark always reads
    HATS: the archive's own when ``hats_dir`` is None)."""
    if is_postgres_url(name or ""):
        try:
            from diavo.server.engine.postgres_engine import PostgresEngine
        except ImportError as exc:
            raise ValueError(f"the postgresql engine needs psycopg: pip install -e '.[postgresql]' ({exc})") from None
        return PostgresEngine(Path(root), model, url=name.strip())
    key = (name or "duckdb").strip().lower()
    if key == "duckdb":
        from diavo.server.engine.duckdb_engine import DuckDBEngine

        return DuckDBEngine(Path(root), model, hats_dir=hats_dir)
    if key == "spark":
        try:
            from diavo.server.engine.spark_engine import SparkEngine
        except ImportError as exc:
            raise ValueError(f"the spark engine needs pyspark: pip install -e '.[spark]' ({exc})") from None
        return SparkEngine(Path(root), model, master=spark_master, hats_dir=hats_dir, conf=spark_conf)
    raise ValueError(f"unknown engine {name!r}: this diavo has {', '.join(ENGINES)}")
