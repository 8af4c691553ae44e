"""SIA 2.0: /sia/query (DALI-sync, GET and POST), /sia/capabilities and /sia/availability.

A query's parameters become one ADQL query on ivoa.ObsCore (query/sia.py), which runs through
the TAP service's own path: the ADQL translator, the engine, the access-URL rewriting to the
public base URL and the streaming writers. VOTable responses end with the self-describing
``<RESOURCE type="meta" utype="adhoc:service" name="this">`` of SIA 2.0 §3.1.2 (pyvo#520), with
the values of the enumerated parameters read once from the archive.
"""
from __future__ import annotations

import io
import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from diavo.server.adql.errors import ADQLError
from diavo.server.engine.base import Cancel, EngineError, Limits, QueryAborted, QueryTimeout
from diavo.server.errors import DaliError, FatalFault, TransientFault, UsageFault
from diavo.server.output import descriptors, xml
from diavo.server.params import read_params
from diavo.server.protocols import vosi
from diavo.server.protocols.streaming import stream_body
from diavo.server.query import sia as q
from diavo.server.urls import base_url

log = logging.getLogger("diavo.sia")

PREFIX = "/sia"


# --- capabilities and availability ------------------------------------------------------------

def capabilities_document(settings, base: str) -> bytes:
    """VOSI capabilities of the SIA service at ``base``/sia (SIA 2.0 §2.3)."""
    from vo_models.vodataservice.models import ParamHTTP
    from vo_models.voresource.models import Capability, SecurityMethod

    docs = vosi.documents()
    root = base + PREFIX
    security = [SecurityMethod(standard_id=docs.TOKEN_SECURITY)] if settings.auth_required else []
    query = Capability(standard_id=q.STANDARD_ID, interface=[ParamHTTP(  # type: ignore[arg-type]  # pydantic makes the AnyUrl
        role="std", version="2.0", access_url=[docs.URL(value=root + "/query", use="full")],
        security_method=security)])
    return docs.service_capabilities(query, root)


async def capabilities(request: Request) -> Response:
    ctx = request.app.state.ctx
    base = base_url(request, ctx.settings)
    body = vosi.cached(request, ("sia-capabilities", base), lambda: capabilities_document(ctx.settings, base))
    return Response(body, media_type=vosi.XML_TYPE, headers=vosi.headers(ctx))


async def availability(request: Request) -> Response:
    ctx = request.app.state.ctx
    body = vosi.documents().availability_document(ctx.settings, getattr(ctx, "started", None))
    return Response(body, media_type=vosi.XML_TYPE, headers={"Cache-Control": "no-cache"})


# --- the service descriptor -------------------------------------------------------------------

#: (name, datatype, arraysize, xtype, unit, description) of every input parameter. SIA 2.0's own
#: example declares POS three times with xtypes circle/range/polygon on char values and intervals
#: with arraysize "*"; DALI 1.1 (and votlint) want those xtypes only on arrays of 3, 2 and "*"
#: floating values, so POS is one char parameter described in words, and intervals are
#: arraysize 2 (a single number still means [v, v]).
INPUT_PARAMS = (
    ("POS", "char", "*", None, "deg",
     "CIRCLE lon lat radius | RANGE lon1 lon2 lat1 lat2 (-Inf/+Inf allowed) | POLYGON lon1 lat1 ... "
     "(3 to 100 vertices), ICRS degrees: footprints (s_region) meeting the shape"),
    ("BAND", "double", "2", "interval", "m", "wavelength interval meeting [em_min, em_max]"),
    ("TIME", "double", "2", "interval", "d", "MJD (UTC) interval meeting [t_min, t_max]"),
    ("POL", "char", "*", None, None, "polarization state in pol_states"),
    ("FOV", "double", "2", "interval", "deg", "interval containing s_fov"),
    ("SPATRES", "double", "2", "interval", "arcsec", "interval containing s_resolution"),
    ("EXPTIME", "double", "2", "interval", "s", "interval containing t_exptime"),
    ("TIMERES", "double", "2", "interval", "s", "interval containing t_resolution"),
    ("SPECRP", "double", "2", "interval", None, "interval containing em_res_power"),
    ("ID", "char", "*", None, None, "obs_publisher_did (case-insensitive)"),
    ("COLLECTION", "char", "*", None, None, "obs_collection"),
    ("FACILITY", "char", "*", None, None, "facility_name"),
    ("INSTRUMENT", "char", "*", None, None, "instrument_name"),
    ("DPTYPE", "char", "*", None, None, "dataproduct_type"),
    ("CALIB", "int", None, None, None, "calib_level"),
    ("TARGET", "char", "*", None, None, "target_name"),
    ("FORMAT", "char", "*", None, None, "access_format"),
    ("VISIT", "long", None, None, None, "Rubin visit id (lsst_visit)"),
    ("DETECTOR", "int", None, None, None, "Rubin detector number (lsst_detector)"),
    ("LSST_BAND", "char", "*", None, None, "Rubin band name (lsst_band)"),
    ("MAXREC", "int", None, None, None, "most rows to return (0: metadata only)"),
    ("RESPONSEFORMAT", "char", "*", None, None, "output format (DALI); VOTable by default"),
)
#: Parameters whose possible values are listed (SIA 2.0 §2.1.20), and the column holding them.
ENUMERATED = {"COLLECTION": "obs_collection", "FACILITY": "facility_name", "INSTRUMENT": "instrument_name",
              "DPTYPE": "dataproduct_type", "CALIB": "calib_level", "TARGET": "target_name",
              "FORMAT": "access_format", "LSST_BAND": "lsst_band"}
_OPTIONS_LIMIT = 100


def read_options(ctx) -> dict[str, list[str]]:
    """Distinct values of the enumerated columns, through the ordinary ADQL path."""
    out: dict[str, list[str]] = {}
    for name, col in ENUMERATED.items():
        adql = (f"SELECT DISTINCT {col} FROM {q.TABLE} WHERE {col} IS NOT NULL ORDER BY {col}")
        result = ctx.queries.run(adql, Limits(maxrec=_OPTIONS_LIMIT, timeout_s=30))
        if not result.overflow:
            out[name] = [str(v) for v in result.table.column(0).to_pylist()]
    return out


def options(state) -> dict[str, list[str]]:
    """The enumerated values, read on first use and kept on the app state (the archive is
    read-only; two first requests at once both read them, harmlessly). The first use also
    parses every footprint (warm_footprints), in the request, so that no background work can
    outlive the service."""
    cached = getattr(state, "sia_options", None)
    if cached is None:
        try:
            cached = read_options(state.ctx)
        except (EngineError, ADQLError) as exc:  # a descriptor without lists is still valid
            log.warning("could not list SIA parameter values: %s", exc)
            cached = {}
        warm_footprints(state.ctx)
        state.sia_options = cached
    return cached


#: Caps of 60 degrees about the six axes cover the sphere (no point is more than 54.7 degrees from
#: the nearest axis), and each is small enough for the translator's s_region fast path.
WARM_CAPS = ((0.0, 90.0), (0.0, -90.0), (0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (270.0, 0.0))


def warm_footprints(ctx) -> None:
    """Have the s_region fast path parse every footprint once (its cache keeps them), so POS
    queries do not pay for parsing later; skipped when ObsCore has more rows than the cache."""
    from diavo.server.adql.geometry import REGION_CACHE_SIZE

    try:
        result = ctx.queries.run(f"SELECT COUNT(*) FROM {q.TABLE}", Limits(maxrec=1, timeout_s=60))
        n = result.table.column(0)[0].as_py()
        if n > REGION_CACHE_SIZE:
            return
        started = time.perf_counter()
        for ra, dec in WARM_CAPS:
            ctx.queries.run(f"SELECT COUNT(*) FROM {q.TABLE} WHERE INTERSECTS(CIRCLE({ra}, {dec}, 60.0), s_region) = 1",
                            Limits(maxrec=1, timeout_s=300))
        log.info("SIA: %d footprints parsed in %.1f s", n, time.perf_counter() - started)
    except (EngineError, ADQLError) as exc:  # only a speed-up
        log.warning("SIA: footprint warm-up stopped: %s", exc)


def service_descriptor(access_url: str, values: dict[str, list[str]]) -> str:
    """SIA 2.0 §3.1.2: this service and its input parameters, as a DataLink-style descriptor."""
    inputs = []
    for name, datatype, arraysize, xtype, unit, text in INPUT_PARAMS:
        options = "".join(f'<OPTION value="{xml.attr(v)}"/>' for v in values.get(name) or ())
        inputs.append(descriptors.param(name, "", datatype=datatype, arraysize=arraysize, xtype=xtype,
                                        unit=unit, description=text,
                                        values=f"<VALUES>{options}</VALUES>" if options else ""))
    return descriptors.service(
        standard_id=q.STANDARD_ID, access_url=access_url, name="this", inputs=inputs,
        description="SIA 2.0 query service: repeats of one parameter are ORed, different parameters ANDed")


# --- the query --------------------------------------------------------------------------------

#: Results up to this many rows are written before the response starts (one Content-Length
#: response, no writer thread, and a failure while reading them is still an HTTP error);
#: larger ones stream.
SMALL_ROWS = 5000


class _Replay:
    """A result stream whose first batches were already read: those, then the rest."""

    def __init__(self, stream, head: list, rest) -> None:
        self._stream, self._head, self._rest = stream, head, rest

    columns = property(lambda self: self._stream.columns)
    resources = property(lambda self: self._stream.resources)
    schema = property(lambda self: self._stream.schema)
    overflow = property(lambda self: self._stream.overflow)

    def __iter__(self):
        yield from self._head
        if self._rest is not None:
            yield from self._rest

    def close(self) -> None:
        self._stream.close()


def _plain_errors(fmt) -> bool:
    """SIA 2.0 §3.2: errors of csv/tsv requests are text/plain."""
    return getattr(fmt, "key", "") in ("csv", "tsv")


def _prepare(ctx, params, base: str):
    """Validated SIA request and the TAP request that runs its ADQL."""
    from diavo.server.query.tap import TapRequest

    sia = q.parse_request(params, ctx.settings)
    req = TapRequest(query=sia.adql, lang="ADQL", maxrec=sia.maxrec, fmt=sia.fmt,
                     content_type=sia.content_type, base_url=base)
    try:
        req.compiled = ctx.queries.translate(sia.adql)
    except ADQLError as exc:  # our own text failed the translator: a bug, not the client's fault
        log.error("SIA built invalid ADQL %r: %s", sia.adql, exc)
        raise FatalFault(f"the query could not be translated: {exc}") from None
    return sia, req


def _execute(state, params, base: str, cancel: Cancel):
    """In a worker thread: validate, translate, start the query and read up to SMALL_ROWS rows.
    Returns (request, body) when the whole response is written, else (request, stream) to
    stream the rest."""
    ctx = state.ctx
    sia, req = _prepare(ctx, params, base)
    stream = None
    try:
        stream = ctx.tap.open(req, ctx.settings.sync_timeout_s, cancel)
        if sia.fmt.key.startswith("votable"):
            stream.resources.insert(0, service_descriptor(base + PREFIX + "/query", options(state)))
        batches, head, rows = iter(stream), [], 0
        while rows <= SMALL_ROWS:
            try:
                batch = next(batches)
            except StopIteration:
                break
            head.append(batch)
            rows += batch.num_rows
        else:
            return sia, _Replay(stream, head, batches)
    except (QueryTimeout, QueryAborted) as exc:
        if stream is not None:
            stream.close()
        raise TransientFault(f"{exc}") from None
    except EngineError as exc:
        if stream is not None:
            stream.close()
        raise UsageFault(f"query failed: {exc}") from None
    out = io.BytesIO()
    sia.fmt.write(_Replay(stream, head, None), out, infos=sia.infos())
    return sia, out.getvalue()


async def query(request: Request):
    ctx = request.app.state.ctx
    params = await read_params(request, ctx.settings.upload_max_bytes)
    base = base_url(request, ctx.settings)
    fmt = None
    cancel = Cancel()
    try:
        fmt, _ = q.response_format(params)
        sia, result = await run_in_threadpool(_execute, request.app.state, params, base, cancel)
    except DaliError as exc:
        message = exc.prefixed()
        if _plain_errors(fmt):
            return PlainTextResponse(message, status_code=exc.status)
        raise type(exc)(message, exc.status) from None

    headers = {}
    if sia.fmt.key.startswith("fits") or sia.fmt.key == "parquet":
        headers["Content-Disposition"] = f'attachment; filename="sia.{sia.fmt.extension}"'
    if isinstance(result, bytes):
        return Response(result, media_type=sia.content_type, headers=headers)

    def write(out) -> None:
        try:
            sia.fmt.write(result, out, infos=sia.infos())
        finally:
            result.close()

    return StreamingResponse(stream_body(write, cancel, getattr(ctx, "writers", None)), media_type=sia.content_type,
                             headers=headers)


def routes() -> list[Route]:
    return [
        Route(PREFIX + "/query", query, methods=["GET", "POST"]),
        Route(PREFIX + "/capabilities", capabilities, methods=["GET"]),
        Route(PREFIX + "/availability", availability, methods=["GET"]),
    ]
