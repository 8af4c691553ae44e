"""Human-readable pages: the service root ``/`` and the TAP root ``/tap`` (TAP 1.1 2: the root
should be readable by people).

Both list only resources the running app really serves, found from its routes, so a protocol added
later appears here without editing this page. The markup is well-formed XML as well as HTML5.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from diavo.server.archive.model import DataModel
from diavo.server.urls import base_url

XHTML = "http://www.w3.org/1999/xhtml"

#: What each known resource is; other plain GET resources are listed under their path.
LABELS = {
    "/tap": "TAP 1.1 service: ADQL queries on the catalogues and the image metadata",
    "/tap/sync": "synchronous queries (GET or POST with LANG=ADQL and QUERY)",
    "/tap/async": "asynchronous queries (UWS 1.1 job list)",
    "/tap/capabilities": "what the TAP service supports (VOSI capabilities, TAPRegExt)",
    "/tap/tables": "tables and columns (VOSI tables)",
    "/tap/examples": "example queries, ready to run",
    "/tap/availability": "whether the service is up (VOSI availability)",
    "/sia": "SIA 2.0 image search",
    "/datalink/links": "DataLink: files and services for one data set",
}
TAP_PARTS = ("/tap/sync", "/tap/async", "/tap/capabilities", "/tap/tables", "/tap/examples",
             "/tap/availability")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def _page(title: str) -> tuple[ET.Element, ET.Element]:
    html = ET.Element("html", {"xmlns": XHTML, "lang": "en"})
    head = _sub(html, "head")
    _sub(head, "meta", charset="utf-8")
    _sub(head, "title", title)
    body = _sub(html, "body")
    _sub(body, "h1", title)
    return html, body


def _render(html: ET.Element) -> str:
    return "<!DOCTYPE html>\n" + ET.tostring(html, encoding="unicode") + "\n"


def served_paths(routes: list) -> Iterator[str]:
    """Paths of the app's GET resources without path parameters, mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            yield from (route.path + p for p in served_paths(route.routes))
        elif (isinstance(route, Route) and "{" not in route.path
              and (route.methods is None or "GET" in route.methods)):
            yield route.path


def _links(parent: ET.Element, base: str, paths: list[str]) -> None:
    """A list of links, each resource under the service (first path segment) it belongs to."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault("/" + path.strip("/").split("/")[0], []).append(path)
    ul = _sub(parent, "ul")
    for top, members in groups.items():
        li = _sub(ul, "li")
        if top in members:
            _link(li, base, top)
        else:
            li.text = top
        parts = [p for p in members if p != top]
        if parts:
            sub = _sub(li, "ul")
            for path in parts:
                _link(_sub(sub, "li"), base, path)


def _link(parent: ET.Element, base: str, path: str) -> None:
    a = _sub(parent, "a", base + path, href=base + path)
    label = LABELS.get(path)
    if label:
        a.tail = " \N{EN DASH} " + label


def _tables(parent: ET.Element, model: DataModel) -> None:
    for schema in model.schemas:
        _sub(parent, "h3", schema.name)
        if schema.description:
            _sub(parent, "p", schema.description)
        dl = _sub(parent, "dl")
        for table in schema.tables:
            _sub(dl, "dt", f"{table.qualified_name} ({len(table.columns)} columns)")
            _sub(dl, "dd", table.description or "(no description)")


def root_page(base: str, model: DataModel, paths: list[str]) -> str:
    html, body = _page("diavo")
    _sub(body, "p", "diavo is an astronomical data service for Rubin-style difference imaging: "
                    "the difference images of an archive, the sources detected on them (DiaSource) "
                    "and the objects those detections are associated with (DiaObject). It speaks "
                    "the IVOA protocols, so TOPCAT, pyvo, astroquery and other Virtual "
                    "Observatory clients can use it directly.")
    _sub(body, "h2", "Services")
    _links(body, base, [p for p in paths if p.strip("/") and p != "/tap/"])
    if "/tap" in paths:
        _sub(body, "p", "From Python: ")
        _sub(body[-1], "code", f'pyvo.dal.TAPService("{base}/tap").search("SELECT TOP 10 * FROM '
                                'ivoa.ObsCore")')
    _sub(body, "h2", "What the archive holds")
    _tables(body, model)
    return _render(html)


def tap_page(base: str, model: DataModel, paths: list[str]) -> str:
    tap = base + "/tap"
    html, body = _page("diavo TAP service")
    p = _sub(body, "p", "A TAP 1.1 service: send ADQL queries about the archive's catalogues and "
                        "image metadata to ")
    _sub(p, "code", tap).tail = (" with a TAP client (TOPCAT, pyvo, astroquery), or as HTTP "
                                  "requests with the parameters LANG=ADQL and QUERY.")
    ul = _sub(body, "ul")
    for path in TAP_PARTS:
        if path in paths:
            _link(_sub(ul, "li"), base, path)
    home = _sub(body, "p", "Back to ")
    _sub(home, "a", "the service root", href=base + "/")
    _sub(body, "h2", "Tables")
    _tables(body, model)
    return _render(html)


async def root(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    paths = list(dict.fromkeys(served_paths(request.app.routes)))
    return HTMLResponse(root_page(base_url(request, ctx.settings), ctx.model, paths))


async def tap_root(request: Request) -> HTMLResponse:
    ctx = request.app.state.ctx
    paths = list(dict.fromkeys(served_paths(request.app.routes)))
    return HTMLResponse(tap_page(base_url(request, ctx.settings), ctx.model, paths))


def routes() -> list[Route]:
    return [
        Route("/tap", tap_root, methods=["GET"]),
        Route("/tap/", tap_root, methods=["GET"]),
    ]
