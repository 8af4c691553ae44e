"""The one interface every engine implements: take translated SQL and limits, give columns.

An engine brings a ``Dialect`` (sql/) for the one SQL emitter and an adapter implementing
``Engine`` (DuckDB, Spark SQL; PostgreSQL with pgSphere next); nothing above this layer changes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from diavo.server.archive.layout import Layout
from diavo.server.sql.dialect import Dialect


class EngineError(RuntimeError):
    """The engine could not run the query (after the ADQL front end accepted it)."""


class QueryTimeout(EngineError):
    """The query ran past its execution-duration limit and was interrupted."""


class QueryAborted(EngineError):
    """The query was interrupted at a caller's request (UWS PHASE=ABORT)."""


@dataclass(frozen=True)
class EngineQuery:
    """SQL in the engine's dialect, its bound parameters and the output columns' metadata."""

    sql: str
    params: tuple = ()
    columns: tuple[dict, ...] = ()
    #: Seconds spent on parse, check and translate when it was made (for the request log).
    timings: tuple[tuple[str, float], ...] = ()
    #: The same SQL before its outermost LIMIT/OFFSET, and those: engines cap the rows they
    #: produce at MAXREC+1 with their dialect's LIMIT (``sql_for``).
    head: str = ""
    top: int | None = None
    offset: int | None = None

    def sql_for(self, maxrec: int | None, dialect: Dialect) -> str:
        """The SQL producing at most ``maxrec`` + 1 rows (one more tells a fit from an overflow)."""
        if maxrec is None or not self.head:
            return self.sql
        rows = maxrec + 1 if self.top is None else min(self.top, maxrec + 1)
        return self.head + dialect.limit(rows, self.offset)


@dataclass(frozen=True)
class Limits:
    #: Rows the caller wants at most; None means no cap. The engine reads one row more to tell
    #: an exact fit from an overflow.
    maxrec: int | None = None
    timeout_s: float = 60.0
    batch_rows: int = 65_536


@dataclass
class ResultSet:
    table: Any  # pyarrow.Table
    columns: list[dict]
    overflow: bool
    elapsed_s: float
    stats: dict = field(default_factory=dict)


def collect(stream: ResultStream, columns: list[dict], t0: float) -> ResultSet:
    """A whole stream as one ResultSet (engines' ``execute``); the stream is closed."""
    import time

    import pyarrow as pa

    try:
        batches = list(stream)
    finally:
        stream.close()
    table = pa.Table.from_batches(batches, schema=stream.schema)
    return ResultSet(table=table, columns=columns, overflow=stream.overflow, elapsed_s=time.perf_counter() - t0)


class ResultStream:
    """Result rows as Arrow batches, read lazily so output can be written with constant memory.

    Yields at most ``maxrec`` rows; ``overflow`` tells, once iteration has finished, whether the
    query had more. ``close`` releases the engine's resources (idempotent; iteration's end calls
    it too). Iteration may raise EngineError / QueryTimeout / QueryAborted midway.
    """

    def __init__(self, batches: Iterator, schema, columns: list[dict], maxrec: int | None,
                 on_close=None, label: str = "") -> None:
        self._batches = batches
        #: The engine's own name for the running query (Spark's job group), for operators.
        self.label = label
        self.schema = schema
        self.columns = columns
        #: VOTable RESOURCE elements written after the results (service descriptors).
        self.resources: list[str] = []
        self.maxrec = maxrec
        self.rows = 0
        self.overflow = maxrec == 0
        self._on_close = on_close
        self._closed = False
        self._maps: list = []

    def map(self, fn) -> ResultStream:
        """Apply ``fn(batch) -> batch`` (same schema) to every batch; e.g. rewriting URLs."""
        self._maps.append(fn)
        return self

    def _mapped(self, batch):
        for fn in self._maps:
            batch = fn(batch)
        return batch

    def __iter__(self) -> Iterator:
        try:
            if self.maxrec == 0:
                return
            for batch in self._batches:
                if self.maxrec is not None and self.rows + batch.num_rows > self.maxrec:
                    keep = self.maxrec - self.rows
                    if keep:
                        self.rows += keep
                        yield self._mapped(batch.slice(0, keep))
                    self.overflow = True
                    return
                if batch.num_rows:
                    self.rows += batch.num_rows
                    yield self._mapped(batch)
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close()


class Engine(Protocol):
    name: str
    #: Where the engine's storage keeps what the SQL emitter's fast paths need.
    layout: Layout
    #: How the engine spells SQL (identifiers, relations); the emitter writes through it.
    dialect: Dialect

    def execute(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
                uploads: dict | None = None) -> ResultSet: ...

    def stream(self, query: EngineQuery, limits: Limits, cancel: Cancel | None = None,
               uploads: dict | None = None) -> ResultStream: ...

    def close(self) -> None: ...


class Cancel:
    """A handle a job runner keeps to interrupt a running query from another thread.

    Hooks run under a lock, and ``unbind`` takes it too: once ``unbind`` returns, the hook will
    not be called, so an engine can safely reuse what the hook would have interrupted.
    """

    def __init__(self) -> None:
        import threading

        self._hooks: list = []
        self._lock = threading.Lock()
        self.cancelled = False

    def bind(self, hook) -> None:
        with self._lock:
            self._hooks.append(hook)
            if self.cancelled:
                hook()

    def unbind(self, hook) -> None:
        """Forget a hook once its query is over: engines reuse cursors between queries."""
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)

    def __call__(self) -> None:
        with self._lock:
            self.cancelled = True
            for hook in list(self._hooks):
                hook()


class Deadlines:
    """One watchdog thread for every query's time limit.

    Starting a ``threading.Timer`` per query costs a thread start (milliseconds on a loaded
    machine, more than a cone query); this keeps a heap of deadlines served by one thread.
    """

    def __init__(self) -> None:
        import heapq
        import itertools
        import threading

        self._heapq = heapq
        self._heap: list = []
        self._ids = itertools.count()
        self._cv = threading.Condition()
        self._cancelled: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="diavo-deadlines", daemon=True)
        self._thread.start()

    def schedule(self, delay_s: float, fn) -> int:
        import time

        key = next(self._ids)
        with self._cv:
            self._heapq.heappush(self._heap, (time.monotonic() + delay_s, key, fn))
            self._cv.notify()
        return key

    def cancel(self, key: int) -> None:
        with self._cv:
            self._cancelled.add(key)

    def _run(self) -> None:
        import time

        while True:
            with self._cv:
                while True:
                    while self._heap and self._heap[0][1] in self._cancelled:
                        self._cancelled.discard(self._heapq.heappop(self._heap)[1])
                    if not self._heap:
                        self._cv.wait()
                        continue
                    when, key, fn = self._heap[0]
                    wait = when - time.monotonic()
                    if wait <= 0:
                        self._heapq.heappop(self._heap)
                        break
                    self._cv.wait(wait)
            with contextlib.suppress(Exception):  # a failing hook must not stop other deadlines
                fn()
