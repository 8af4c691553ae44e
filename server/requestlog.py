"""One structured log line per request, and the request id that ties a client's error to it.

Every response carries ``X-Request-ID``; the line (logger ``diavo.access``, JSON) has the method,
path, status, bytes sent, total milliseconds, and what the handlers noted on the way
(``note(scope, ...)``): rows written, the parse/check/translate/engine/write timings, a job id.
The query text is logged only when the operator asks for it (``--log-queries`` or
``DIAVO_LOG_QUERIES=1``): it may hold what users consider private. Timings of a query whose
translation was cached are those of its first translation.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("diavo.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_KEY = "diavo.request"


def request_id(scope: Scope) -> str:
    """The id of the request being served ('-' outside one)."""
    return str(scope.get(_KEY, {}).get("id", "-"))


def note(scope: Scope, **fields: Any) -> None:
    """Add fields (rows, timings in ms, job id, query) to the request's log line."""
    entry = scope.get(_KEY)
    if entry is not None:
        entry.setdefault("fields", {}).update(fields)


def add_timing(scope: Scope, name: str, seconds: float) -> None:
    entry = scope.get(_KEY)
    if entry is not None:
        timings = entry.setdefault("fields", {}).setdefault("ms", {})
        timings[name] = round(timings.get(name, 0.0) + seconds * 1000.0, 3)


class RequestLog:
    """ASGI middleware: assigns the id, counts bytes, writes the line when the body is done."""

    def __init__(self, app: ASGIApp, log_queries: bool = False) -> None:
        self.app, self.log_queries = app, log_queries

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry: dict[str, Any] = {"id": uuid.uuid4().hex[:16], "status": 0, "bytes": 0}
        scope[_KEY] = entry
        t0 = time.perf_counter()
        header = (b"x-request-id", entry["id"].encode())

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            elif message["type"] == "http.response.body":
                entry["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self._write(scope, entry, time.perf_counter() - t0)

    def _write(self, scope: Scope, entry: dict[str, Any], seconds: float) -> None:
        fields = dict(entry.get("fields", {}))
        job = (scope.get("path_params") or {}).get("job_id")  # the router has filled them in by now
        if job is not None:
            fields.setdefault("job", job)
        query = fields.pop("query", None)
        line = {"request": entry["id"], "method": scope.get("method"), "path": scope.get("path"),
                "status": entry["status"] or 500, "bytes": entry["bytes"], "total_ms": round(seconds * 1000, 3),
                **fields}
        if query is not None and self.log_queries:
            line["query"] = query
        level = logging.WARNING if line["status"] >= 500 else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, json.dumps(line, default=str))
