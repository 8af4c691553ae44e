"""Bytes from a blocking writer to an HTTP response, with back-pressure and constant memory.

Format writers write to a file object from a worker thread; the response reads fixed-size chunks
through a small bounded queue, so a slow client slows the query rather than filling memory. When
the client goes away the writer is stopped at its next write and the query is interrupted.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import anyio

log = logging.getLogger("diavo.http")

CHUNK = 256 * 1024
_DONE = object()


class _Gone(Exception):
    """The client disconnected; stop writing."""


class _QueueWriter:
    def __init__(self, q: queue.Queue, stop: threading.Event) -> None:
        self._q, self._stop = q, stop
        self._buf = bytearray()

    def write(self, data) -> int:
        if self._stop.is_set():
            raise _Gone()
        # Writers hand over bytes, bytearrays or numpy buffers: append their raw bytes (``+=`` on
        # an ndarray would be element-wise arithmetic, not concatenation).
        view = memoryview(data).cast("B")
        self._buf += view
        if len(self._buf) >= CHUNK:
            self.flush()
        return view.nbytes

    def flush(self) -> None:
        if self._buf:
            chunk, self._buf = bytes(self._buf), bytearray()
            while True:
                if self._stop.is_set():
                    raise _Gone()
                try:
                    self._q.put(chunk, timeout=0.5)
                    return
                except queue.Full:
                    continue


def writer_pool(max_workers: int = 64) -> ThreadPoolExecutor:
    """Writer threads reused between responses (a thread start per response costs milliseconds on
    a busy machine). Each thread is held while its client downloads; beyond the cap, responses
    wait for a free one. The app makes one in its lifespan (``AppContext.writers``)."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="diavo-writer")


def stream_body(write: Callable[[object], None], on_abort: Callable[[], None],
                executor: ThreadPoolExecutor | None = None) -> AsyncIterator[bytes]:
    """Run ``write(out)`` in a writer thread (from ``executor`` when given); yield what it
    writes. ``on_abort`` runs if the client leaves."""
    q: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    def work() -> None:
        out = _QueueWriter(q, stop)
        try:
            write(out)
            out.flush()
        except _Gone:
            pass
        except Exception:  # the writer already put what it could (e.g. a trailing ERROR INFO)
            log.exception("error while streaming a response")
            with contextlib.suppress(_Gone):
                out.flush()
        finally:
            while True:
                try:
                    q.put(_DONE, timeout=0.5)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    async def body() -> AsyncIterator[bytes]:
        if executor is not None:
            executor.submit(work)
        else:
            threading.Thread(target=work, name="diavo-writer", daemon=True).start()
        finished = False
        try:
            while True:
                item = await anyio.to_thread.run_sync(q.get)
                if item is _DONE:
                    finished = True
                    return
                yield item
        finally:
            if not finished:
                stop.set()
                on_abort()

    return body()
