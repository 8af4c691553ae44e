"""Image files over HTTP: the whole FITS (with Range), a PNG preview and the headers as text.

    GET|HEAD /images/{visit}/{detector}.fits     LSST-style MEF: IMAGE, MASK, VARIANCE
    GET      /images/{visit}/{detector}.png      ?stretch=asinh|zscale&mask=0|1|PLANE,...&sources=0|1&size=N
    GET      /images/{visit}/{detector}.header   every HDU header, one card a line (text/plain)

Path parameters are integers by route (no other text can reach a path or a query), and images
are looked up in the archive's image table. The ImageService behind all of DataLink, SODA and
these routes is built on first use and kept on ``app.state.image_service``.
"""
from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from diavo.server.archive.images.access import ImageNotFound
from diavo.server.archive.images.preview import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, STRETCHES
from diavo.server.archive.images.service import FITS_TYPE, ImageInfo, ImageService
from diavo.server.errors import NotFound, UsageFault
from diavo.shared.masks import MASK_COLORS, MASK_PLANES

#: Bytes per chunk when streaming a cached file.
CHUNK = 1 << 20
#: Largest visit and detector numbers an identifier can carry (shared.ids allows 15 and 4 digits).
MAX_VISIT, MAX_DETECTOR = 10**15 - 1, 9999


def image_service(request: Request) -> ImageService:
    """The app's ImageService, created on first use. Handlers call this on the event loop, where
    nothing else runs between the check and the assignment, so only one is ever built."""
    app = request.app
    svc = getattr(app.state, "image_service", None)
    if svc is None:
        svc = ImageService(app.state.ctx.settings.root)
        app.state.image_service = svc
    return svc


async def image_info(request: Request) -> ImageInfo:
    visit, detector = request.path_params["visit"], request.path_params["detector"]
    if visit > MAX_VISIT or detector > MAX_DETECTOR:
        raise NotFound(f"no difference image for visit {visit}, detector {detector}")
    try:
        return await run_in_threadpool(image_service(request).info, visit, detector)
    except ImageNotFound as exc:
        raise NotFound(exc.args[0]) from None


def _base_name(info: ImageInfo) -> str:
    return f"diavo-{info.visit}-{info.detector}"


# --------------------------------------------------------------------------- byte ranges
def byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """One ``bytes=`` range as (start, end-exclusive); None to send the whole file (no header,
    a malformed one or several ranges, which RFC 9110 lets a server ignore); "unsatisfiable"."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if len(first) > 18 or len(last) > 18:  # beyond any file: not a range we can honour
        return None
    if first == "":
        if last == "":
            return None
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if last != "" and end < start:
        return None  # not a valid range-spec: ignored
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1) + 1


def _if_range_ok(request: Request, etag: str, mtime: float) -> bool:
    value = request.headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == etag
    try:
        return int(parsedate_to_datetime(value).timestamp()) >= int(mtime)
    except (TypeError, ValueError):
        return False


def stream_chunks(buf, start: int, end: int):
    view = memoryview(buf).cast("B")
    for pos in range(start, end, CHUNK):
        yield bytes(view[pos:min(end, pos + CHUNK)])


async def fits_file(request: Request) -> Response:
    info = await image_info(request)
    svc = image_service(request)
    name = _base_name(info) + ".fits"
    if info.kind == "fits" and info.path is not None:
        # Starlette serves files with Range, ETag, Last-Modified and HEAD itself.
        return FileResponse(info.path, media_type=FITS_TYPE, filename=name, content_disposition_type="inline")
    etag, mtime = svc.validators(info)
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": formatdate(mtime, usegmt=True),
               "Content-Disposition": f'inline; filename="{name}"'}
    if request.headers.get("if-none-match", "").strip() in (etag, "*"):
        return Response(status_code=304, headers=headers)
    buf = None
    if request.method == "HEAD":  # the size without drawing the image
        size = await run_in_threadpool(svc.fits_size, info)
    else:
        buf = await run_in_threadpool(svc.full_fits, info)
        size = memoryview(buf).nbytes
    rng = byte_range(request.headers.get("range"), size) if _if_range_ok(request, etag, mtime) else None
    if isinstance(rng, str):  # "unsatisfiable"
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    status, (start, end) = (200, (0, size)) if rng is None else (206, rng)
    headers["Content-Length"] = str(end - start)
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if buf is None:
        return Response(status_code=status, headers=headers, media_type=FITS_TYPE)
    return StreamingResponse(stream_chunks(buf, start, end), status_code=status, headers=headers, media_type=FITS_TYPE)


# --------------------------------------------------------------------------------- previews
def _flag(value: str | None, name: str) -> bool:
    if value is None or value.strip().lower() in ("", "0", "false", "no", "off"):
        return False
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    raise UsageFault(f"{name} must be 0 or 1, not {value[:20]!r}")


def _mask_names(value: str | None) -> tuple[str, ...]:
    """``mask``: 0/absent (none), 1/all (every plane with a display colour) or plane names."""
    if value is None or value.strip().lower() in ("", "0", "false", "no", "off", "none"):
        return ()
    if value.strip().lower() in ("1", "true", "yes", "on", "all"):
        return tuple(n for n in MASK_PLANES if n in MASK_COLORS)
    names = tuple(dict.fromkeys(n.strip().upper() for n in value.split(",") if n.strip()))
    unknown = [n for n in names if n not in MASK_PLANES]
    if unknown:
        raise UsageFault(f"unknown mask plane(s) {', '.join(unknown)[:200]}; planes are {', '.join(MASK_PLANES)}")
    return names


def _single(request: Request, name: str) -> str | None:
    values = [v for k, v in request.query_params.multi_items() if k.lower() == name]
    if len(set(values)) > 1:
        raise UsageFault(f"parameter {name} given more than once")
    return values[0] if values else None


async def png_preview(request: Request) -> Response:
    stretch = (_single(request, "stretch") or "asinh").strip().lower()
    if stretch not in STRETCHES:
        raise UsageFault(f"stretch must be one of {', '.join(STRETCHES)}, not {stretch[:20]!r}")
    mask_names = _mask_names(_single(request, "mask"))
    show_sources = _flag(_single(request, "sources"), "sources")
    size_text = (_single(request, "size") or str(DEFAULT_SIZE)).strip()
    if not size_text.isdigit() or len(size_text) > 6 or not MIN_SIZE <= int(size_text) <= MAX_SIZE:
        raise UsageFault(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}, not {size_text[:20]!r}")
    info = await image_info(request)
    svc = image_service(request)
    body = await run_in_threadpool(lambda: svc.preview(info, stretch=stretch, mask_names=mask_names,
                                                       show_sources=show_sources, size=int(size_text)))
    return Response(body, media_type="image/png",
                    headers={"Content-Disposition": f'inline; filename="{_base_name(info)}.png"',
                             "Cache-Control": "public, max-age=86400"})


async def header_text(request: Request) -> Response:
    info = await image_info(request)
    body = await run_in_threadpool(image_service(request).header_text, info)
    return Response(body, media_type="text/plain; charset=us-ascii")


def routes() -> list[Route]:
    return [
        Route("/images/{visit:int}/{detector:int}.fits", fits_file, methods=["GET", "HEAD"]),
        Route("/images/{visit:int}/{detector:int}.png", png_preview, methods=["GET"]),
        Route("/images/{visit:int}/{detector:int}.header", header_text, methods=["GET"]),
    ]
