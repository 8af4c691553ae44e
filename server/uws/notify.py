"""Wake blocked ``WAIT`` requests when their job changes, across threads and event loops.

A waiter is an ``asyncio.Event`` of the request's own loop; a change (made by a worker thread or
a request) sets it with ``call_soon_threadsafe``. Nothing polls.
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextmanager
    def listen(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set at every change of ``job_id`` while the block runs (call in a loop)."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[job_id]

    def count(self, job_id: str) -> int:
        with self._lock:
            return len(self._waiters.get(job_id, ()))

    def changed(self, job_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        self._wake(waiters)

    def wake_all(self) -> None:
        """Release every waiter (shutdown): they return the job as it is."""
        with self._lock:
            waiters = [w for ws in self._waiters.values() for w in ws]
        self._wake(waiters)

    @staticmethod
    def _wake(waiters) -> None:
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(event.set)
