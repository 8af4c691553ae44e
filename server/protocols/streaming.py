"""Bytes from a blocking writer to an HTTP response, with back-pressure and constant memory.

Format writers write to a file object on a writer thread. A response that fits in ``SMALL``
bytes is collected whole and sent with a Content-Length, in one hop from the event loop to the
thread and one back (most cones and metadata queries); a larger one spills into a stream of
fixed-size chunks handed to the loop through a bounded channel, so a slow client slows the query
rather than filling memory. When the client goes away the writer is stopped at its next write
and the query is interrupted.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.responses import Response, StreamingResponse

log = logging.getLogger("diavo.http")

CHUNK = 256 * 1024
#: Responses up to this size are sent whole (bounded memory per request).
SMALL = 1024 * 1024
#: Chunks in flight between the writer and the client.
DEPTH = 8
_DONE = object()


class _Gone(Exception):
    """The client disconnected; stop writing."""


class _Channel:
    """Chunks from a writer thread to the event loop. The writer blocks while ``DEPTH`` chunks
    wait (back-pressure); the loop is woken by a callback, never by a thread parked on a queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        self._loop, self._stop = loop, stop
        self._room = threading.Semaphore(DEPTH)
        self._items: deque = deque()
        self._ready = asyncio.Event()

    def _deliver(self, item: object) -> None:
        self._items.append(item)
        self._ready.set()

    def put(self, chunk: bytes) -> None:
        while not self._room.acquire(timeout=0.5):
            if self._stop.is_set():
                raise _Gone()
        if self._stop.is_set():
            raise _Gone()
        self._send(chunk)

    def _send(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            raise _Gone() from None

    def finish(self) -> None:
        with contextlib.suppress(_Gone):
            self._send(_DONE)

    async def get(self) -> object:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if item is not _DONE:
            self._room.release()
        return item


class _SpillWriter:
    """A file object that collects up to ``SMALL`` bytes, then turns into a chunked stream."""

    def __init__(self, stop: threading.Event, spill: Callable[[], _Channel]) -> None:
        self._stop, self._spill = stop, spill
        self._buf = bytearray()
        self.channel: _Channel | None = None

    def write(self, data) -> int:
        if self._stop.is_set():
            raise _Gone()
        # Writers hand over bytes, bytearrays or numpy buffers: append their raw bytes (``+=`` on
        # an ndarray would be element-wise arithmetic, not concatenation).
        view = memoryview(data).cast("B")
        self._buf += view
        if self.channel is None and len(self._buf) > SMALL:
            self.channel = self._spill()
        if self.channel is not None and len(self._buf) >= CHUNK:
            self.flush()
        return view.nbytes

    def flush(self) -> None:
        if self.channel is not None and self._buf:
            chunk, self._buf = bytes(self._buf), bytearray()
            self.channel.put(chunk)

    def whole(self) -> bytes:
        return bytes(self._buf)


def writer_pool(max_workers: int = 64) -> ThreadPoolExecutor:
    """Writer threads reused between responses (a thread start per response costs milliseconds on
    a busy machine). Each thread is held while its client downloads; beyond the cap, responses
    wait for a free one. The app makes one in its lifespan (``AppContext.writers``)."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="diavo-writer")


def _settle(fut: asyncio.Future, result: object = None, error: BaseException | None = None) -> None:
    if fut.done():  # the request was cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


async def respond(start: Callable[[], tuple[str, Mapping[str, str], Any]], write: Callable[[Any, Any], None],
                  on_abort: Callable[[], None], executor: ThreadPoolExecutor | None) -> Response:
    """Run ``media_type, headers, state = start()`` then ``write(state, out)`` on one writer
    thread and answer with what it wrote. An exception from ``start`` (before any byte) is
    raised here, for the protocol's error document; ``on_abort`` runs if the client leaves."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    stop = threading.Event()

    head: list = []

    def spill() -> _Channel:
        channel = _Channel(loop, stop)
        loop.call_soon_threadsafe(_settle, fut, (*head, channel))
        return channel

    def work() -> None:
        try:
            media_type, headers, state = start()
        except BaseException as exc:  # noqa: BLE001 - handed to the request's task
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, None, exc)
            return
        head.extend((media_type, headers))
        out = _SpillWriter(stop, spill)
        try:
            write(state, out)
            out.flush()
        except _Gone:
            pass
        except Exception:  # the writer already put what it could (e.g. a trailing ERROR INFO)
            log.exception("error while writing a response")
            with contextlib.suppress(_Gone):
                out.flush()
        if out.channel is None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, (media_type, headers, out.whole()))
        else:
            out.channel.finish()

    if executor is not None:
        executor.submit(work)
    else:
        threading.Thread(target=work, name="diavo-writer", daemon=True).start()
    try:
        media_type, headers, result = await fut
    except asyncio.CancelledError:
        stop.set()
        on_abort()
        raise
    if isinstance(result, bytes):
        return Response(result, media_type=media_type, headers=dict(headers))
    return StreamingResponse(_body(result, stop, on_abort), media_type=media_type, headers=dict(headers))


async def _body(channel: _Channel, stop: threading.Event, on_abort: Callable[[], None]) -> AsyncIterator[bytes]:
    finished = False
    try:
        while True:
            item = await channel.get()
            if item is _DONE:
                finished = True
                return
            yield item  # type: ignore[misc]
    finally:
        if not finished:
            stop.set()
            on_abort()


def stream_body(write: Callable[[object], None], on_abort: Callable[[], None],
                executor: ThreadPoolExecutor | None = None) -> AsyncIterator[bytes]:
    """Run ``write(out)`` on a writer thread and yield what it writes, in chunks (for bodies
    that are known to be large)."""
    stop = threading.Event()

    async def body() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        channel = _Channel(loop, stop)

        def work() -> None:
            out = _SpillWriter(stop, lambda: channel)
            out.channel = channel
            try:
                write(out)
                out.flush()
            except _Gone:
                pass
            except Exception:
                log.exception("error while streaming a response")
                with contextlib.suppress(_Gone):
                    out.flush()
            channel.finish()

        if executor is not None:
            executor.submit(work)
        else:
            threading.Thread(target=work, name="diavo-writer", daemon=True).start()
        async for chunk in _body(channel, stop, on_abort):
            yield chunk

    return body()
