"""The embedded engine: DuckDB on the archive's catalog file, opened read-only.

User queries run on cursors of one read-only database handle, each with the ADQL geometry
functions installed, a timer that interrupts it at the execution-duration limit, and a streaming
Arrow reader that stops after MAXREC+1 rows, so an overflowing result never fills memory.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from diavo.server.engine.base import Cancel, EngineError, EngineQuery, Limits, QueryAborted, QueryTimeout, ResultSet


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, root: Path):
        import duckdb

        from diavo.server.archive import store

        # store.connect opens the catalog read-only with external access disabled: defence in
        # depth behind the ADQL translator (no writes, no files or URLs reachable from SQL).
        from diavo.server.adql import functions, geometry

        self._db = store.connect(Path(root), read_only=True)
        self._duckdb = duckdb
        # Python UDFs die with the connection that registered them: register them on this
        # long-lived handle; cursors only add their own temp macros.
        geometry.register_udfs(self._db)
        functions.register(self._db)
        self._local = threading.local()
        self._cursors: list = []

    def _cursor(self):
        """This thread's cursor, made once with the temp macros installed (installing them
        costs more than a cone query). One cursor per worker thread: a cursor runs one query
        at a time, and ``interrupt`` stops exactly that thread's query."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            from diavo.server.adql import geometry

            cur = self._db.cursor()
            geometry.register_macros(cur)
            self._local.cursor = cur
            self._cursors.append(cur)
        return cur

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None) -> ResultSet:
        import pyarrow as pa

        cur = self._cursor()
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            cur.interrupt()

        timer = threading.Timer(limits.timeout_s, on_timeout)
        timer.daemon = True
        if cancel is not None:
            cancel.bind(cur.interrupt)
        t0 = time.perf_counter()
        timer.start()
        try:
            rel = cur.sql(query.sql, params=list(query.params) or None)
            if rel is None:
                raise EngineError("the statement returned no rows")
            want = None if limits.maxrec is None else limits.maxrec + 1
            reader = rel.to_arrow_reader(limits.batch_rows)
            batches, n = [], 0
            while want is None or n < want:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                batches.append(batch)
                n += batch.num_rows
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except self._duckdb.InterruptException as exc:
            if timed_out.is_set():
                raise QueryTimeout(f"query exceeded the execution duration of {limits.timeout_s:g} s") from exc
            raise QueryAborted("query aborted") from exc
        except self._duckdb.Error as exc:
            raise EngineError(str(exc).split("\n")[0]) from exc
        finally:
            timer.cancel()
            if cancel is not None:
                cancel.unbind(cur.interrupt)
        overflow = limits.maxrec is not None and table.num_rows > limits.maxrec
        if overflow:
            table = table.slice(0, limits.maxrec)
        return ResultSet(table=table, columns=list(query.columns), overflow=overflow,
                         elapsed_s=time.perf_counter() - t0)

    def close(self) -> None:
        for cur in self._cursors:
            cur.close()
        self._db.close()
