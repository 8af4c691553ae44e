"""TAP_UPLOAD tables (TAP 1.1 sections 2.7.6 and 3.5, DALI 1.1 section 3.4.5): read the UPLOAD
parameter, fetch each table, and turn it into Arrow data plus the model metadata the ADQL checker
resolves names with.

``load_uploads(params, settings)`` returns ``{name: Upload}``. The caller registers
``upload.data`` as ``dialect.upload_relation(name)`` on the DuckDB cursor and passes
``{name: upload.table}`` to the translator.

Decisions worth knowing:

* Sources: ``param:PART`` (a multipart part; a plain form field of that name is accepted too, as
  curl ``-F 't1=<file'`` sends one) and ``http``/``https`` URLs. ``vos:``, ``ftp:``, ``file:`` are
  refused. URLs are fetched by this module, connecting only to the addresses it checked, so a DNS
  answer cannot change between check and use; every redirect hop is checked again. Addresses that
  are not globally routable are refused unless ``allow_private_upload_urls`` is set.
* Limits: ``upload_max_bytes`` counts all tables of one request together, and exceeding it or
  ``upload_max_rows`` is ``TooLarge`` (413, the request is fine but bigger than this service
  takes); more than ``upload_max_tables`` tables is a ``UsageFault``.
* Content: VOTable (any version; TABLEDATA, BINARY, BINARY2, inline FITS; the first TABLE) or CSV
  with a header row. VOTable FIELD attributes are kept exactly as written (name, unit, ucd,
  utype, xtype, arraysize, description). As in VOTable TABLEDATA, empty strings, empty
  variable-length arrays and NaN floats are NULL. Timestamps (xtype ``timestamp`` or
  ``adql:TIMESTAMP``) become TIMESTAMP columns written back in DALI form; multi-dimensional
  arrays are flattened (``2x3`` becomes ``6``). ``bit``, complex types and boolean arrays are
  refused: the result writers could not send them back. XML that declares entities or points a
  STREAM at an external ``href`` is refused (astropy would fetch the href itself, file: too).
"""
from __future__ import annotations

import base64
import binascii
import http.client
import io
import ipaddress
import re
import socket
import ssl
import time
import warnings
import xml.parsers.expat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from diavo.server.adql.check import UPLOAD_SCHEMA
from diavo.server.archive.model import Column, Table
from diavo.server.errors import TooLarge, UsageFault
from diavo.server.params import Params
from diavo.server.settings import Settings

__all__ = ["Upload", "UploadSpec", "address_allowed", "fetch_url", "load_uploads", "parse_upload_param",
           "read_table", "FETCH_TIMEOUT_S", "MAX_REDIRECTS"]

FETCH_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
# A ';' starts a new pair only when a "name," follows, so a ';' inside a URL survives.
_PAIR_SPLIT = re.compile(r";(?=\s*[A-Za-z][A-Za-z0-9_]*\s*,)")
_FELIS_NUMERIC = {"unsignedByte": "byte", "short": "short", "int": "int", "long": "long",
                  "float": "float", "double": "double"}
_ARROW_NUMERIC = {"unsignedByte": pa.uint8(), "short": pa.int16(), "int": pa.int32(), "long": pa.int64(),
                  "float": pa.float32(), "double": pa.float64()}
_GEOMETRY_XTYPES = ("point", "circle", "polygon")
_TIMESTAMP_XTYPES = ("timestamp", "adql:timestamp")
_XML_ENCODINGS = ("utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1")


@dataclass(frozen=True)
class Upload:
    name: str
    table: Table
    data: pa.Table


@dataclass(frozen=True)
class UploadSpec:
    name: str
    uri: str


# --------------------------------------------------------------------------- the parameter
def parse_upload_param(values: list[str]) -> list[UploadSpec]:
    """All ``name,URI`` pairs of every UPLOAD value (pairs may also be ';'-separated)."""
    specs: list[UploadSpec] = []
    seen: dict[str, UploadSpec] = {}
    for value in values:
        for pair in _PAIR_SPLIT.split(value):
            if not pair.strip():
                continue
            name, sep, uri = pair.partition(",")
            name, uri = name.strip(), uri.strip()
            if not sep or not uri:
                raise UsageFault(f"UPLOAD value {pair.strip()!r} is not of the form name,URI")
            if not _NAME.match(name):
                raise UsageFault(f"UPLOAD table name {name!r} is not valid: a name starts with a letter "
                                 "and has only letters, digits and underscores")
            # ADQL regular identifiers are case-insensitive, so t1 and T1 would be the same table.
            # The very same pair twice (query string and body, say) is one upload.
            previous = seen.get(name.lower())
            if previous is not None:
                if previous == UploadSpec(name, uri):
                    continue
                raise UsageFault(f"UPLOAD table name {name} is given twice")
            seen[name.lower()] = UploadSpec(name, uri)
            specs.append(seen[name.lower()])
    return specs


def load_uploads(params: Params, settings: Settings) -> dict[str, Upload]:
    """Every table named by UPLOAD, fetched, parsed and checked against the upload limits."""
    specs = parse_upload_param(params.getall("UPLOAD"))
    if len(specs) > settings.upload_max_tables:
        raise UsageFault(f"UPLOAD names {len(specs)} tables; this service takes at most "
                         f"{settings.upload_max_tables} per query")
    budget = settings.upload_max_bytes
    uploads: dict[str, Upload] = {}
    for spec in specs:
        raw = _content(spec, params, settings, budget)
        budget -= len(raw)
        table, data = read_table(spec.name, raw, settings.upload_max_rows)
        uploads[spec.name] = Upload(spec.name, table, data)
    return uploads


def _content(spec: UploadSpec, params: Params, settings: Settings, budget: int) -> bytes:
    scheme = spec.uri.split(":", 1)[0].lower() if ":" in spec.uri else ""
    if scheme == "param":
        part = spec.uri.split(":", 1)[1]
        raw = params.files.get(part)
        if raw is None:
            fields = params.getall(part)
            if len(fields) == 1:
                raw = fields[0].encode("utf-8")
        if raw is None:
            raise UsageFault(f"UPLOAD {spec.name} refers to param:{part} but no multipart part named "
                             f"{part} was sent")
        if len(raw) > budget:
            raise TooLarge(_too_large(spec.name, settings.upload_max_bytes))
        return raw
    if scheme in ("http", "https"):
        allowed = None if settings.allow_private_upload_urls else address_allowed
        return fetch_url(spec.name, spec.uri, budget, allow_address=allowed,
                         max_bytes_total=settings.upload_max_bytes)
    what = f"{scheme}:" if scheme else f"(none, in {spec.uri!r})"
    raise UsageFault(f"UPLOAD {spec.name}: unsupported upload scheme {what}; use param: (inline multipart) "
                     "or http(s):")


def _too_large(name: str, limit: int) -> str:
    return f"UPLOAD {name}: the uploaded tables exceed the limit of {limit} bytes"


# --------------------------------------------------------------------------- URL fetching
def address_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for globally routable unicast addresses (also behind IPv4-mapped/6to4 IPv6)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None and not address_allowed(inner):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_loopback or ip.is_private or ip.is_link_local
                                 or ip.is_reserved or ip.is_unspecified)


def _resolve(name: str, host: str, port: int, allow_address) -> list[tuple]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageFault(f"UPLOAD {name}: cannot resolve the host {host!r}: {exc}") from None
    if allow_address is not None:
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if not allow_address(ip):
                raise UsageFault(
                    f"UPLOAD {name}: the host {host} resolves to {ip}, a loopback, private, link-local "
                    "or otherwise non-public address, which this service does not fetch from (the "
                    "operator can allow it with allow_private_upload_urls)")
    return infos


def _open_socket(infos: list[tuple], timeout: float | None) -> socket.socket:
    """A connection to one of the already-checked addresses (never resolved again)."""
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError("no address to connect to")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, infos: list[tuple], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._infos = infos

    def connect(self) -> None:
        self.sock = _open_socket(self._infos, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, infos: list[tuple], timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._infos = infos

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(_open_socket(self._infos, self.timeout), server_hostname=self.host)


AddressCheck = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]


def fetch_url(name: str, url: str, max_bytes: int, *, allow_address: AddressCheck | None = address_allowed,
              max_bytes_total: int | None = None, timeout_s: float = FETCH_TIMEOUT_S) -> bytes:
    """GET ``url`` following redirects, each hop's addresses passed through ``allow_address``
    (None allows all); stop as soon as the body passes ``max_bytes`` (``TooLarge``, which names
    ``max_bytes_total``, the configured limit, when given)."""
    limit_text = max_bytes_total if max_bytes_total is not None else max_bytes
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UsageFault(f"UPLOAD {name}: unsupported upload scheme {scheme}: (redirected to {url})")
        try:
            host, port = parts.hostname, parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UsageFault(f"UPLOAD {name}: invalid URL {url!r}") from None
        if not host:
            raise UsageFault(f"UPLOAD {name}: the URL {url!r} has no host")
        infos = _resolve(name, host, port, allow_address)
        remaining = max(deadline - time.monotonic(), 0.1)
        cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        conn = cls(host, port, infos, min(remaining, timeout_s))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers={"User-Agent": "diavo-tap-upload", "Accept": "*/*"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                if not location:
                    raise UsageFault(f"UPLOAD {name}: {url} redirects without a Location")
                url = urljoin(url, location.strip())
                continue
            if resp.status != 200:
                raise UsageFault(f"UPLOAD {name}: fetching {url} gave HTTP {resp.status} {resp.reason}")
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise TooLarge(_too_large(name, limit_text))
            chunks, size = [], 0
            while chunk := resp.read1(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(_too_large(name, limit_text))
                if time.monotonic() > deadline:
                    raise UsageFault(f"UPLOAD {name}: fetching {url} took longer than {timeout_s:g} s")
                chunks.append(chunk)
            return b"".join(chunks)
        except (OSError, http.client.HTTPException) as exc:
            raise UsageFault(f"UPLOAD {name}: could not fetch {url}: {exc}") from None
        finally:
            conn.close()
    raise UsageFault(f"UPLOAD {name}: more than {MAX_REDIRECTS} redirects")


# --------------------------------------------------------------------------- parsing
def read_table(name: str, raw: bytes, max_rows: int) -> tuple[Table, pa.Table]:
    """A VOTable or CSV document as (model Table in TAP_UPLOAD, Arrow data with the same names)."""
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[1:2] == b"\x00":
        raise UsageFault(f"UPLOAD {name}: UTF-16 documents are not accepted; send UTF-8")
    if body[:2] == b"\x1f\x8b":
        raise UsageFault(f"UPLOAD {name}: compressed uploads are not accepted; send plain VOTable or CSV")
    if body.startswith(b"SIMPLE  ="):
        raise UsageFault(f"UPLOAD {name}: FITS files are not accepted; send VOTable or CSV")
    stripped = body.lstrip()
    if not stripped:
        raise UsageFault(f"UPLOAD {name}: the table is empty")
    if stripped[:1] == b"<":
        description, columns = _read_votable(name, raw, max_rows)
    else:
        description, columns = _read_csv(name, body, max_rows)
    _check_names(name, [c.name for c, _ in columns])
    table = Table(schema=UPLOAD_SCHEMA, name=name, description=description or f"uploaded table {name}",
                  columns=tuple(c for c, _ in columns))
    return table, pa.table([a for _, a in columns], names=[c.name for c, _ in columns])


def _check_rows(name: str, nrows: int, max_rows: int) -> None:
    if nrows > max_rows:
        raise TooLarge(f"UPLOAD {name} has {nrows} rows, more than the limit of {max_rows}")


def _check_names(name: str, names: list[str]) -> None:
    if not names:
        raise UsageFault(f"UPLOAD {name}: the table has no columns")
    seen: dict[str, str] = {}
    for col in names:
        other = seen.get(col.lower())
        if other is not None:
            raise UsageFault(f"UPLOAD {name}: the column names {other!r} and {col!r} are the same in "
                             "ADQL, which ignores case; rename one")
        seen[col.lower()] = col


class _HeaderDone(Exception):
    pass


@dataclass
class _Header:
    description: str = ""
    fields: list[dict] = field(default_factory=list)
    fits: tuple[int, str] | None = None  # (byte offset of <FITS>, extnum) of the first TABLE
    nrows: str | None = None  # the TABLE's declared row count, if any


def _local(tag: str) -> str:
    return tag.rsplit(":", 1)[-1]


def _read_header(name: str, raw: bytes) -> _Header:
    """FIELDs of the first TABLE with their attributes exactly as written, and safety checks.

    astropy normalises units and may fetch STREAM hrefs, so this pass runs first, with expat
    (as astropy's parser), up to the first element inside the table's DATA.
    """
    header = _Header()
    declared = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)", raw.lstrip(b"\xef\xbb\xbf"))
    if declared and declared.group(1).decode("ascii", "replace").lower() not in _XML_ENCODINGS:
        raise UsageFault(f"UPLOAD {name}: XML encoding {declared.group(1).decode('ascii', 'replace')} is "
                         "not accepted; send UTF-8")
    parser = xml.parsers.expat.ParserCreate()
    path: list[str] = []
    state: dict[str, Any] = {"table": None, "text": None, "data": False}

    def refuse_entities(*_args) -> None:
        raise UsageFault(f"UPLOAD {name}: XML entity declarations are not accepted")

    def start(tag: str, attrs: dict) -> None:
        local = _local(tag)
        path.append(local)
        depth = len(path)
        table = state["table"]
        if table is None:
            if local == "TABLE":
                state["table"] = depth
                header.nrows = attrs.get("nrows")
            return
        if local == "FIELD" and depth == table + 1:
            header.fields.append({**attrs, "description": ""})
        elif local == "DESCRIPTION" and depth == table + 1:
            state["text"] = header
        elif local == "DESCRIPTION" and depth == table + 2 and path[-2] == "FIELD":
            state["text"] = header.fields[-1]
        elif local == "DATA" and depth == table + 1:
            state["data"] = True
        elif state["data"]:
            if local == "FITS":
                header.fits = (parser.CurrentByteIndex, attrs.get("extnum", ""))
            elif local == "STREAM":
                if attrs.get("href"):
                    raise UsageFault(f"UPLOAD {name}: VOTable STREAM references to external data (href) "
                                     "are not accepted; embed the data")
                raise _HeaderDone
            elif local in ("TABLEDATA",):
                raise _HeaderDone

    def end(tag: str) -> None:
        if state["table"] is not None and len(path) == state["table"]:
            raise _HeaderDone  # a TABLE without DATA
        if _local(tag) == "DESCRIPTION":
            state["text"] = None
        path.pop()

    def text(data: str) -> None:
        target = state["text"]
        if target is header:
            header.description += data
        elif target is not None:
            target["description"] += data

    parser.EntityDeclHandler = refuse_entities
    parser.UnparsedEntityDeclHandler = refuse_entities
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(raw, True)
    except _HeaderDone:
        pass
    except xml.parsers.expat.ExpatError as exc:
        raise UsageFault(f"UPLOAD {name}: not well-formed XML: {exc}") from None
    if state["table"] is None:
        raise UsageFault(f"UPLOAD {name}: the VOTable contains no TABLE")
    header.description = header.description.strip()
    for f in header.fields:
        f["description"] = f["description"].strip()
    return header


def _read_votable(name: str, raw: bytes, max_rows: int) -> tuple[str, list[tuple[Column, pa.Array]]]:
    from astropy.io.votable import parse

    header = _read_header(name, raw)
    doc, fits_columns = raw, None
    if header.fits is not None:
        doc, fits_columns = _inline_fits(name, raw, *header.fits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            votable = parse(io.BytesIO(doc), verify="ignore", table_number=0)
            table = votable.get_first_table()
    except UsageFault:
        raise
    except Exception as exc:  # astropy raises many kinds; all mean "cannot read this"
        raise UsageFault(f"UPLOAD {name}: not a readable VOTable: {exc}") from None
    if len(table.fields) != len(header.fields):
        raise UsageFault(f"UPLOAD {name}: could not read the first TABLE of the VOTable")
    if fits_columns is not None:
        if len(fits_columns) != len(header.fields):
            raise UsageFault(f"UPLOAD {name}: the inline FITS table has {len(fits_columns)} columns, "
                             f"the VOTable declares {len(header.fields)}")
        arrays = fits_columns
    else:
        arrays = [table.array[n] for n in table.array.dtype.names or ()]
    got = len(arrays[0]) if arrays else 0
    if header.nrows and header.nrows.strip().isdigit() and int(header.nrows) != got:
        # astropy stops quietly at the end of a short BINARY stream; a cut table is an error
        raise UsageFault(f"UPLOAD {name}: the TABLE declares {int(header.nrows)} rows but "
                         f"{got} could be read")
    _check_rows(name, len(arrays[0]) if arrays else 0, max_rows)
    for i, meta in enumerate(header.fields):  # unnamed FIELDs get a usable name
        if not (meta.get("name") or meta.get("ID") or "").strip():
            meta["name"] = f"col_{i + 1}"
    return header.description, [_column(name, m, a) for m, a in zip(header.fields, arrays, strict=True)]


def _inline_fits(name: str, raw: bytes, offset: int, extnum: str) -> tuple[bytes, list]:
    """The document with its FITS element emptied, and the columns of the embedded FITS table
    (astropy reads FITS-in-VOTable only from an href)."""
    from astropy.io import fits
    from astropy.table import Table as AstropyTable

    end = re.compile(rb"</(?:[\w.-]+:)?FITS\s*>").search(raw, offset)
    stream = re.compile(rb"<(?:[\w.-]+:)?STREAM\b([^>]*)>([^<]*)<").search(raw, offset)
    if end is None or stream is None or stream.start() > end.start():
        raise UsageFault(f"UPLOAD {name}: the FITS element has no inline STREAM")
    encoding = re.search(rb"encoding\s*=\s*[\"']([^\"']*)", stream.group(1))
    if encoding is None or encoding.group(1) != b"base64":
        raise UsageFault(f"UPLOAD {name}: an inline FITS STREAM must be base64-encoded")
    try:
        payload = base64.b64decode(re.sub(rb"\s+", b"", stream.group(2)), validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdus = fits.open(io.BytesIO(payload), memmap=False)
            index = int(extnum) if extnum.strip().isdigit() and int(extnum) > 0 else next(
                i for i, h in enumerate(hdus) if isinstance(h, (fits.BinTableHDU, fits.TableHDU)))
            data = AstropyTable.read(hdus[index], format="fits", character_as_bytes=False)
    except (binascii.Error, ValueError, OSError, IndexError, StopIteration, TypeError) as exc:
        raise UsageFault(f"UPLOAD {name}: cannot read the inline FITS table: {exc}") from None
    columns = [np.ma.asarray(data[c]) for c in data.colnames]
    start = raw.rfind(b"<", 0, offset + 1)
    return raw[:start] + b"<TABLEDATA/>" + raw[end.end():], columns


# --------------------------------------------------------------------------- VOTable columns
def _column(upload: str, meta: dict, values) -> tuple[Column, pa.Array]:
    """One FIELD and its values (numpy, maybe masked) as a model Column and an Arrow array."""
    label = meta.get("name") or meta.get("ID")
    datatype = meta.get("datatype") or ""
    arraysize = (meta.get("arraysize") or "").strip() or None
    xtype = meta.get("xtype") or None
    where = f"UPLOAD {upload}, column {label!r}"
    common = {"name": label, "description": meta.get("description", ""), "unit": meta.get("unit") or None,
              "ucd": meta.get("ucd") or None, "utype": meta.get("utype") or None}
    data, mask = _split_mask(values)
    if datatype in ("char", "unicodeChar"):
        if arraysize is not None and "x" in arraysize:
            raise UsageFault(f"{where}: multi-dimensional character arrays are not supported")
        arr = _strings(data, mask)
        if xtype and xtype.lower() in _TIMESTAMP_XTYPES:
            return Column(datatype="timestamp", **common), _timestamps(where, arr)
        fixed = arraysize is not None and arraysize.isdigit()
        felis = "unicode" if datatype == "unicodeChar" else ("char" if fixed or arraysize is None else "string")
        length = int(arraysize.rstrip("*")) if arraysize and arraysize.rstrip("*").isdigit() else None
        return Column(datatype=felis, length=length, arraysize=arraysize, xtype=xtype, **common), arr
    if datatype == "boolean":
        if arraysize not in (None, "1"):
            raise UsageFault(f"{where}: arrays of booleans are not supported")
        return Column(datatype="boolean", xtype=xtype, **common), pa.array(
            np.asarray(data).astype(bool).ravel(), mask=mask.ravel(), type=pa.bool_())
    if datatype not in _FELIS_NUMERIC:
        raise UsageFault(f"{where}: the VOTable datatype {datatype or '(none)'!r} is not supported "
                         "in uploads")
    kind = _ARROW_NUMERIC[datatype]
    felis = _FELIS_NUMERIC[datatype]
    if xtype and xtype.lower() in _TIMESTAMP_XTYPES:
        xtype = None  # DALI timestamps are strings; a numeric "timestamp" would mislead clients
    if arraysize in (None, "1") and data.dtype != object and data.size == len(data):
        values = np.asarray(data).reshape(len(data)).astype(kind.to_pandas_dtype(), copy=False)
        if pa.types.is_floating(kind):
            mask = mask | np.isnan(values)
        column = Column(datatype=felis, xtype=xtype, arraysize=arraysize, **common)
        return column, pa.array(values, mask=mask, type=kind)
    if xtype and xtype.lower() in _GEOMETRY_XTYPES and datatype in ("float", "double"):
        kind, felis = pa.float64(), "double"  # geometry functions work in double
    if arraysize is not None and "x" in arraysize:
        dims = arraysize.split("x")
        arraysize = "*" if dims[-1].endswith("*") else str(int(np.prod([int(d) for d in dims])))
    column = Column(datatype=felis, xtype=xtype, arraysize=arraysize or "*", **common)
    return column, _lists(values, mask, kind)


def _split_mask(values) -> tuple[np.ndarray, np.ndarray]:
    data = np.ma.getdata(values)
    mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else np.zeros(data.shape, bool)
    if data.ndim > 1:  # fixed arrays: the row is NULL when every element is
        mask = np.asarray(mask.reshape(len(data), -1).all(axis=1) if data.size else np.zeros(len(data), bool))
    return data, mask


def _strings(data: np.ndarray, mask: np.ndarray) -> pa.Array:
    if data.dtype.kind == "S":
        data = np.char.decode(data, "utf-8", "replace")
    elif data.dtype == object:
        data = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else
                         ("" if v is None or v is np.ma.masked else str(v)) for v in data], dtype=object)
    arr = pa.array(data, type=pa.string(), mask=mask)
    arr = pc.utf8_rtrim(arr, "\x00") if len(arr) else arr
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _timestamps(where: str, arr: pa.Array) -> pa.Array:
    """ISO-8601 text (DALI: no zone; a trailing Z tolerated) as timestamp[us]."""
    text = pc.utf8_trim_whitespace(arr)
    text = pc.replace_substring_regex(text, r"Z$", "")
    text = pc.replace_substring_regex(text, r"(\.\d{6})\d+$", r"\1")
    try:
        return pc.cast(text, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for value in text.to_pylist():
            try:
                if value is not None:
                    pc.cast(pa.array([value]), pa.timestamp("us"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise UsageFault(f"{where}: {value!r} is not an ISO-8601 timestamp") from None
        raise


def _lists(values, mask: np.ndarray, kind: pa.DataType) -> pa.Array:
    """Array cells as list<kind>; masked elements stay NULL, empty or all-NULL cells are NULL."""
    dtype = kind.to_pandas_dtype()
    data = np.ma.getdata(values)
    n = len(data)
    if n == 0:
        return pa.array([], pa.list_(kind))
    if data.dtype != object:  # fixed arrays: shape (n, ...)
        flat = data.reshape(n, -1)
        width = flat.shape[1]
        elem_mask = np.ma.getmaskarray(values).reshape(n, -1) if np.ma.isMaskedArray(values) else None
        if width == 0:
            return pa.nulls(n, pa.list_(kind))
        values = pa.array(flat.ravel().astype(dtype, copy=False),
                          mask=None if elem_mask is None else elem_mask.ravel(), type=kind)
        offsets = pa.array(np.arange(0, n * width + 1, width), type=pa.int32())
        return pa.ListArray.from_arrays(offsets, values, mask=pa.array(mask))
    cells, elem_masks, nulls = [], [], np.array(mask, dtype=bool, copy=True)
    for i, cell in enumerate(data):
        if cell is None or cell is np.ma.masked:
            nulls[i] = True
            cell = np.zeros(0, dtype)
        values = np.ma.getdata(cell).ravel()
        cmask = np.ma.getmaskarray(cell).ravel() if np.ma.isMaskedArray(cell) else np.zeros(len(values), bool)
        if len(values) == 0 or cmask.all():
            nulls[i] = True
            values, cmask = values[:0], cmask[:0]
        cells.append(values.astype(dtype, copy=False))
        elem_masks.append(cmask)
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int32, count=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(cells) if cells else np.zeros(0, dtype)
    flat_mask = np.concatenate(elem_masks) if elem_masks else np.zeros(0, bool)
    values = pa.array(flat, mask=flat_mask, type=kind)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(nulls))


# --------------------------------------------------------------------------- CSV
def _read_csv(name: str, raw: bytes, max_rows: int) -> tuple[str, list[tuple[Column, pa.Array]]]:
    """CSV with a header row; types as Arrow infers them, empty cells NULL."""
    from pyarrow import csv

    try:
        table = csv.read_csv(
            io.BytesIO(raw),
            parse_options=csv.ParseOptions(newlines_in_values=True),
            convert_options=csv.ConvertOptions(null_values=[""], strings_can_be_null=True,
                                               quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise UsageFault(f"UPLOAD {name}: neither a VOTable nor a readable CSV table with a header row: "
                         f"{exc}") from None
    _check_rows(name, table.num_rows, max_rows)
    columns = []
    for i, (label, arr) in enumerate(zip(table.column_names, table.columns, strict=True)):
        label = label if label.strip() else f"col_{i + 1}"
        columns.append(_csv_column(label, arr.combine_chunks()))
    return "", columns


def _csv_column(label: str, arr: pa.Array) -> tuple[Column, pa.Array]:
    t = arr.type
    if pa.types.is_boolean(t):
        return Column(label, "boolean"), arr
    if pa.types.is_integer(t):
        return Column(label, "long"), arr.cast(pa.int64())
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        arr = arr.cast(pa.float64())
        return Column(label, "double"), pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return Column(label, "timestamp"), arr.cast(pa.timestamp("us"))
    text = arr.cast(pa.string())
    return Column(label, "string"), pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
