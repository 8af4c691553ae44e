"""The embedded engine: DuckDB on the archive's catalog file, opened read-only.

User queries run on cursors of one read-only database handle, each with the ADQL geometry
functions and TAP_SCHEMA installed, a timer that interrupts it at the execution-duration limit,
and a streaming Arrow reader that stops after MAXREC+1 rows, so an overflowing result never fills
memory. Cursors live in a pool: a query (or a stream being written out) holds one until it ends,
so two queries never share a cursor and ``interrupt`` stops exactly one query.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from pathlib import Path

from diavo.server.engine import duckdb_functions
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
)
from diavo.server.sql.dialect import Dialect
from diavo.server.sql.duckdb_dialect import DUCKDB


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, root: Path, model=None, hats_dir: Path | None = None):
        import duckdb

        from diavo.server.archive import store

        if model is None:
            from diavo.server.archive.model import load_model

            model = load_model()
        self._model = model
        self.dialect: Dialect = DUCKDB
        # store.connect opens the catalog read-only with external access disabled: defence in
        # depth behind the ADQL translator (no writes, no files or URLs reachable from SQL). With
        # HATS catalogs, only their directory is readable besides the catalog.
        self._attached: str | None = None
        self.layout, directories = store.archive_layout(model, Path(root), Path(hats_dir) if hats_dir else None)
        if directories:  # HATS catalogs to read: only their directories besides the catalog
            self._attached = store.ATTACHED_CATALOG
            self._db = store.connect_with_files(Path(root), directories)
        else:
            self._db = store.connect(Path(root), read_only=True)
        self._duckdb = duckdb
        # Python UDFs die with the connection that registered them: register them on this
        # long-lived handle; cursors only add their own temp macros and registered relations.
        duckdb_functions.register_udfs(self._db)
        self._deadlines = Deadlines()
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._all: list = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- cursors
    def _new_cursor(self):
        from diavo.server.archive.tap_schema import cached_tap_schema_tables

        cur = self._db.cursor()
        duckdb_functions.register_macros(cur)  # costs more than a cone query: done once per cursor
        for name, table in cached_tap_schema_tables(self._model).items():
            cur.register(self.dialect.metadata_relation(name), table)
        if self._attached:  # each cursor starts in the in-memory database: read the catalog's
            cur.execute(f"USE {self._attached}")
        with self._lock:
            self._all.append(cur)
        return cur

    def _acquire(self):
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            return self._new_cursor()

    def _release(self, cur, uploads, discard: bool = False) -> None:

        if discard:
            with self._lock:
                if cur in self._all:
                    self._all.remove(cur)
            with contextlib.suppress(self._duckdb.Error):
                cur.close()
            return
        for name in uploads or ():
            with contextlib.suppress(self._duckdb.Error):
                cur.unregister(self.dialect.upload_relation(name))
        self._idle.put(cur)

    # ---------------------------------------------------------------- queries
    def stream(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
               uploads: dict | None = None) -> ResultStream:
        """Start the query and return its rows as a lazy stream (the cursor is held until the
        stream is exhausted or closed). Errors found while planning raise here, before any row."""

        cur = self._acquire()
        timed_out = threading.Event()
        interrupted = threading.Event()

        def interrupt() -> None:
            interrupted.set()
            cur.interrupt()

        def on_timeout() -> None:
            timed_out.set()
            interrupt()

        timer: list[int] = []
        released = threading.Event()
        open_reader: list = []

        def release() -> None:
            if released.is_set():
                return
            released.set()
            for r in open_reader:  # a stream cut at MAXREC leaves a result open on the cursor
                with contextlib.suppress(Exception):
                    r.close()
            for key in timer:
                self._deadlines.cancel(key)
            if cancel is not None:
                cancel.unbind(interrupt)
            # An interrupt that arrives between fetches stays pending on the connection and would
            # stop the next query run on it: an interrupted cursor is closed, never reused.
            self._release(cur, uploads, discard=interrupted.is_set())

        def translate_error(exc: BaseException) -> Exception:
            if isinstance(exc, self._duckdb.InterruptException):
                if timed_out.is_set():
                    return QueryTimeout(f"query exceeded the execution duration of {limits.timeout_s:g} s")
                return QueryAborted("query aborted")
            return EngineError(str(exc).split("\n")[0])

        try:
            for name, table in (uploads or {}).items():
                cur.register(self.dialect.upload_relation(name), table)
            if cancel is not None:
                cancel.bind(interrupt)
            if limits.timeout_s:
                timer.append(self._deadlines.schedule(limits.timeout_s, on_timeout))
            # An abort that lands before DuckDB starts the statement interrupts nothing: look at
            # the flag on both sides of the call.
            if cancel is not None and cancel.cancelled:
                raise QueryAborted("query aborted")
            rel = cur.sql(query.sql_for(limits.maxrec, self.dialect), params=list(query.params) or None)
            if rel is None:
                raise EngineError("the statement returned no rows")
            reader = rel.to_arrow_reader(limits.batch_rows)
            open_reader.append(reader)
            if cancel is not None and cancel.cancelled:
                raise QueryAborted("query aborted")
        except self._duckdb.Error as exc:
            release()
            raise translate_error(exc) from exc
        except BaseException:
            release()
            raise

        def batches():
            while True:
                if cancel is not None and cancel.cancelled:
                    raise QueryAborted("query aborted")
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except self._duckdb.Error as exc:
                    raise translate_error(exc) from exc
                except Exception as exc:  # pyarrow surfaces DuckDB interrupts as its own errors
                    if timed_out.is_set():
                        raise QueryTimeout(f"query exceeded the execution duration of {limits.timeout_s:g} s") from exc
                    if cancel is not None and cancel.cancelled:
                        raise QueryAborted("query aborted") from exc
                    raise EngineError(str(exc).split("\n")[0]) from exc
                yield batch

        return ResultStream(batches(), reader.schema, list(query.columns), limits.maxrec, on_close=release)

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
                uploads: dict | None = None) -> ResultSet:
        import pyarrow as pa

        t0 = time.perf_counter()
        stream = self.stream(query, limits, cancel, uploads)
        try:
            batches = list(stream)
        finally:
            stream.close()
        table = pa.Table.from_batches(batches, schema=stream.schema)
        return ResultSet(table=table, columns=list(query.columns), overflow=stream.overflow,
                         elapsed_s=time.perf_counter() - t0)

    def close(self) -> None:
        """Interrupt whatever still runs (a stream being written at shutdown), then close."""
        with self._lock:
            cursors = list(self._all)
        for cur in cursors:
            try:
                cur.interrupt()
                cur.close()
            except self._duckdb.Error:
                pass
        with contextlib.suppress(self._duckdb.Error):
            self._db.close()
