"""/tap/examples: runnable ADQL examples as an XHTML page marked up for machines (DALI 1.1 2.3).

Each example is an element with ``typeof="example"``, an ``id`` and ``resource="#id"``, a
``property="name"`` heading, one ``property="query"`` element holding the query as plain text and
``property="table"`` elements naming the tables it reads (TAP 1.1 2.6). taplint runs every query,
and so does the test suite, against a real archive.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from diavo.server.urls import tap_url

XHTML = "http://www.w3.org/1999/xhtml"
VOCAB = "http://www.ivoa.net/rdf/examples#"
#: Served as HTML so browsers render it; the markup is also well-formed XML, which DALI requires.
MEDIA_TYPE = "text/html"


@dataclass(frozen=True)
class Example:
    id: str
    name: str
    text: str
    query: str
    tables: tuple[str, ...]


EXAMPLES: tuple[Example, ...] = (
    Example(
        id="sources-on-one-image",
        name="Detections on one difference image",
        text="A difference image is identified by its visit and detector. This lists what the "
             "pipeline detected on the image of visit 2024110800246, detector 2, with positions "
             "and PSF fluxes (negative fluxes are sources that faded since the template).",
        query="""SELECT diaSourceId, ra, dec, band, midpointMjdTai,
       psfFlux, psfFluxErr, snr
FROM dp1.DiaSource
WHERE visit = 2024110800246 AND detector = 2
ORDER BY diaSourceId""",
        tables=("dp1.DiaSource",),
    ),
    Example(
        id="images-covering-a-position",
        name="Difference images covering a position in one band and night",
        text="ObsCore describes every difference image with its footprint (s_region), its "
             "exposure interval in MJD (t_min, t_max) and a DataLink URL (access_url, with access_format "
             "saying so, which lights up TOPCAT's DataLink actions). This finds "
             "the r-band difference images whose footprint holds a given position and that were "
             "taken on 2024-11-09 (UTC), i.e. between MJD 60623 and 60624.",
        query="""SELECT obs_id, obs_publisher_did, lsst_visit, lsst_detector, t_min, t_max,
       access_url, access_format, s_region
FROM ivoa.ObsCore
WHERE dataproduct_subtype = 'lsst.difference_image'
  AND calib_level = 3
  AND lsst_band = 'r'
  AND CONTAINS(POINT('ICRS', 53.125, -27.740), s_region) = 1
  AND t_min >= 60623.0 AND t_max < 60624.0
ORDER BY t_min""",
        tables=("ivoa.ObsCore",),
    ),
    Example(
        id="cone-search",
        name="Cone search on the detections",
        text="All detections within 0.05 degrees (3 arcminutes) of a position, nearest first. "
             "CONTAINS with a CIRCLE selects the cone; DISTANCE gives the separation in degrees.",
        query="""SELECT diaSourceId, diaObjectId, ra, dec, band, midpointMjdTai, psfFlux,
       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 53.125, -27.740)) AS dist
FROM dp1.DiaSource
WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 53.125, -27.740, 0.05)) = 1
ORDER BY dist""",
        tables=("dp1.DiaSource",),
    ),
    Example(
        id="sources-per-band",
        name="How many detections per band",
        text="An aggregate over the whole detection table: the number of detections in each "
             "band, their mean signal-to-noise ratio and the MJD range they span.",
        query="""SELECT band, COUNT(*) AS n_sources, AVG(snr) AS mean_snr,
       MIN(midpointMjdTai) AS first_mjd, MAX(midpointMjdTai) AS last_mjd
FROM dp1.DiaSource
GROUP BY band
ORDER BY band""",
        tables=("dp1.DiaSource",),
    ),
    Example(
        id="list-tables",
        name="Which tables there are",
        text="TAP_SCHEMA describes the service's own tables and columns and can be queried like "
             "any other schema. This lists every table with its description.",
        query="""SELECT schema_name, table_name, table_type, description
FROM TAP_SCHEMA.tables
ORDER BY schema_name, table_name""",
        tables=("TAP_SCHEMA.tables",),
    ),
)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    el.text = text
    return el


def examples_document(tap: str, examples: tuple[Example, ...] = EXAMPLES) -> bytes:
    """The page; ``tap`` is the service's absolute URL, used for the links back to it."""
    html = ET.Element("html", {"xmlns": XHTML, "lang": "en"})
    head = _sub(html, "head")
    _sub(head, "meta", charset="utf-8")
    _sub(head, "title", "diavo TAP examples")
    body = _sub(html, "body")
    _sub(body, "h1", "Example queries")
    intro = _sub(body, "p", "ADQL queries to send to the TAP service at ")
    _sub(intro, "a", tap, href=tap).tail = (
        " (LANG=ADQL). Each runs as it stands; change the positions, times and identifiers to "
        "explore. Table and column descriptions are at "
    )
    _sub(intro, "a", tap + "/tables", href=tap + "/tables").tail = "."
    container = _sub(body, "div", vocab=VOCAB)
    for ex in examples:
        div = _sub(container, "div", id=ex.id, resource="#" + ex.id, typeof="example")
        _sub(div, "h2", ex.name, property="name")
        _sub(div, "p", ex.text)
        tables = _sub(div, "p", "Tables: ")
        for i, name in enumerate(ex.tables):
            span = _sub(tables, "span", name, property="table")
            span.tail = ", " if i < len(ex.tables) - 1 else None
        _sub(div, "pre", ex.query, property="query")
    return b"<!DOCTYPE html>\n" + ET.tostring(html, encoding="utf-8", xml_declaration=False) + b"\n"


async def examples(request: Request) -> Response:
    ctx = request.app.state.ctx
    return Response(examples_document(tap_url(request, ctx.settings)), media_type=MEDIA_TYPE)


def routes() -> list[Route]:
    return [Route("/tap/examples", examples, methods=["GET"])]
