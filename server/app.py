"""The application factory: one Settings in, one Starlette app out; nothing built at import.

The lifespan opens the archive (read-only DuckDB engine), the TAP service and the UWS job
service, and closes them in reverse order. Every fault renders as a VOTable error document.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from diavo.server.errors import DaliError
from diavo.server.output.votable import error_votable
from diavo.server.requestlog import RequestLog, request_id
from diavo.server.settings import Settings

log = logging.getLogger("diavo")
ERROR_TYPE = "application/x-votable+xml"


def software() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"diavo/{version('diavo')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "diavo/dev"


class ServerHeader:
    """Names the software in every response (the IVOA SoftID note; taplint checks it)."""

    def __init__(self, app, value: str) -> None:
        self.app, self.value = app, value.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers.append((b"server", self.value))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_header)


async def _dali_error(request: Request, exc: DaliError) -> Response:
    if exc.status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    else:
        log.info("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    return Response(error_votable(exc.message), status_code=exc.status, media_type=ERROR_TYPE)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = exc.detail or "error"
    if exc.status_code == 404:
        message = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return Response(error_votable(message), status_code=exc.status_code, media_type=ERROR_TYPE,
                    headers=getattr(exc, "headers", None))


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A fixed message and the request id for the client; the traceback, with that id, for the log."""
    rid = request_id(request.scope)
    log.exception("internal error on %s %s (request %s)", request.method, request.url.path, rid)
    # Starlette runs this handler outside the middleware stack: the id header is set here.
    return Response(error_votable(f"internal error (request {rid}); the service log has the details"),
                    status_code=500, media_type=ERROR_TYPE, headers={"X-Request-ID": rid})


def create_app(settings: Settings) -> Starlette:
    from diavo.server.auth import TokenAuth
    from diavo.server.protocols import examples, landing, tap, uws, vosi

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        from diavo.server.archive.linked import archive_model
        from diavo.server.context import AppContext
        from diavo.server.engine import open_engine
        from diavo.server.query.executor import QueryService
        from diavo.server.query.tap import TapService
        from diavo.server.uws.jobs import JobService

        model = archive_model(settings.root)  # diavo's model and the archive's linked catalogs
        engine = open_engine(settings.engine, settings.root, model, hats_dir=settings.hats_source,
                             spark_master=settings.spark_master, spark_conf=settings.spark_options)
        queries = QueryService(model=model, engine=engine)
        tap_service = TapService(settings, queries)
        jobs = JobService(settings, tap_service.run_job)
        jobs.start()
        from diavo.server.protocols.streaming import writer_pool

        writers = writer_pool()
        app.state.ctx = AppContext(settings=settings, model=model, queries=queries, tap=tap_service,
                                   jobs=jobs, started=dt.datetime.now(dt.timezone.utc), writers=writers)
        # What start-up built (the model, the modules, the engine's catalog) lives as long as the
        # process: keep it out of the collector's generations, so a collection triggered by a
        # query's short-lived objects does not walk it every time.
        gc.freeze()
        try:
            yield
        finally:
            jobs.stop()
            writers.shutdown(wait=False, cancel_futures=True)
            # Every DuckDB handle on the catalog is closed here, explicitly: a handle left to the
            # garbage collector while another queries the same file can crash the process.
            images = getattr(app.state, "image_service", None)
            if images is not None:
                images.close()
            queries.close()

    routes = [*landing.routes(), *vosi.routes(), *examples.routes(), *tap.routes(), *uws.routes("/tap/async")]
    # Issue 5 protocols: each module adds its own line below (SIA; DataLink, SODA, images).
    from diavo.server.protocols import datalink, images, sia, soda
    routes += sia.routes() + images.routes() + datalink.routes() + soda.routes()
    from diavo.server.web import page

    routes += page.routes()

    handlers: dict[Any, Callable[..., Any]] = {DaliError: _dali_error, HTTPException: _http_error,
                                               Exception: _internal_error}
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestLog, log_queries=settings.log_queries),
                    Middleware(ServerHeader, value=software()), Middleware(TokenAuth, settings=settings)],
        exception_handlers=handlers,
    )


def serve(settings: Settings, log_level: str = "info") -> None:
    """Run the app under uvicorn until interrupted."""
    import uvicorn

    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
                access_log=False,  # requestlog writes one richer line per request
                server_header=False, proxy_headers=True, forwarded_allow_ips="*", timeout_graceful_shutdown=5)
