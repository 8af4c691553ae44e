"""PostgreSQL with pgSphere as a diavo engine: serve the catalogs a data centre already keeps.

The archive directory still holds the model, the images and the job state; the tables live in the
database (``diavo load-pg`` puts them there, or ``pg_store.describe`` accepts tables loaded some
other way). Queries come through a psycopg connection pool. Each runs in a ``READ ONLY``
transaction with ``statement_timeout`` set from its limits, on a server-side cursor fetched in
batches (the dialect's LIMIT already caps it at MAXREC+1), so a large result never sits in this
process. A time limit or a UWS abort sends PostgreSQL a cancel request for the connection's
running statement. TAP_SCHEMA (generated from the model) and TAP_UPLOAD tables are temporary
tables of the connection: nobody else sees them, and uploads are dropped after their query.
Connect as a role that may only read (``load-pg --reader``): the transaction mode is the second
wall, the role the first.
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from diavo.server.archive import pg_store, store
from diavo.server.archive.layout import Layout
from diavo.server.engine.base import (
    Cancel,
    Deadlines,
    EngineError,
    EngineQuery,
    Limits,
    QueryAborted,
    QueryTimeout,
    ResultSet,
    ResultStream,
    collect,
)
from diavo.server.sql.dialect import Dialect
from diavo.server.sql.pgsphere_dialect import PGSPHERE

#: Connections the pool keeps open at most (each holds TAP_SCHEMA as temporary tables).
POOL_SIZE = 8
_ARROW = {"boolean": "bool_", "short": "int16", "int": "int32", "long": "int64", "float": "float32",
          "double": "float64", "unsignedByte": "uint8", "char": "string"}
#: PostgreSQL's SQLSTATE for a statement stopped by a cancel request or statement_timeout.
_CANCELED = "57014"


class PostgresEngine:
    name = "postgresql"

    def __init__(self, root: Path, model, url: str, pool_size: int = POOL_SIZE) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._model = model
        self._psycopg = psycopg
        self.dialect: Dialect = PGSPHERE
        url = pg_store.check_url(url)
        with psycopg.connect(url, connect_timeout=30) as conn:
            found = pg_store.describe(conn, model)
            columns = pg_store.storage_columns(conn, model)
        if found.missing:
            raise EngineError("the database lacks what the model serves: " + "; ".join(
                f"{name}: {', '.join(cols)}" for name, cols in sorted(found.missing.items()))
                + " (load it with 'diavo load-pg')")
        self.layout = _layout(store.physical_layout(model), columns)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, configure=self._configure,
                                    kwargs={"autocommit": True, "application_name": "diavo"},
                                    open=True, timeout=60)
        self._deadlines = Deadlines()

    def _configure(self, conn) -> None:
        """A new pooled connection: no JIT, TAP_SCHEMA as temporary tables from the running model."""
        from diavo.server.archive.tap_schema import cached_tap_schema_tables

        with conn.cursor() as cur:
            # JIT compiles expressions of any statement the planner prices high: tens of
            # milliseconds, more than a cone takes (the wide HEALPix range scans cost high)
            cur.execute("SET jit = off")
            for name, table in cached_tap_schema_tables(self._model).items():
                target = pg_store.quote(self.dialect.metadata_relation(name))
                pg_store.create_table(cur, target, table.schema, temporary=True)
                pg_store.copy_batches(cur, target, table.schema, table.to_batches())

    # ---------------------------------------------------------------- queries
    def stream(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
               uploads: dict | None = None) -> ResultStream:
        """The rows as Arrow batches fetched from a server-side cursor as the caller reads them;
        the first batch is fetched here, so an error the database finds raises before output."""
        import pyarrow as pa

        run = _Run(self, limits, cancel)
        try:
            run.start(query, uploads)
            first = run.fetch(list(query.columns))
        except BaseException:
            run.release()
            raise
        columns = list(query.columns)
        schema = _schema(columns, pa)

        def batches() -> Iterator:
            batch = first
            while batch is not None:
                yield batch
                batch = run.fetch(columns)

        return ResultStream(batches(), schema, columns, limits.maxrec, on_close=run.release, label=run.label)

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
                uploads: dict | None = None) -> ResultSet:
        t0 = time.perf_counter()
        return collect(self.stream(query, limits, cancel, uploads), list(query.columns), t0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pool.close(timeout=5)


class _Run:
    """One query on one pooled connection: its uploads, transaction, cursor, limit and abort."""

    def __init__(self, engine: PostgresEngine, limits: Limits, cancel: Cancel | None) -> None:
        self._engine = engine
        self._errors_mod = engine._psycopg.errors
        self._limits = limits
        self._cancel = cancel
        self.label = f"diavo_{uuid.uuid4().hex[:16]}"
        self._conn = engine._pool.getconn()
        self._cursor: Any = None
        self._uploads: list[str] = []
        self._timed_out = threading.Event()
        self._aborted = threading.Event()
        self._released = threading.Lock()
        self._done = False
        self._hook_lock = threading.Lock()
        self._over = False
        self._cancel_sent = False
        self._key = None
        if limits.timeout_s:
            self._key = engine._deadlines.schedule(limits.timeout_s, self._on_timeout)
        if cancel is not None:
            cancel.bind(self._interrupt)

    def _send_cancel(self) -> None:
        """A cancel request, unless the query is over. PostgreSQL serves it asynchronously, so it
        could stop a later statement: a connection that was sent one is closed, never reused."""
        with self._hook_lock:
            if self._over:
                return
            self._cancel_sent = True
            with contextlib.suppress(Exception):
                self._conn.cancel_safe(timeout=10)

    def _interrupt(self) -> None:
        self._aborted.set()
        self._send_cancel()

    def _on_timeout(self) -> None:
        self._timed_out.set()
        self._send_cancel()

    def _check(self) -> None:
        if self._timed_out.is_set():
            raise QueryTimeout(f"query exceeded the execution duration of {self._limits.timeout_s:g} s")
        if self._aborted.is_set() or (self._cancel is not None and self._cancel.cancelled):
            raise QueryAborted("query aborted")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (QueryAborted, QueryTimeout):
            raise
        except self._engine._psycopg.Error as exc:
            self._check()
            if getattr(exc, "sqlstate", None) == _CANCELED:  # statement_timeout on the server
                raise QueryTimeout(f"query exceeded the execution duration of {self._limits.timeout_s:g} s") from exc
            raise EngineError(_first_line(exc)) from exc

    def start(self, query: EngineQuery, uploads: dict | None) -> None:
        engine = self._engine
        conn = self._conn
        with self._errors():
            self._check()
            with conn.cursor() as cur:
                for name, data in (uploads or {}).items():
                    target = pg_store.quote(engine.dialect.upload_relation(name))
                    self._uploads.append(target)
                    pg_store.create_table(cur, target, data.schema, temporary=True)
                    pg_store.copy_batches(cur, target, data.schema, data.to_batches())
            conn.execute("BEGIN READ ONLY")
            if self._limits.timeout_s:
                conn.execute(f"SET LOCAL statement_timeout = {max(1, int(self._limits.timeout_s * 1000))}")
            self._cursor = conn.cursor(name=self.label, binary=True)
            # the dialect's markers are named: a mapping, always (psycopg then reads every '%')
            params = {f"p{i}": value for i, value in enumerate(query.params)}
            self._cursor.execute(query.sql_for(self._limits.maxrec, engine.dialect), params)
            self._check()

    def fetch(self, columns: list[dict]):
        """The next batch (None at the end)."""
        import pyarrow as pa

        if self._done or self._cursor is None:
            return None
        with self._errors():
            self._check()
            rows = self._cursor.fetchmany(self._limits.batch_rows)
            self._check()
        if not rows:
            self._done = True
            return None
        return _batch(rows, columns, pa)

    def release(self) -> None:
        """Close the cursor, end the transaction, drop the uploads and give the connection
        back; idempotent. A connection whose state is in doubt is closed, not reused."""
        if not self._released.acquire(blocking=False):
            return
        with self._hook_lock:
            self._over = True
        if self._cancel is not None:
            self._cancel.unbind(self._interrupt)
        if self._key is not None:
            self._engine._deadlines.cancel(self._key)
        conn = self._conn
        try:
            with contextlib.suppress(Exception):
                if self._cursor is not None:
                    self._cursor.close()
            if self._cancel_sent:
                raise RuntimeError("a cancel request may still be on its way")
            conn.rollback()
            for target in self._uploads:
                conn.execute(f"DROP TABLE IF EXISTS {target}")
        except Exception:
            with contextlib.suppress(Exception):
                conn.close()
        self._engine._pool.putconn(conn)


def _layout(layout: Layout, columns: dict[str, set[str]]) -> Layout:
    """The fast paths whose storage columns the database holds (tables loaded some other way
    may lack the HEALPix index or the unit vector: their queries are answered by plain scans)."""
    spatial = {}
    for name, index in layout.spatial.items():
        have = columns.get(name, set())
        if index.healpix not in have:
            continue
        vector = index.unit_vector if index.unit_vector and set(index.unit_vector) <= have else None
        spatial[name] = replace(index, unit_vector=vector)
    return Layout(spatial=spatial, regions=layout.regions)


def _arrow_type(meta: dict, pa):
    datatype = meta.get("datatype") or ""
    if (meta.get("xtype") or "") == "timestamp":
        return pa.timestamp("us")
    if meta.get("arraysize") and datatype not in ("char", "unicodeChar"):
        if datatype == "unsignedByte":
            return pa.binary()
        return pa.list_(getattr(pa, _ARROW.get(datatype, "float64"))())
    name = _ARROW.get(datatype)
    return getattr(pa, name)() if name else None


def _schema(columns: list[dict], pa):
    return pa.schema([pa.field(m["name"], _arrow_type(m, pa) or pa.string()) for m in columns])


def _batch(rows: list, columns: list[dict], pa):
    arrays = []
    for i, values in enumerate(zip(*rows, strict=True)):
        target = _arrow_type(columns[i], pa) or pa.string()
        arrays.append(pa.array(values, type=target))
    return pa.RecordBatch.from_arrays(arrays, names=[m["name"] for m in columns])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().split("\n")[0]
    return text[:500] or type(exc).__name__
