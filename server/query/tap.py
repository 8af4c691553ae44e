"""TAP queries as a service: validate the parameters, load uploads, translate, run, write.

The sync endpoint streams what ``open`` returns straight to the client; async jobs call
``run_job``, which writes the same bytes to the job's result file. Parameter checks happen
here, when a query runs, never at job creation (TAP 1.1 §2.7: a bad query still makes a job).
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from diavo.server.adql.errors import ADQLError
from diavo.server.engine.base import Cancel, EngineError, EngineQuery, Limits, QueryAborted, QueryTimeout, ResultStream
from diavo.server.errors import UsageFault
from diavo.server.output import descriptors
from diavo.server.params import Params, integer
from diavo.server.settings import Settings
from diavo.server.urls import DATALINK_LINKS_PATH, SODA_SYNC_PATH

if TYPE_CHECKING:
    from diavo.server.output.formats import OutputFormat

log = logging.getLogger("diavo.tap")

#: LANG values accepted; the version suffixes are those TAPRegExt declares.
LANGUAGES = {"ADQL": "2.1", "ADQL-2.0": "2.0", "ADQL-2.1": "2.1"}
_RUNID_MAX = 64


@dataclass
class TapRequest:
    query: str
    lang: str
    maxrec: int
    fmt: OutputFormat
    content_type: str
    runid: str | None = None
    uploads: dict = field(default_factory=dict)  # name -> query.uploads.Upload
    compiled: EngineQuery | None = None
    #: The public base URL of this request; stored access URLs are rewritten to it.
    base_url: str | None = None

    def infos(self) -> list[tuple[str, str]]:
        out = [("standardID", "ivo://ivoa.net/std/TAP"), ("QUERY", self.query), ("LANG", self.lang),
               ("MAXREC", str(self.maxrec))]
        if self.runid is not None:
            out.append(("RUNID", self.runid))
        return out


def _maxrec(value: str | None, settings: Settings) -> int:
    if value is None or value.strip() == "":
        return settings.maxrec_default
    try:
        return min(integer("MAXREC", value, low=0), settings.maxrec_hard)
    except UsageFault as exc:
        raise UsageFault(exc.message.replace("an integer", "a non-negative integer")) from None


def parse_request(params: Params, settings: Settings) -> TapRequest:
    """The TAP 1.1 / DALI parameters of a query; unknown parameters are ignored (TAP §2.7)."""
    from diavo.server.output.formats import resolve

    request = params.get("REQUEST")
    if request is not None and request.strip().lower() != "doquery":
        raise UsageFault(f"REQUEST={request} is not supported: this TAP 1.1 service answers queries "
                         "(REQUEST=doQuery, or no REQUEST at all)")
    lang = params.get("LANG")
    if lang is None or not lang.strip():
        raise UsageFault("missing parameter LANG: use LANG=ADQL")
    if lang.strip().upper() not in LANGUAGES:
        raise UsageFault(f"unknown query language {lang!r}: this service accepts "
                         + ", ".join(LANGUAGES))
    query = params.get("QUERY")
    if query is None or not query.strip():
        raise UsageFault("missing parameter QUERY: give the ADQL query to run")
    fmt_value = params.get("RESPONSEFORMAT")
    if fmt_value is None:
        fmt_value = params.get("FORMAT")
    fmt, content_type = resolve(fmt_value)
    runid = params.get("RUNID")
    if runid is not None and len(runid) > _RUNID_MAX:
        runid = runid[:_RUNID_MAX]
    return TapRequest(query=query, lang=lang.strip(), maxrec=_maxrec(params.get("MAXREC"), settings),
                      fmt=fmt, content_type=content_type, runid=runid)


class TapService:
    def __init__(self, settings: Settings, queries) -> None:
        self.settings = settings
        self.queries = queries  # query.executor.QueryService

    def prepare(self, params: Params, base_url: str | None = None) -> TapRequest:
        """Validate, load uploads and translate; every failure is a UsageFault (HTTP 400)."""
        from diavo.server.query.uploads import load_uploads

        req = parse_request(params, self.settings)
        req.base_url = base_url
        if params.getall("UPLOAD"):
            req.uploads = load_uploads(params, self.settings)
        try:
            req.compiled = self.queries.translate(req.query, {k: u.table for k, u in req.uploads.items()} or None)
        except ADQLError as exc:
            raise UsageFault(f"invalid ADQL: {exc}") from None
        return req

    def open(self, req: TapRequest, timeout_s: float, cancel: Cancel | None = None) -> ResultStream:
        """Start the query; errors found before the first row raise as UsageFault."""
        limits = Limits(maxrec=req.maxrec, timeout_s=timeout_s)
        try:
            stream = self.queries.stream(req.compiled, limits, cancel, req.uploads or None)
        except (QueryTimeout, QueryAborted):
            raise
        except EngineError as exc:
            raise UsageFault(f"query failed: {exc}") from None
        if req.base_url:
            stream.columns, found = descriptors.with_publisher_did_id(stream.columns)
            if found:  # DataLink where clients look for it: pyvo's iter_datalinks(), TOPCAT
                stream.resources += descriptors.for_publisher_dids(req.base_url + DATALINK_LINKS_PATH,
                                                                   req.base_url + SODA_SYNC_PATH)
        rewrite = _access_url_rewriter(stream.columns, self.stored_base_url, req.base_url)
        return stream.map(rewrite) if rewrite else stream

    @property
    def stored_base_url(self) -> str | None:
        """The base URL the archive's access URLs were written with (archive.json)."""
        if not hasattr(self, "_stored_base"):
            from diavo.server.archive.store import Manifest

            self._stored_base: str | None
            try:
                self._stored_base = Manifest.read(self.settings.root).base_url.rstrip("/")
            except (OSError, ValueError):
                self._stored_base = None
        return self._stored_base

    def run_job(self, ctx) -> list:
        """The UWS executor: the same query path, its output written to the job's result file."""
        from diavo.server.uws.jobs import JobResult

        t0 = time.perf_counter()
        req = self.prepare(ctx.params, getattr(ctx, "base_url", None))
        timeout = ctx.timeout_s or self.settings.exec_hard_s
        t1 = time.perf_counter()
        stream = self.open(req, timeout, ctx.cancel)
        t2 = time.perf_counter()
        path = Path(ctx.result_dir) / f"result.{req.fmt.extension}"
        try:
            with open(path, "wb") as out:
                rows = req.fmt.write(stream, out, infos=req.infos())
        except EngineError as exc:
            if isinstance(exc, (QueryTimeout, QueryAborted)):
                raise
            raise UsageFault(f"query failed: {exc}") from None
        finally:
            stream.close()
        ms = {name: round(s * 1000, 3) for name, s in getattr(req.compiled, "timings", ())}
        ms.update(prepare=round((t1 - t0) * 1000, 3), engine=round((t2 - t1) * 1000, 3),
                  write=round((time.perf_counter() - t2) * 1000, 3))
        line = {"job": ctx.job_id, "rows": rows, "overflow": bool(stream.overflow), "format": req.fmt.key, "ms": ms}
        if self.settings.log_queries:
            line["query"] = req.query
        log.info(json.dumps(line))
        return [JobResult(id="result", path=path, mime=req.content_type, rows=rows)]


ACCESS_UTYPES = ("obscore:access.reference",)


def _access_url_rewriter(columns, stored: str | None, public: str | None):
    """Rewrite ObsCore access URLs written at build time to the service's public base URL, so
    links work behind a proxy or on another port. Only columns carrying the ObsCore access
    reference utype are touched, and only their stored prefix."""
    if not stored or not public or stored == public.rstrip("/"):
        return None
    idx = [i for i, c in enumerate(columns) if str(c.get("utype") or "").lower() in ACCESS_UTYPES]
    if not idx:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    pattern = "^" + re.escape(stored)
    new = public.rstrip("/").replace("\\", "\\\\")

    def rewrite(batch):
        arrays = list(batch.columns)
        for i in idx:
            if pa.types.is_string(arrays[i].type) or pa.types.is_large_string(arrays[i].type):
                arrays[i] = pc.replace_substring_regex(arrays[i], pattern=pattern, replacement=new, max_replacements=1)
        return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)

    return rewrite
