"""The result formats a TAP/DALI service offers, and RESPONSEFORMAT resolution (DALI 1.1 §3.4.3).

Every format writes a result stream (an iterable of Arrow record batches with ``.columns``,
FIELD metadata dicts; ``.overflow``, valid once iterated) to a binary file object, one batch at a
time, and returns the number of rows written:

========== ================================================== =================================
key        media type                                         notes
========== ================================================== =================================
votable    application/x-votable+xml                          TABLEDATA; the default
votable-b2 application/x-votable+xml;serialization=binary2   BINARY2
csv        text/csv;header=present                            RFC 4180 quoting
tsv        text/tab-separated-values                          backslash escapes
fits       application/fits                                   BINTABLE; spooled to a temp file
parquet    application/vnd.apache.parquet                     one row group per ~64k rows
json       application/json                                   ESA TAP+ shape: metadata, data, status
ecsv       text/x-ecsv                                        astropy ECSV 1.0: typed YAML header
========== ================================================== =================================

``votable_plain`` (astroquery's TapPlus name for TABLEDATA) is an alias of ``votable``.

Only VOTable carries the query status in-band: ``QUERY_STATUS=OK`` before the table, a
trailing ``OVERFLOW`` when the result was cut at MAXREC, a trailing ``ERROR`` when the stream
failed midway (the exception is then re-raised). FITS reads the whole stream before writing a
byte, so a failure leaves its output empty; Parquet closes the file with ``QUERY_STATUS=ERROR``
in its key-value metadata; CSV/TSV just stop. In every case the exception propagates.

``infos`` (``(name, value)`` or ``(name, value, content)``) are the caller's provenance: the
VOTable INFOs inside the RESOURCE after QUERY_STATUS (the caller adds ``standardID``, the
query, ...), FITS COMMENT cards, Parquet key-value metadata; CSV/TSV have nowhere to put them.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, BinaryIO

from diavo.server.errors import UsageFault
from diavo.server.output.delimited import write_csv, write_tsv
from diavo.server.output.ecsv import write_ecsv
from diavo.server.output.fits import write_fits
from diavo.server.output.json_table import write_json
from diavo.server.output.parquet import write_parquet
from diavo.server.output.votable import error_votable, write_votable

__all__ = ["OutputFormat", "FORMATS", "DEFAULT", "resolve", "by_key", "error_document",
           "VOTABLE_VERSION", "TAPREGEXT"]

#: The VOTable version the service writes: 1.4, the newest the deployed validators (STILTS 3.4
#: votlint/taplint) know; 1.5 documents are identical apart from the version attribute.
VOTABLE_VERSION = "1.4"
TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt"
VOTABLE_MIME = "application/x-votable+xml"

Writer = Callable[[Any, BinaryIO, Sequence[Any]], int]


def error_document(message: str) -> bytes:
    """The DALI error VOTable (QUERY_STATUS=ERROR, no TABLE) in the service's VOTable version."""
    return error_votable(message, version=VOTABLE_VERSION)


@dataclass(frozen=True)
class OutputFormat:
    """One result format: its names (TAPRegExt ``outputFormat``) and its writer."""

    key: str
    mime: str
    aliases: tuple[str, ...]
    ivo_id: str | None
    extension: str
    writer: Writer

    def write(self, stream: Any, out: BinaryIO, infos: Iterable[Any] = ()) -> int:
        """Write all of *stream* to *out*; return the rows written."""
        return self.writer(stream, out, tuple(infos))

    @property
    def is_votable(self) -> bool:
        return self.key.startswith("votable")

    @property
    def short_aliases(self) -> tuple[str, ...]:
        """The aliases that are not media types (``votable``, ``csv``...)."""
        return tuple(a for a in self.aliases if not _is_media_type(a))

    @property
    def media_types(self) -> tuple[str, ...]:
        """The main media type, then the other media types accepted for this format."""
        return (self.mime,) + tuple(a for a in self.aliases if _is_media_type(a))


def _votable_columns(columns: Sequence[Mapping[str, Any]]) -> list[dict]:
    """FIELD metadata as sent: ``arraysize="1"`` on text is the implicit default, deprecated
    since VOTable 1.3 erratum 3 (votlint warns), so it is left out."""
    out = []
    for col in columns:
        col = dict(col)
        if col.get("datatype") in ("char", "unicodeChar") and str(col.get("arraysize")) == "1":
            col["arraysize"] = None
        out.append(col)
    return out


def _write_votable(stream: Any, out: BinaryIO, infos: Sequence[Any], *, encoding: str) -> int:
    """A stream's ``resources`` (service descriptors) follow its results; only VOTable has a
    place for them."""
    return write_votable(stream, _votable_columns(stream.columns), out, encoding=encoding,
                         overflow=lambda: bool(getattr(stream, "overflow", False)),
                         resource_infos=infos, resources=getattr(stream, "resources", ()),
                         version=VOTABLE_VERSION)


FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat("votable", VOTABLE_MIME,
                 ("votable", "votable/td", "votabletd", "votable_plain", "text/xml",
                  VOTABLE_MIME + ";serialization=tabledata"),
                 TAPREGEXT + "#output-votable-td", "xml",
                 partial(_write_votable, encoding="tabledata")),
    OutputFormat("votable-b2", VOTABLE_MIME + ";serialization=binary2",
                 ("votable/b2", "votableb2", "binary2"),
                 TAPREGEXT + "#output-votable-binary2", "xml",
                 partial(_write_votable, encoding="binary2")),
    OutputFormat("csv", "text/csv;header=present", ("csv", "text/csv"), None, "csv", write_csv),
    OutputFormat("tsv", "text/tab-separated-values", ("tsv",), None, "tsv", write_tsv),
    OutputFormat("fits", "application/fits", ("fits",), None, "fits", write_fits),
    OutputFormat("parquet", "application/vnd.apache.parquet",
                 ("parquet", "application/x-parquet"), None, "parquet", write_parquet),
    OutputFormat("json", "application/json", ("json",), None, "json", write_json),
    OutputFormat("ecsv", "text/x-ecsv", ("ecsv", "application/x-ecsv"), None, "ecsv", write_ecsv),
)
DEFAULT = FORMATS[0]

_TOP_TYPES = ("application/", "text/", "image/", "audio/", "video/", "multipart/", "model/")
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _is_media_type(value: str) -> bool:
    return value.lower().startswith(_TOP_TYPES)


def _split(value: str) -> tuple[str, dict[str, str]]:
    """A media type's lower-cased ``type/subtype`` and parameters (names lower-cased)."""
    base, *params = value.split(";")
    out = {}
    for p in params:
        name, _, v = p.partition("=")
        if name.strip():
            out[name.strip().lower()] = v.strip().strip('"')
    return base.strip().lower(), out


def by_key(key: str) -> OutputFormat:
    for fmt in FORMATS:
        if fmt.key == key:
            return fmt
    raise KeyError(key)


def _accepted() -> str:
    names = []
    for fmt in FORMATS:
        names += [n for n in (fmt.mime,) + fmt.aliases if n not in names]
    return ", ".join(names)


def _unknown(value: str, why: str = "") -> UsageFault:
    return UsageFault(f"unsupported RESPONSEFORMAT {value!r}{why}; accepted values: {_accepted()}")


def _resolve_media_type(value: str) -> OutputFormat:
    base, params = _split(value)
    fmt = None
    if base in (VOTABLE_MIME, "text/xml"):
        serialization = params.get("serialization", "tabledata").lower()
        fmt = {"tabledata": FORMATS[0], "binary2": FORMATS[1]}.get(serialization)
        if fmt is None:
            raise _unknown(value, f" (VOTable serialization {serialization!r} is not offered)")
        return fmt
    for candidate in FORMATS:
        if base in {_split(m)[0] for m in candidate.media_types}:
            fmt = candidate
            break
    if fmt is None:
        raise _unknown(value)
    if fmt.key in ("csv", "tsv"):
        charset = params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise _unknown(value, " (text is written as UTF-8)")
        header = params.get("header", "present").lower()
        if header not in ("present", "absent"):
            raise _unknown(value, " (header must be present or absent)")
        if header == "absent":        # DALI: explicit parameters must be honoured
            fmt = replace(fmt, writer=partial(fmt.writer, header=False))  # type: ignore[call-arg]
    return fmt


def resolve(value: str | None) -> tuple[OutputFormat, str]:
    """The format for a RESPONSEFORMAT/FORMAT value and the Content-Type to answer with.

    Short forms and media types match case-insensitively; media-type parameters are ignored
    except VOTable's ``serialization`` and CSV/TSV's ``header``/``charset``. A media type is
    echoed back exactly as the client sent it (DALI: the client controls the Content-Type);
    a short form gets the format's own media type. None or blank gives VOTable TABLEDATA;
    anything else raises UsageFault listing the accepted values.
    """
    if value is None or not value.strip():
        return DEFAULT, DEFAULT.mime
    text = value.strip()
    if _HEADER_UNSAFE.search(text):
        raise _unknown(text)
    if _is_media_type(text):
        return _resolve_media_type(text), text
    lowered = text.lower()
    for fmt in FORMATS:
        if lowered == fmt.key or lowered in fmt.aliases:
            return fmt, fmt.mime
    raise _unknown(text)
