"""The page at ``/`` and its files: ``static/index.html`` filled with what only the server knows
(output formats, mask planes, the services it runs, the archive's tables), our own scripts and
styles under ``/ui/static/``, and plotly.js from the installed ``plotly`` package.

The page is well-formed XHTML as well as HTML5 (it is parsed and filled as XML), so machines can
read its service links as they read the rest of the service's documents.
"""
from __future__ import annotations

import importlib.util
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from diavo.server.errors import NotFound
from diavo.server.output.formats import FORMATS
from diavo.server.protocols import landing
from diavo.server.urls import base_url
from diavo.shared.masks import MASK_COLORS, MASK_PLANES

STATIC = Path(__file__).parent / "static"
_VOID_END = re.compile(r"></(?:area|base|br|col|embed|hr|img|input|link|meta|source|track|wbr)>")
XHTML = landing.XHTML
#: Our files are named by content version (``?v=``), so browsers may keep them for a day.
CACHE = "public, max-age=86400"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

@lru_cache(maxsize=1)
def _template() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def _by_id(root: ET.Element, ident: str) -> ET.Element:
    for el in root.iter():
        if el.get("id") == ident:
            return el
    raise KeyError(ident)


def render(base: str, model, paths: list[str], version: str) -> str:
    # parsed without its namespace, as landing's pages are built, and given it back as an attribute
    text = _template().split("\n", 1)[1].replace(f' xmlns="{XHTML}"', "", 1)  # after the DOCTYPE line
    root = ET.fromstring(text)
    root.set("xmlns", XHTML)
    for el in root.iter():
        for attr in ("href", "src"):
            value = el.get(attr)
            if value and value.startswith("ui/"):
                el.set(attr, f"{base}/{value}?v={version}")
    select = _by_id(root, "format")
    for fmt in FORMATS:
        option = ET.SubElement(select, "option", {"value": fmt.key})
        option.text = fmt.key
        if fmt.key == "json":
            option.set("selected", "selected")
            option.text = "json: show in the page"
    planes = _by_id(root, "preview-planes")
    planes.set("data-planes", ",".join(f"{name}:{MASK_COLORS.get(name, 'red')}" for name in MASK_PLANES))
    about = _by_id(root, "services")
    landing._links(about, base, [p for p in paths if p.strip("/") and p != "/tap/"])
    landing._tables(_by_id(root, "archive"), model)
    root.set("data-base", base)
    # every element closed explicitly (an HTML parser does not close <div/>), but void ones as <x/>
    text = ET.tostring(root, encoding="unicode", short_empty_elements=False)
    return "<!DOCTYPE html>\n" + _VOID_END.sub(" />", text) + "\n"


async def page(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    paths = list(dict.fromkeys(landing.served_paths(request.app.routes)))
    return HTMLResponse(render(base_url(request, ctx.settings), ctx.model, paths, _version()))


@lru_cache(maxsize=1)
def _version() -> str:
    """Changes when any of our files changes: a new release is never served from a stale cache."""
    newest = max(p.stat().st_mtime_ns for p in STATIC.iterdir())
    return format(newest % (1 << 40), "x")


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in TYPES}
    path = files.get(name)
    if path is None:
        raise NotFound(f"no such file of the page: {name[:60]!r}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": CACHE})


@lru_cache(maxsize=1)
def _plotly() -> Path | None:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


async def plotly(request: Request) -> Response:
    path = _plotly()
    if path is None:
        raise NotFound("plots need the plotly package installed beside the server (pip install plotly)")
    return FileResponse(path, media_type=TYPES[".js"], headers={"Cache-Control": CACHE})


def routes() -> list[Route]:
    from diavo.server.web.check import check

    return [
        Route("/", page, methods=["GET"]),
        Route("/ui/static/{name}", static, methods=["GET"]),
        Route("/ui/vendor/plotly.min.js", plotly, methods=["GET"]),
        Route("/ui/check", check, methods=["GET", "POST"]),
    ]
