"""DataLink 1.1 {links} at /datalink/links (GET and POST, DALI-sync).

For each ID (repeatable; duplicates answered once) the response lists, in consecutive rows:

    #this             the whole LSST-style FITS file (exact content_length)
    #cutout           the SODA sync service, through a per-image service descriptor
    #preview          a PNG with mask planes tinted and DiaSources ringed
    #thumbnail        a 256-pixel PNG
    #detached-header  every FITS header of the file as text
    #derivation       a TAP query for the DiaSources detected on the image

An ID that is not one of ours gets one ``#this`` row with an error message starting with
UsageFault; a well-formed one naming no image, NotFoundFault (DataLink 1.1 §3.4). No ID at all is
a normal, empty answer (§2.1.1) carrying a self-description of this endpoint. MAXREC limits the
rows without ever splitting an ID's links; the service also stops after MAX_IDS identifiers; both
are flagged with QUERY_STATUS=OVERFLOW. RESPONSEFORMAT may be absent, ``votable`` or a VOTable
MIME type; the links are always TABLEDATA.

The SODA descriptors take ID from the links table (``ref`` to the ID field), so a client that
picks any descriptor, as pyvo's ``processed()`` does, still cuts the right image; each carries
that image's own ranges (VALUES) for CIRCLE, POLYGON, BAND and TIME.
"""
from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from diavo.server.archive.images.access import ImageNotFound
from diavo.server.archive.images.service import FITS_TYPE, BadIdentifier, ImageInfo, ImageService
from diavo.server.archive.obscore import TAI_MINUS_UTC_DAYS, great_circle_deg
from diavo.server.errors import DaliError, UsageFault
from diavo.server.output import xml
from diavo.server.output.descriptors import DATALINK_TYPE, LINKS_ID, SODA_SYNC_ID, param
from diavo.server.output.votable import VOTABLE_NS, VOTABLE_VERSION, XSI_NS
from diavo.server.params import read_params
from diavo.server.protocols.images import image_service
from diavo.server.urls import base_url
from diavo.shared.bands import EM_RANGE_M
from diavo.shared.camera import detector_layout

VOTABLE_TYPE = "application/x-votable+xml"
#: Identifiers answered per request; more are cut off with an OVERFLOW marker.
MAX_IDS = 1000
#: Side of the thumbnail preview, pixels.
THUMBNAIL_SIZE = 256
#: XML ID of the links table's ID field, the ``ref`` of every descriptor's ID parameter.
ID_REF = "dlID"
_VOTABLE_FORMATS = {"votable", "application/x-votable+xml", "text/xml", "votable/td", "votabletd"}

#: (name, datatype, arraysize, unit, ucd, description) of the links table's fields.
FIELDS = [
    ("ID", "char", "*", None, "meta.id;meta.main", "Input identifier"),
    ("access_url", "char", "*", None, "meta.ref.url", "Link to data or service"),
    ("service_def", "char", "*", None, "meta.ref", "Reference to a service descriptor in this document"),
    ("error_message", "char", "*", None, "meta.code.error", "Why no link could be made"),
    ("description", "char", "*", None, "meta.note", "What the link gives"),
    ("semantics", "char", "*", None, "meta.code", "Term from http://www.ivoa.net/rdf/datalink/core"),
    ("content_type", "char", "*", None, "meta.code.mime", "MIME type of what the link returns"),
    ("content_length", "long", None, "byte", "phys.size;meta.file", "Size of what the link returns"),
    ("content_qualifier", "char", "*", None, "meta.code.class",
     "Product type (http://www.ivoa.net/rdf/product-type) of what the link returns"),
    ("local_semantics", "char", "*", None, "meta.id.assoc", "Same value for the same kind of link of every image"),
    ("link_auth", "char", "*", None, "meta.code", "Whether the link needs authentication: false, optional or true"),
    ("link_authorized", "boolean", None, None, "meta.code", "Whether this caller may use the link"),
]
_NAMES = [f[0] for f in FIELDS]


# ------------------------------------------------------------------------------------ XML bits
def ascii_id(value: str) -> str:
    """The ID as echoed in a ``char`` column: printable ASCII kept, anything else percent-encoded
    as UTF-8 (the IRI-to-URI mapping), so what we echo is still the client's identifier."""
    return "".join(ch if " " <= ch <= "~" else quote(ch, safe="") for ch in value)


def _num(x: float) -> str:
    return repr(float(x))


# ------------------------------------------------------------------------------- the links
def _rows_for(info: ImageInfo, svc: ImageService, base: str, sd_id: str, auth: tuple) -> list[dict]:
    v, d = info.visit, info.detector
    img = f"{base}/images/{v}/{d}"
    det = detector_layout(d).name
    what = f"visit {v}, detector {d} ({det}), band {info.spec.band}"
    adql = f"SELECT * FROM dp1.DiaSource WHERE visit = {v} AND detector = {d}"
    tap = f"{base}/tap/sync?" + urlencode({"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql})
    link_auth, authorized = auth
    common = {"ID": info.ident, "link_auth": link_auth, "link_authorized": authorized}
    return [
        {**common, "semantics": "#this", "access_url": img + ".fits", "content_type": FITS_TYPE,
         "content_length": svc.fits_size(info), "content_qualifier": "#image", "local_semantics": "image",
         "description": f"Difference image, {what}: LSST-style FITS with IMAGE (nJy), MASK and VARIANCE"},
        {**common, "semantics": "#cutout", "service_def": sd_id, "content_type": FITS_TYPE,
         "content_qualifier": "#image", "local_semantics": "cutout",
         "description": "SODA cut-out of all three planes to a CIRCLE, POLYGON, POS or PIXEL region"},
        {**common, "semantics": "#preview", "access_url": img + ".png?stretch=asinh&mask=1&sources=1",
         "content_type": "image/png", "local_semantics": "preview",
         "description": "PNG preview (asinh stretch, mask planes tinted, DiaSources ringed: red brighter, "
                        "blue fainter than the template)"},
        {**common, "semantics": "#thumbnail", "access_url": f"{img}.png?size={THUMBNAIL_SIZE}",
         "content_type": "image/png", "local_semantics": "thumbnail",
         "description": f"{THUMBNAIL_SIZE}-pixel PNG thumbnail"},
        {**common, "semantics": "#detached-header", "access_url": img + ".header",
         "content_type": "text/plain", "local_semantics": "header",
         "description": "Headers of the FITS file (primary, IMAGE, MASK, VARIANCE) as text"},
        {**common, "semantics": "#derivation", "access_url": tap, "content_type": VOTABLE_TYPE,
         "content_qualifier": "#measurements", "local_semantics": "diasources",
         "description": "DiaSources detected on this difference image (TAP query on dp1.DiaSource)"},
    ]


def _error_row(ident: str, message: str) -> dict:
    return {"ID": ascii_id(ident), "semantics": "#this", "error_message": message}


def _soda_descriptor(info: ImageInfo, base: str, sd_id: str) -> str:
    spec = info.spec
    cra, cdec = spec.pixel_to_sky((spec.width - 1) / 2, (spec.height - 1) / 2)
    kra, kdec = spec.corners_sky()
    radius = float(max(great_circle_deg(cra, cdec, kra, kdec)))
    circle = " ".join(_num(x) for x in (float(cra), float(cdec), radius))
    polygon = " ".join(f"{_num(a)} {_num(b)}" for a, b in zip(kra, kdec, strict=False))
    em_lo, em_hi = EM_RANGE_M[spec.band]
    t_lo = spec.obs_start_mjd_tai - TAI_MINUS_UTC_DAYS
    t_hi = t_lo + spec.exp_time / 86400.0
    sync = f"{base}/soda/sync"
    example = f"{sync}?" + urlencode({"ID": info.ident, "CIRCLE": f"{float(cra):.6f} {float(cdec):.6f} 0.005"})
    return (
        f'<RESOURCE type="meta" utype="adhoc:service" ID="{sd_id}" '
        f'name="soda-cutout-{info.visit}-{info.detector}">\n'
        f"<DESCRIPTION>Cut-outs of {xml.attr(info.ident)}: a FITS file with IMAGE, MASK and VARIANCE cut to the "
        "bounding box of the region on the CCD, with a WCS that keeps sky positions exact and LTV1/LTV2 "
        "giving the offset in the parent CCD. One region parameter per request.</DESCRIPTION>\n"
        + param("standardID", SODA_SYNC_ID)
        + param("accessURL", sync, ucd="meta.ref.url")
        + param("contentType", FITS_TYPE)
        + param("exampleURL", example, description="A 36 arcsec cut-out around the image centre")
        + '<GROUP name="inputParams">\n'
        + param("ID", "", ucd="meta.ref.url;meta.curation", ref=ID_REF,
                 description="The publisher DID of the dataset of interest")
        + param("CIRCLE", "", datatype="double", arraysize="3", unit="deg", ucd="pos.outline;obs",
                 xtype="circle", description="A circle (ra dec radius, ICRS degrees) the cut-out covers",
                 values=f'<VALUES><MAX value="{circle}"/></VALUES>')
        + param("POLYGON", "", datatype="double", arraysize="*", unit="deg", ucd="pos.outline;obs",
                 xtype="polygon", description="A polygon (ra dec pairs, ICRS degrees) the cut-out covers",
                 values=f'<VALUES><MAX value="{polygon}"/></VALUES>')
        + param("POS", "", ucd="pos.outline;obs",
                 description="CIRCLE ra dec r, RANGE ra1 ra2 dec1 dec2 or POLYGON ra dec ... (ICRS degrees)")
        + param("PIXEL", "", datatype="int", arraysize="4", unit="pix",
                 description="diavo extension: xmin xmax ymin ymax, zero-based inclusive pixel indices of "
                             f"the parent CCD (the frame of DiaSource x, y); 0 {spec.width - 1} 0 "
                             f"{spec.height - 1} is the whole CCD")
        + param("BAND", "", datatype="double", arraysize="2", unit="m", ucd="em.wl;stat.interval",
                 xtype="interval", description="Wavelength interval; the image is cut only spatially, "
                 "so this selects all of it or nothing",
                 values=f'<VALUES><MIN value="{_num(em_lo)}"/><MAX value="{_num(em_hi)}"/></VALUES>')
        + param("TIME", "", datatype="double", arraysize="2", unit="d", ucd="time.interval;obs.exposure",
                 xtype="interval", description="Time interval (MJD, UTC); selects all of the image or nothing",
                 values=f'<VALUES><MIN value="{_num(t_lo)}"/><MAX value="{_num(t_hi)}"/></VALUES>')
        + "</GROUP>\n</RESOURCE>\n"
    )


def _self_descriptor(base: str) -> str:
    return (
        '<RESOURCE type="meta" utype="adhoc:this" name="links">\n'
        "<DESCRIPTION>This DataLink service: give one or more ID values (publisher DIDs of "
        "difference images, as in ivoa.ObsCore obs_publisher_did).</DESCRIPTION>\n"
        + param("standardID", LINKS_ID)
        + param("accessURL", f"{base}/datalink/links", ucd="meta.ref.url")
        + param("contentType", DATALINK_TYPE)
        + '<GROUP name="inputParams">\n'
        + param("ID", "", ucd="meta.id;meta.main", description="Publisher DID of a difference image")
        + "</GROUP>\n</RESOURCE>\n"
    )


def _cell(name: str, value) -> str:
    if value is None or value == "":
        return "<TD/>"
    if name == "link_authorized":
        return "<TD>T</TD>" if value else "<TD>F</TD>"
    return f"<TD>{xml.attr(value)}</TD>"


def links_document(svc: ImageService, ids: list[str], base: str, maxrec: int | None,
                   auth: tuple[str, bool]) -> bytes:
    """The whole {links} VOTable for ``ids`` (already de-duplicated, in request order)."""
    rows: list[dict] = []
    descriptors: list[str] = []
    overflow = len(ids) > MAX_IDS
    for ident in ids[:MAX_IDS]:
        sd_id = f"soda-{len(descriptors) + 1}"
        try:
            info = svc.resolve(ident)
            block = _rows_for(info, svc, base, sd_id, auth)
        except BadIdentifier as exc:
            info, block = None, [_error_row(ident, f"UsageFault: {exc}")]
        except ImageNotFound as exc:
            info, block = None, [_error_row(ident, f"NotFoundFault: {exc.args[0]}: {ascii_id(ident)[:300]}")]
        if maxrec is not None and len(rows) + len(block) > maxrec:
            overflow = True
            break
        rows += block
        if info is not None:
            descriptors.append(_soda_descriptor(info, base, sd_id))
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<VOTABLE version="{VOTABLE_VERSION}" xmlns="{VOTABLE_NS}" xmlns:xsi="{XSI_NS}" '
        f'xsi:schemaLocation="{VOTABLE_NS} http://www.ivoa.net/xml/VOTable/VOTable-{VOTABLE_VERSION}.xsd">\n',
        '<RESOURCE type="results">\n<INFO name="QUERY_STATUS" value="OK"/>\n',
        f'<INFO name="standardID" value="{LINKS_ID}"/>\n<TABLE>\n',
    ]
    for name, datatype, arraysize, unit, ucd, desc in FIELDS:
        attrs = f'name="{name}" datatype="{datatype}"'
        if name == "ID":
            attrs += f' ID="{ID_REF}"'
        if arraysize:
            attrs += f' arraysize="{arraysize}"'
        if unit:
            attrs += f' unit="{unit}"'
        attrs += f' ucd="{ucd}"'
        out.append(f"<FIELD {attrs}><DESCRIPTION>{xml.attr(desc)}</DESCRIPTION></FIELD>\n")
    out.append("<DATA><TABLEDATA>\n")
    for row in rows:
        out.append("<TR>" + "".join(_cell(n, row.get(n)) for n in _NAMES) + "</TR>\n")
    out.append("</TABLEDATA></DATA>\n</TABLE>\n")
    if overflow:
        out.append('<INFO name="QUERY_STATUS" value="OVERFLOW"/>\n')
    out.append("</RESOURCE>\n")
    out += descriptors
    if not ids:
        out.append(_self_descriptor(base))
    out.append("</VOTABLE>\n")
    return "".join(out).encode("utf-8")


# --------------------------------------------------------------------------------- the route
def _content_type(params) -> str:
    """DataLink §2.1.2: no RESPONSEFORMAT, ``votable`` or a VOTable MIME type, all TABLEDATA."""
    value = params.get("RESPONSEFORMAT")
    if value is None or not value.strip():
        return DATALINK_TYPE
    base = value.split(";")[0].strip().lower()
    extra = {p.split("=")[0].strip().lower(): p.partition("=")[2].strip().lower()
             for p in value.split(";")[1:] if p.strip()}
    if base in _VOTABLE_FORMATS and extra.get("serialization", "tabledata") in ("tabledata", "td"):
        # The client's MIME type, rebuilt from what we understood (never its raw text).
        if base == "text/xml":
            return "text/xml"
        return DATALINK_TYPE if extra.get("content") == "datalink" else VOTABLE_TYPE
    raise UsageFault(f"RESPONSEFORMAT {value[:60]!r} is not supported; the links are "
                     "written as VOTable (TABLEDATA): leave it out or use 'votable'")


def _maxrec(params) -> int | None:
    value = params.get("MAXREC")
    if value is None or not value.strip():
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
        raise UsageFault(f"MAXREC must be a non-negative integer, not {value[:30]!r}")
    return int(value)


async def links(request: Request) -> Response:
    ctx = request.app.state.ctx
    try:
        params = await read_params(request, ctx.settings.upload_max_bytes)
        ctype = _content_type(params)
        maxrec = _maxrec(params)
    except DaliError as exc:  # DataLink §3.4: every message starts with its fault's name
        raise type(exc)(exc.prefixed(), exc.status) from None
    ids = list(dict.fromkeys(params.getall("ID")))
    svc = image_service(request)
    base = base_url(request, ctx.settings)
    if ctx.settings.auth_required:
        auth = ("true", getattr(request.state, "owner", None) is not None)
    else:
        auth = ("false", True)
    body = await run_in_threadpool(links_document, svc, ids, base, maxrec, auth)
    return Response(body, media_type=ctype)


def routes() -> list[Route]:
    return [Route("/datalink/links", links, methods=["GET", "POST"])]


