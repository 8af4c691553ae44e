"""``Archive``: Butler-style dataset access over TAP, SIA 2.0, DataLink and SODA.

The client holds no catalog: it finds the service's endpoints, turns Butler-style questions
into one ADQL query on ivoa.ObsCore, and follows DataLink to the FITS file (or its SODA
cut-out). Everything it does not wrap is reachable through ``archive.tap`` and ``archive.sia``
(pyvo objects sharing the archive's HTTP session and token).
"""
from __future__ import annotations

import contextlib
import io
import numbers
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit
from xml.etree import ElementTree

import requests

from diavo.shared.ids import image_id

from .download import ArchiveError, FileCache, check, server_message, stream_response
from .query import datasets_query
from .refs import DataId, DatasetRef, DatasetType, dataset_type
from .rsp import BearerAuth, bearer_session

if TYPE_CHECKING:
    import pyvo
    from astropy.table import Table

    from .exposure import Exposure

__all__ = ["Archive", "ArchiveError", "Endpoints", "discover"]

TAP_ID = "ivo://ivoa.net/std/tap"
SIA2_ID = "ivo://ivoa.net/std/sia#query-2.0"
SODA_SYNC_ID = "ivo://ivoa.net/std/soda#sync-1.0"
DATALINK_ID = "ivo://ivoa.net/std/datalink#links-1.1"
#: The tutorial's DiaSource columns.
DIA_SOURCE_COLUMNS = ("diaSourceId", "x", "y")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------------------------
# Endpoint discovery
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoints:
    """Where the service's protocols live (absolute URLs)."""

    base: str
    tap: str
    sia: str  # the SIA 2.0 query endpoint
    datalink: str  # the DataLink links endpoint (takes ?ID=)
    soda: str  # the SODA sync endpoint


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def _get(session: requests.Session, url: str, timeout: float) -> requests.Response | None:
    try:
        r = session.get(url, timeout=timeout)
    except requests.RequestException:
        return None
    return r if r.status_code == 200 else None


def _capabilities(session: requests.Session, url: str, timeout: float) -> dict[str, str]:
    """standardID (lower case) -> first accessURL, from a VOSI capabilities document."""
    r = _get(session, url, timeout)
    if r is None:
        return {}
    try:
        root = ElementTree.fromstring(r.content)
    except ElementTree.ParseError:
        return {}
    found: dict[str, str] = {}
    for cap in root.iter():
        if cap.tag.rsplit("}", 1)[-1] != "capability":
            continue
        sid = (cap.get("standardID") or "").lower()
        for el in cap.iter():
            text = (el.text or "").strip()
            if el.tag.rsplit("}", 1)[-1] == "accessURL" and text:
                found.setdefault(sid, text)
                break
    return found


def _landing_links(session: requests.Session, base: str, timeout: float) -> list[str]:
    r = _get(session, base + "/", timeout)
    if r is None or "html" not in r.headers.get("Content-Type", ""):
        return []
    parser = _Links()
    parser.feed(r.text)
    return [urljoin(base + "/", h) for h in parser.hrefs]


def _link_ending(links: Sequence[str], *suffixes: str) -> str | None:
    for link in links:
        path = urlsplit(link).path.rstrip("/")
        if path.endswith(suffixes):
            return link.split("?", 1)[0].rstrip("/")
    return None


def discover(url: str, session: requests.Session, timeout: float = 30.0) -> Endpoints:
    """Find the endpoints from the landing page and VOSI capabilities, else conventional paths.

    ``url`` is the service's base URL or its TAP URL. The TAP capabilities must answer:
    a URL that is not a TAP service is an error here, not at the first query.
    """
    url = url.strip().rstrip("/")
    if not urlsplit(url).scheme.startswith("http"):
        raise ValueError(f"not an http(s) URL: {url!r}")
    base = url[: -len("/tap")] if url.endswith("/tap") else url
    links = _landing_links(session, base, timeout)

    tap_root = url if url.endswith("/tap") else (_link_ending(links, "/tap") or base + "/tap")
    caps = _capabilities(session, tap_root + "/capabilities", timeout)
    if TAP_ID not in caps:
        raise ArchiveError(f"no TAP service found at {tap_root} (its /capabilities does not declare "
                           f"{TAP_ID})", url=tap_root)
    tap = caps[TAP_ID].rstrip("/")

    def service(suffixes: tuple[str, ...], default_root: str, std: str, default_leaf: str) -> str:
        link = _link_ending(links, *suffixes)
        root = link.rsplit("/", 1)[0] if link and not link.endswith(suffixes[0]) else (link or default_root)
        found = _capabilities(session, root + "/capabilities", timeout)
        caps.update({k: v for k, v in found.items() if k not in caps})
        return found.get(std) or root + default_leaf

    sia = service(("/sia", "/sia/query", "/sia/capabilities"), base + "/sia", SIA2_ID, "/query")
    soda = service(("/soda", "/soda/sync", "/soda/capabilities"), base + "/soda", SODA_SYNC_ID, "/sync")
    datalink = caps.get(DATALINK_ID) or _link_ending(links, "/datalink/links") or base + "/datalink/links"
    return Endpoints(base=base, tap=tap, sia=sia, datalink=datalink, soda=soda)


# ---------------------------------------------------------------------------------------------
# The archive
# ---------------------------------------------------------------------------------------------

class Archive:
    """A diavo (or compatible ObsCore + DataLink) service, used the way a Butler is.

    ``token``: sent as ``Authorization: Bearer`` on every request to the service (its own
    origin and the endpoints it declares; never to another host a link points at).
    ``cache_dir``: keep downloaded images there, keyed by dataset ID (off by default).
    ``progress``: True always shows download progress, False never, None (default) only for
    large downloads that take more than a second.
    """

    def __init__(self, url: str, token: str | None = None, cache_dir: str | None = None,
                 progress: bool | None = None, timeout: float = 300.0) -> None:
        import pyvo

        self.session = bearer_session(token, url)
        self.timeout = timeout
        self.progress = progress
        self.cache = FileCache(cache_dir) if cache_dir is not None else None
        self.endpoints = discover(url, self.session, timeout=min(timeout, 30.0))
        if isinstance(self.session.auth, BearerAuth):  # the service's own endpoints get the token
            for endpoint in (self.endpoints.tap, self.endpoints.sia, self.endpoints.datalink, self.endpoints.soda):
                self.session.auth.allow(endpoint)
        self.tap: pyvo.dal.TAPService = pyvo.dal.TAPService(self.endpoints.tap, session=self.session)
        self.sia: pyvo.dal.SIA2Service = pyvo.dal.SIA2Service(self.endpoints.sia, session=self.session,
                                                              check_baseurl=False)

    def __repr__(self) -> str:
        return f"Archive({self.endpoints.base!r})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- finding datasets ---------------------------------------------------------------------
    def get_dataset_type(self, name: str | DatasetType) -> DatasetType:
        """Dimensions, required dimensions and storage class of a dataset type."""
        return dataset_type(name)

    def datasets_adql(self, dataset_type: str | DatasetType, *, where: str = "",
                      bind: Mapping[str, Any] | None = None, order_by: str | Sequence[str] | None = None,
                      limit: int | None = None, data_id: Mapping[str, Any] | None = None,
                      **kwargs: Any) -> str:
        """The ADQL that ``query_datasets`` with the same arguments sends."""
        return datasets_query(self.get_dataset_type(dataset_type), where=where, bind=bind,
                              order_by=order_by, limit=limit, data_id={**(data_id or {}), **kwargs})

    def query_datasets(self, dataset_type: str | DatasetType, collections: Any = None, *,
                       where: str = "", bind: Mapping[str, Any] | None = None,
                       order_by: str | Sequence[str] | None = None, limit: int | None = None,
                       data_id: Mapping[str, Any] | None = None, find_first: bool = True,
                       **kwargs: Any) -> list[DatasetRef]:
        """References to the datasets matching a Butler-style ``where`` expression, in order.

        ``collections`` and ``find_first`` are accepted for Butler compatibility (the archive
        has one collection); ``data_id`` and keyword arguments add equality constraints.
        """
        del collections, find_first
        query = self.datasets_adql(dataset_type, where=where, bind=bind, order_by=order_by,
                                   limit=limit, data_id=data_id, **kwargs)
        table = self._search(query, maxrec=limit)
        return self.refs(table)

    def refs(self, rows: Iterable[Any]) -> list[DatasetRef]:
        """DatasetRefs for the rows of any ObsCore result (TAP or SIA, pyvo or astropy)."""
        if hasattr(rows, "to_table") and not hasattr(rows, "colnames"):
            rows = rows.to_table()
        return [DatasetRef.from_row(row) for row in rows]

    def _search(self, query: str, maxrec: int | None = None) -> Table:
        from pyvo.dal import DALAccessError

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyvo's overflow warning: checked below instead
            try:
                result = self.tap.search(query, maxrec=maxrec)
            except DALAccessError as exc:
                raise ArchiveError(f"TAP query failed: {_dal_message(exc)}", url=self.endpoints.tap) from exc
        if maxrec is None and _overflowed(result):
            raise ArchiveError(f"the service cut the result at {len(result)} rows (its MAXREC limit); "
                               "narrow the query or pass a limit")
        return result.to_table()

    # -- resolving a dataset ------------------------------------------------------------------
    def resolve(self, ref: DatasetRef | str | DatasetType | Mapping[str, Any],
                dataId: Mapping[str, Any] | None = None, **kwargs: Any) -> DatasetRef:  # noqa: N803
        """A DatasetRef from a ref, a dataset type with a data ID / keywords, or a data ID alone."""
        if isinstance(ref, DatasetRef):
            if dataId or kwargs:
                raise TypeError("pass either a DatasetRef or a data ID, not both")
            return ref
        if isinstance(ref, Mapping):
            if dataId is not None:
                raise TypeError("pass the data ID once")
            dataId = ref
            ref = "difference_image"
        dtype = self.get_dataset_type(ref)
        values = {**dict(dataId or {}), **kwargs}
        missing = [k for k in ("visit", "detector") if values.get(k) is None]
        if missing:
            raise ValueError(f"{dtype.name} needs {' and '.join(missing)} in its data ID "
                             f"(required: {dtype.dimensions.required!r})")
        for key in ("visit", "detector"):
            v = values[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{key} must be an integer, not {v!r}")
        visit, detector = int(values["visit"]), int(values["detector"])
        data_id = DataId({**values, "visit": visit, "detector": detector})
        return DatasetRef(dtype, data_id, id=image_id(visit, detector))

    def datalink(self, ref: DatasetRef | str | Mapping[str, Any], dataId: Mapping[str, Any] | None = None,  # noqa: N803
                 **kwargs: Any) -> pyvo.dal.adhoc.DatalinkResults:
        """The DataLink document of a dataset (pyvo DatalinkResults)."""
        from pyvo.dal.adhoc import DatalinkResults

        ref = self.resolve(ref, dataId, **kwargs)
        fmt = (ref.access_format or "").lower()
        if ref.access_url and "content=datalink" in fmt:
            url = ref.access_url
        else:
            url = f"{self.endpoints.datalink}?ID={quote(ref.id, safe='')}"
        try:
            return DatalinkResults.from_result_url(url, session=self.session)
        except Exception as exc:  # pyvo raises DALServiceError / DALQueryError with the message
            raise ArchiveError(f"DataLink for {ref.id} failed: {_dal_message(exc)}", url=url) from exc

    def _link(self, ref: DatasetRef, semantics: str, links=None):
        links = links if links is not None else self.datalink(ref)
        rows = [row for row in links if row.semantics == semantics]
        errors = [row.error_message for row in rows if row.error_message]
        usable = [row for row in rows if not row.error_message]
        if not usable:
            why = errors[0] if errors else f"the DataLink document has no {semantics} link"
            raise LookupError(f"{ref.datasetType.name} {dict(ref.dataId.required)}: {why}")
        return usable[0], links

    # -- getting pixels -----------------------------------------------------------------------
    def image_url(self, ref: DatasetRef | str | Mapping[str, Any], dataId: Mapping[str, Any] | None = None,  # noqa: N803
                  **kwargs: Any) -> str:
        """The URL of the dataset's FITS file (DataLink's #this link)."""
        row, _ = self._link(self.resolve(ref, dataId, **kwargs), "#this")
        return row.access_url

    def fetch(self, ref: DatasetRef | str | Mapping[str, Any], dataId: Mapping[str, Any] | None = None,  # noqa: N803
              **kwargs: Any) -> bytes:
        """The dataset's FITS file as bytes (through the cache when there is one)."""
        ref = self.resolve(ref, dataId, **kwargs)
        path = self._cached(ref)
        if path is not None:
            return path.read_bytes()
        buf = io.BytesIO()
        self._download(self.image_url(ref), buf, ref)
        return buf.getvalue()

    def get(self, ref: DatasetRef | str | Mapping[str, Any], dataId: Mapping[str, Any] | None = None,  # noqa: N803
            **kwargs: Any) -> Exposure:
        """The dataset as an Exposure: ``get(ref)``, ``get(type, dataId=...)``, ``get(type, visit=, detector=)``."""
        ref = self.resolve(ref, dataId, **kwargs)
        path = self._cached(ref)
        return _exposure(path if path is not None else self.fetch(ref))

    def _cached(self, ref: DatasetRef):
        """The cached file of ``ref``, downloading it first when a cache is configured."""
        if self.cache is None:
            return None
        path = self.cache.get(ref.id)
        if path is None:
            url = self.image_url(ref)
            with self.cache.writing(ref.id) as fh:
                self._download(url, fh, ref)
            path = self.cache.get(ref.id)
        return path

    def _download(self, url: str, out, ref: DatasetRef) -> int:
        label = f"{ref.datasetType.name} {ref.dataId.get('visit')}/{ref.dataId.get('detector')}"
        with self.session.get(url, stream=True, timeout=self.timeout) as r:
            check(r, f"download of {label}")
            return stream_response(r, out, label, self.progress)

    def cutout_fits(self, ref: DatasetRef | Mapping[str, Any], ra: Any, dec: Any, radius: Any) -> bytes:
        """A SODA cut-out (FITS bytes) of a circle, ICRS degrees (floats or astropy angles)."""
        ref = self.resolve(ref)
        ra_v, dec_v, r_v = (_degrees(ra, "ra"), _degrees(dec, "dec"), _degrees(radius, "radius"))
        if not -90.0 <= dec_v <= 90.0 or not 0.0 < r_v <= 180.0:
            raise ValueError(f"need -90 <= dec <= 90 and 0 < radius <= 180 degrees, got dec={dec_v} radius={r_v}")
        row, links = self._link(ref, "#cutout")
        url, ident = self.endpoints.soda, row.id or ref.id
        if row.service_def:
            try:
                svc = links.get_adhocservice_by_id(row.service_def)
                url = next(p.value for p in svc.params if p.name == "accessURL") or url
            except (KeyError, StopIteration, ValueError):
                pass  # no usable descriptor: the SODA endpoint from the capabilities
        params = {"ID": ident, "CIRCLE": f"{ra_v!r} {dec_v!r} {r_v!r}"}
        buf = io.BytesIO()
        label = f"cut-out of {ref.dataId.get('visit')}/{ref.dataId.get('detector')}"
        with self.session.get(url, params=params, stream=True, timeout=self.timeout) as r:
            check(r, label)
            stream_response(r, buf, label, self.progress)
        return buf.getvalue()

    def cutout(self, ref: DatasetRef | Mapping[str, Any], ra: Any, dec: Any, radius: Any) -> Exposure:
        """A SODA cut-out (all three planes) of a circle around (ra, dec), as an Exposure."""
        return _exposure(self.cutout_fits(ref, ra, dec, radius))

    # -- catalogues ---------------------------------------------------------------------------
    def dia_sources(self, visit: int, detector: int, columns: str | Sequence[str] | None = None,
                    sync: bool = False, table: str = "dp1.DiaSource") -> Table:
        """The DiaSources of one image (the tutorial's query), by async TAP unless ``sync``.

        ``columns``: names (default diaSourceId, x, y) or "*" for all.
        """
        for name, v in (("visit", visit), ("detector", detector)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must be an integer, not {v!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", table):
            raise ValueError(f"not a schema.table name: {table!r}")
        query = (f"SELECT {_select_list(columns)} FROM {table} "
                 f"WHERE visit = {int(visit)} AND detector = {int(detector)}")
        if sync:
            return self._search(query)
        return self._run_async(query)

    def _run_async(self, query: str) -> Table:
        """submit, run, wait, fetch, delete: the tutorial's async TAP sequence."""
        from pyvo.dal import DALAccessError

        try:
            job = self.tap.submit_job(query)
        except DALAccessError as exc:
            raise ArchiveError(f"TAP job submission failed: {_dal_message(exc)}", url=self.endpoints.tap) from exc
        try:
            job.run()
            job.wait(phases=["COMPLETED", "ERROR", "ABORTED"])
            if job.phase != "COMPLETED":
                job.raise_if_error()
                raise ArchiveError(f"TAP job ended in phase {job.phase}", url=job.url)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = job.fetch_result()
        except DALAccessError as exc:
            raise ArchiveError(f"TAP job failed: {_dal_message(exc)}", url=job.url) from exc
        finally:
            with contextlib.suppress(Exception):  # a failed clean-up must not hide the result or error
                job.delete()
        if _overflowed(result):
            raise ArchiveError(f"the service cut the result at {len(result)} rows (its MAXREC limit)")
        return result.to_table()


def _select_list(columns: str | Sequence[str] | None) -> str:
    if columns is None:
        columns = DIA_SOURCE_COLUMNS
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    columns = list(columns)
    if columns == ["*"]:
        return "*"
    if not columns:
        raise ValueError("no columns asked for")
    bad = [c for c in columns if not isinstance(c, str) or not _IDENTIFIER.match(c)]
    if bad:
        raise ValueError(f"not ADQL column names: {', '.join(map(repr, bad))} (letters, digits and _ only)")
    return ", ".join(columns)


def _dal_message(exc: Exception) -> str:
    """pyvo's error, with the service's own message when an HTTP error body carried one."""
    response = getattr(getattr(exc, "cause", None), "response", None)
    if isinstance(response, requests.Response) and response.status_code >= 400:
        return f"HTTP {response.status_code}: {server_message(response)}"
    return str(exc)


def _overflowed(result: Any) -> bool:
    status = getattr(result, "query_status", None)
    return isinstance(status, str) and status.upper() == "OVERFLOW"


def _degrees(value: Any, what: str) -> float:
    if hasattr(value, "to_value"):  # astropy Quantity / Angle
        value = value.to_value("deg")
    elif hasattr(value, "asDegrees"):  # diavo.client.geom.Angle
        value = value.asDegrees()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be in degrees (a number or an astropy angle), not {value!r}")
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite")
    return v


def _exposure(data: Any) -> Exposure:
    from .exposure import Exposure

    return Exposure.from_fits(data)
