"""TAP 1.1 /sync (and the /tap root page lives in landing): parse -> TapService -> stream."""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.routing import Route

from diavo.server.engine.base import Cancel, QueryAborted, QueryTimeout
from diavo.server.errors import UsageFault
from diavo.server.params import read_params
from diavo.server.protocols.streaming import respond
from diavo.server.requestlog import add_timing, note
from diavo.server.urls import base_url


async def sync(request: Request):
    ctx = request.app.state.ctx
    params = await read_params(request, ctx.settings.upload_max_bytes)
    cancel = Cancel()
    public = base_url(request, ctx.settings)

    def start():  # one hop to a writer thread: validation, uploads, translation, planning, writing
        req = ctx.tap.prepare(params, public)
        note(request.scope, query=req.query, maxrec=req.maxrec, format=req.fmt.key)
        for name, seconds in getattr(req.compiled, "timings", ()):
            add_timing(request.scope, name, seconds)
        t0 = time.perf_counter()
        stream = ctx.tap.open(req, ctx.settings.sync_timeout_s, cancel)
        add_timing(request.scope, "engine", time.perf_counter() - t0)
        headers = {}
        if req.fmt.key.startswith("fits") or req.fmt.key == "parquet":
            headers["Content-Disposition"] = f'attachment; filename="result.{req.fmt.extension}"'
        return req.content_type, headers, (req, stream)

    def write(state, out) -> None:
        req, stream = state
        t0 = time.perf_counter()
        try:
            rows = req.fmt.write(stream, out, infos=req.infos())
            note(request.scope, rows=rows, overflow=bool(stream.overflow))
        finally:
            add_timing(request.scope, "write", time.perf_counter() - t0)
            stream.close()

    try:
        return await respond(start, write, cancel, ctx.writers)
    except QueryTimeout as exc:
        raise UsageFault(f"{exc}; run long queries as async jobs (/tap/async)") from None
    except QueryAborted as exc:
        raise UsageFault(str(exc)) from None


def routes() -> list[Route]:
    return [Route("/tap/sync", sync, methods=["GET", "POST"])]
