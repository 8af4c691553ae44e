"""VOSI for the TAP service: /tap/availability, /tap/capabilities and /tap/tables[/{name}].

The handlers render through ``vosi_documents`` (vo-models), imported by the first request that
needs a document; what they render is kept on the app, since the metadata is static.
"""
from __future__ import annotations

from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from diavo.server.errors import NotFound
from diavo.server.output.formats import FORMATS
from diavo.server.protocols import tapplus
from diavo.server.urls import base_url, tap_url

XML_TYPE = "text/xml"
CACHE_SIZE = 32


def documents():
    """The document builders (vo-models), imported on first use."""
    from diavo.server.protocols import vosi_documents

    return vosi_documents



def cached(request: Request, key: tuple, build: Callable[[], bytes]) -> bytes:
    """Rendered documents kept on the app (metadata is static); bounded, since the key may hold a
    client-chosen host name."""
    cache = getattr(request.app.state, "vosi_cache", None)
    if cache is None or len(cache) > CACHE_SIZE:
        cache = {}
        request.app.state.vosi_cache = cache
    if key not in cache:
        cache[key] = build()
    return cache[key]


def headers(ctx: Any) -> dict[str, str]:
    started = getattr(ctx, "started", None)
    return {"Last-Modified": format_datetime(started, usegmt=True)} if started else {}


# --- availability ---------------------------------------------------------------------------------


async def availability(request: Request) -> Response:
    ctx = request.app.state.ctx
    body = documents().availability_document(ctx.settings, getattr(ctx, "started", None))
    return Response(body, media_type=XML_TYPE, headers={"Cache-Control": "no-cache"})




async def capabilities(request: Request) -> Response:
    ctx = request.app.state.ctx
    base = base_url(request, ctx.settings)
    body = cached(request, ("capabilities", base),
                   lambda: documents().capabilities_document(ctx.settings, base, FORMATS))
    return Response(body, media_type=XML_TYPE, headers=headers(ctx))




def _wants_min(request: Request) -> bool:
    values = [v for k, v in request.query_params.multi_items() if k.lower() == "detail"]
    return bool(values) and values[-1].strip().lower() == "min"


async def tables(request: Request) -> Response:
    ctx = request.app.state.ctx
    detail = not (_wants_min(request) or tapplus.names_only(request))
    body = cached(request, ("tables", detail), lambda: documents().tableset_document(ctx.model, detail))
    wanted, flags = tapplus.wanted_tables(request), tapplus.is_tapplus(request)
    if wanted or flags:
        full = body
        body = cached(request, ("tables", detail, tuple(wanted), flags), lambda: tapplus.narrow(full, wanted, flags))
    return Response(body, media_type=XML_TYPE, headers=headers(ctx))


async def table(request: Request) -> Response:
    ctx = request.app.state.ctx
    name = request.path_params["name"]
    body = cached(request, ("table", name.lower()), lambda: documents().table_document(ctx.model, name) or b"")
    if not body:
        raise NotFound(f"no table {name!r}; {tap_url(request, ctx.settings)}/tables lists them all")
    return Response(body, media_type=XML_TYPE, headers=headers(ctx))


def routes() -> list[Route]:
    return [
        Route("/tap/availability", availability, methods=["GET"]),
        Route("/tap/capabilities", capabilities, methods=["GET"]),
        Route("/tap/tables", tables, methods=["GET"]),
        Route("/tap/tables/{name}", table, methods=["GET"]),
    ]
