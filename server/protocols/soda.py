"""SODA 1.0 {sync} at /soda/sync (GET and POST), with /soda/capabilities and /soda/availability.

Parameters (names case-insensitive, DALI style):

    ID        one publisher DID of a difference image (required)
    CIRCLE    ra dec radius                       (ICRS degrees)
    POLYGON   ra1 dec1 ra2 dec2 ra3 dec3 ...      (great-circle edges)
    POS       CIRCLE ... | RANGE ra1 ra2 dec1 dec2 | POLYGON ...   (open RANGE ends as -Inf/+Inf)
    PIXEL     xmin xmax ymin ymax                 diavo extension: zero-based, inclusive pixel
                                                  indices of the parent CCD (DiaSource x/y frame)
    BAND      lo hi (m), TIME lo hi (MJD UTC)     select the whole image or nothing
    POL       these images have no polarization axis, so any POL selects nothing

The answer is a FITS file with IMAGE, MASK and VARIANCE cut to the bounding box of the region on
the CCD (clipped to it), its WCS shifted so every sky position keeps its pixel, and LTV1/LTV2 plus
the 'A' PHYSICAL WCS recording the offset in the parent CCD. Without a region it is the whole
image.

Choices, as SODA 1.0 asks (§3.1, §4): one value per parameter and one region parameter per request
on {sync} — more is refused with ``MultiValuedParamNotSupported``; a region or selection with no
pixels on the image gets **204 No Content** (§4.1, "must"); errors are ``text/plain`` starting with
the SODA error label (UsageError, MultiValuedParamNotSupported, AuthenticationError, ...), which is
also what pyvo shows its user, with 400 (bad input) or 404 (unknown ID).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from diavo.server.archive.images.access import ImageNotFound
from diavo.server.archive.images.regions import (
    RegionError,
    parse_circle,
    parse_interval,
    parse_pixel,
    parse_polygon,
    parse_pos,
    pixel_box,
)
from diavo.server.archive.images.service import FITS_TYPE, BadIdentifier, ImageInfo
from diavo.server.archive.obscore import TAI_MINUS_UTC_DAYS
from diavo.server.errors import DaliError, MultiValuedParam, NotFound, UsageFault
from diavo.server.output import xml
from diavo.server.params import Params, read_params
from diavo.server.protocols import vosi
from diavo.server.protocols.images import image_service, stream_chunks
from diavo.server.urls import base_url
from diavo.shared.bands import EM_RANGE_M

SODA_SYNC_ID = "ivo://ivoa.net/std/SODA#sync-1.0"
REGION_PARAMS = ("CIRCLE", "POLYGON", "POS", "PIXEL")
SINGLE_PARAMS = ("ID", *REGION_PARAMS, "BAND", "TIME", "RESPONSEFORMAT")
_FITS_FORMATS = {"fits", "application/fits", "image/fits"}


def _values(params: Params, name: str) -> list[str]:
    return [v for v in params.getall(name) if v.strip()]


def parse_request(params: Params):
    """(ID, region or None, band interval or None, time interval or None, pol given) from the
    parameters; a UsageFault for anything malformed or multi-valued."""
    for name in SINGLE_PARAMS:
        if len(set(_values(params, name))) > 1:
            raise MultiValuedParam(f"{name} given {len(_values(params, name))} times; this {{sync}} service "
                                   "takes one value per request")
    given = [n for n in REGION_PARAMS if _values(params, n)]
    if len(given) > 1:
        raise MultiValuedParam(f"{' and '.join(given)} given together; this {{sync}} service cuts one region "
                               "per request")
    ids = _values(params, "ID")
    if not ids:
        raise UsageFault("ID is required: the publisher DID of a difference image")
    fmt = (_values(params, "RESPONSEFORMAT") or ["application/fits"])[0].split(";")[0].strip().lower()
    if fmt not in _FITS_FORMATS:
        raise UsageFault(f"RESPONSEFORMAT {fmt[:40]!r} is not supported; cut-outs are FITS (application/fits)")
    region = None
    try:
        if given:
            text = _values(params, given[0])[0]
            parsers: dict[str, Callable[[str], Any]] = {
                "CIRCLE": parse_circle, "POLYGON": parse_polygon, "POS": parse_pos, "PIXEL": parse_pixel}
            region = parsers[given[0]](text)
        band = parse_interval(_values(params, "BAND")[0], "BAND") if _values(params, "BAND") else None
        time = parse_interval(_values(params, "TIME")[0], "TIME") if _values(params, "TIME") else None
    except RegionError as exc:
        raise UsageFault(str(exc)) from None
    return ids[0], region, band, time, bool(_values(params, "POL"))


def _selects_nothing(info: ImageInfo, band, time, pol: bool) -> bool:
    if pol:
        return True
    if band is not None:
        lo, hi = EM_RANGE_M[info.spec.band]
        if band[1] < lo or band[0] > hi:
            return True
    if time is not None:
        t0 = info.spec.obs_start_mjd_tai - TAI_MINUS_UTC_DAYS
        t1 = t0 + info.spec.exp_time / 86400.0
        if time[1] < t0 or time[0] > t1:
            return True
    return False


async def sync(request: Request) -> Response:
    try:
        return await _sync(request)
    except DaliError as exc:  # SODA's wire form of the one fault model
        return PlainTextResponse(f"{exc.soda_code}: {exc.message}\n", status_code=exc.status)


async def _sync(request: Request) -> Response:
    ctx = request.app.state.ctx
    params = await read_params(request, ctx.settings.upload_max_bytes)
    ident, region, band, time, pol = parse_request(params)
    svc = image_service(request)
    try:
        info = await run_in_threadpool(svc.resolve, ident)
    except BadIdentifier as exc:
        raise UsageFault(f"{exc}: {ident[:200]!r}") from None
    except ImageNotFound as exc:
        raise NotFound(f"{exc.args[0]}: {ident[:200]!r}") from None
    if _selects_nothing(info, band, time, pol):
        return Response(status_code=204)
    name = f"diavo-{info.visit}-{info.detector}"
    if region is None:
        if info.kind == "fits" and info.path is not None:
            return FileResponse(info.path, media_type=FITS_TYPE, filename=name + ".fits",
                                content_disposition_type="inline")
        buf = await run_in_threadpool(svc.full_fits, info)
        size = memoryview(buf).nbytes
        return StreamingResponse(stream_chunks(buf, 0, size), media_type=FITS_TYPE, headers={
            "Content-Length": str(size), "Content-Disposition": f'inline; filename="{name}.fits"'})
    box = await run_in_threadpool(pixel_box, region, info.spec)
    if box is None:
        return Response(status_code=204)
    body = await run_in_threadpool(svc.cutout, info, box)
    x0, y0, x1, y1 = box
    return Response(body, media_type=FITS_TYPE, headers={
        "Content-Disposition": f'inline; filename="{name}-{x0}-{y0}-{x1 - x0}x{y1 - y0}.fits"'})


# ------------------------------------------------------------------------------ VOSI
def capabilities_document(base: str, auth_required: bool) -> bytes:
    """VOSI capabilities of the SODA resources (SODA 1.0 §2.5); hand-written, it is this small."""
    security = '<securityMethod standardID="ivo://ivoa.net/sso#token"/>' if auth_required else ""

    def cap(standard: str, url: str, extra: str = "", secured: bool = False) -> str:
        return (f'<capability standardID="{xml.attr(standard)}">'
                f'<interface xsi:type="vs:ParamHTTP" role="std" version="1.0">'
                f'<accessURL use="full">{xml.attr(url)}</accessURL>{extra}{security if secured else ""}'
                "</interface></capability>\n")

    soda = cap(SODA_SYNC_ID, f"{base}/soda/sync",
               "<queryType>GET</queryType><queryType>POST</queryType><resultType>application/fits</resultType>",
               secured=True)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1">\n'
            + soda
            + cap("ivo://ivoa.net/std/VOSI#capabilities", f"{base}/soda/capabilities")
            + cap("ivo://ivoa.net/std/VOSI#availability", f"{base}/soda/availability")
            + "</vosi:capabilities>\n").encode("utf-8")


async def capabilities(request: Request) -> Response:
    settings = request.app.state.ctx.settings
    body = capabilities_document(base_url(request, settings), settings.auth_required)
    return Response(body, media_type="text/xml")


async def availability(request: Request) -> Response:
    ctx = request.app.state.ctx
    body = vosi.documents().availability_document(ctx.settings, getattr(ctx, "started", None))
    return Response(body, media_type="text/xml", headers={"Cache-Control": "no-cache"})


def routes() -> list[Route]:
    return [
        Route("/soda/sync", sync, methods=["GET", "POST"]),
        Route("/soda/capabilities", capabilities, methods=["GET"]),
        Route("/soda/availability", availability, methods=["GET"]),
    ]
