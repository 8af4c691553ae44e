"""Streaming CSV (RFC 4180) and TSV writers for Arrow record batches.

The cells carry the same values as the VOTable: floats in shortest round-trip form with
``NaN``/``+Inf``/``-Inf``, timestamps ISO 8601 with ``T``, booleans ``true``/``false``, arrays
as their elements separated by single spaces in one field. NULL is an empty field.

* CSV: comma-separated, ``\\n`` line ends, a header row of column names (unless the client
  asked for ``header=absent``). A field is quoted (``"`` doubled) when it holds a comma, quote,
  CR or LF, when it is an array, and when it is an empty string, so ``""`` (empty) and an
  empty field (NULL) stay apart.
* TSV: tab-separated, ``\\n`` line ends, header row. Tabs, line breaks and backslashes inside a
  value are written as ``\\t``, ``\\n``, ``\\r`` and ``\\\\`` (the IANA format forbids them raw).

Each chunk of rows becomes one string array per column (Arrow compute kernels) joined row-wise,
so memory stays at one chunk whatever the row count.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from diavo.server.output.cells import has_bytes, is_list, list_text, normalise, scalar_text

__all__ = ["write_csv", "write_tsv", "CHUNK_ROWS", "header_line", "join_rows", "text_cells"]

CHUNK_ROWS = 65536

_CSV_SPECIAL = np.zeros(256, dtype=bool)
_CSV_SPECIAL[[ord(","), ord('"'), ord("\r"), ord("\n")]] = True
_TSV_SPECIAL = np.zeros(256, dtype=bool)
_TSV_SPECIAL[[ord("\t"), ord("\r"), ord("\n"), ord("\\")]] = True


def _csv_quote(text: pa.Array, always: bool = False) -> pa.Array:
    """RFC 4180 quoting of the fields that need it (all of them if *always*)."""
    if always:
        if has_bytes(text, np.array([c == ord('"') for c in range(256)])):
            text = pc.replace_substring(text, '"', '""')
        return pc.binary_join_element_wise('"', text, '"', "")
    empty = pc.equal(pc.binary_length(text), 0)
    if has_bytes(text, _CSV_SPECIAL):
        needs = pc.or_(pc.match_substring_regex(text, '[,"\r\n]'), empty)
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        return pc.if_else(needs, quoted, text)
    if pc.any(empty).as_py():
        return pc.if_else(empty, '""', text)
    return text


def _tsv_escape(text: pa.Array) -> pa.Array:
    if not has_bytes(text, _TSV_SPECIAL):
        return text
    for old, new in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = pc.replace_substring(text, old, new)
    return text


def text_cells(arr: pa.Array, col: Mapping[str, Any], tsv: bool) -> pa.Array:
    """One column's fields as a string array, NULL kept as NULL."""
    arr = normalise(arr)
    t = arr.type
    if is_list(t):
        text = list_text(arr, col, "true", "false")
        return text if tsv else _csv_quote(text, always=True)
    if pa.types.is_boolean(t):
        return scalar_text(arr, "true", "false")
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t):
        return scalar_text(arr)
    text = scalar_text(arr)
    return _tsv_escape(text) if tsv else _csv_quote(text)


def header_line(columns: Sequence[Mapping[str, Any]], tsv: bool) -> bytes:
    names = pa.array([str(c.get("name", "")) for c in columns], pa.string())
    names = _tsv_escape(names) if tsv else _csv_quote(names)
    return (("\t" if tsv else ",").join(names.to_pylist()) + "\n").encode("utf-8")


def _rows(chunk: pa.RecordBatch, columns: Sequence[Mapping[str, Any]], tsv: bool) -> memoryview:
    return join_rows([text_cells(chunk.column(j), col, tsv) for j, col in enumerate(columns)],
                     chunk.num_rows, tsv)


def join_rows(cells: list[pa.Array], num_rows: int, tsv: bool) -> memoryview:
    """The lines of a chunk from its columns' cells (NULL → an empty field)."""
    if not cells:
        return memoryview(b"\n" * num_rows)
    rows = pc.binary_join_element_wise(*cells, "\t" if tsv else ",",
                                       null_handling="replace", null_replacement="")
    rows = pc.binary_join_element_wise(rows, pa.scalar("\n"), "")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)
    first, last = offsets[rows.offset], offsets[rows.offset + len(rows)]
    return memoryview(rows.buffers()[2])[first:last]


def _write(stream: Iterable[pa.RecordBatch], columns: Sequence[Mapping[str, Any]],
           out: BinaryIO, tsv: bool, header: bool) -> int:
    if header:
        out.write(header_line(columns, tsv))
    rows = 0
    for batch in stream:
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            chunk = batch.slice(start, CHUNK_ROWS)
            if chunk.num_columns != len(columns):
                raise ValueError(f"batch has {chunk.num_columns} columns, "
                                 f"metadata describes {len(columns)}")
            out.write(_rows(chunk, columns, tsv))
            rows += chunk.num_rows
    return rows


def write_csv(stream: Any, out: BinaryIO, infos: Sequence[Any] = (), *,
              header: bool = True) -> int:
    """Write *stream* (batches with ``.columns``) as CSV; return the rows written."""
    return _write(stream, list(stream.columns), out, tsv=False, header=header)


def write_tsv(stream: Any, out: BinaryIO, infos: Sequence[Any] = (), *,
              header: bool = True) -> int:
    """Write *stream* (batches with ``.columns``) as TSV; return the rows written."""
    return _write(stream, list(stream.columns), out, tsv=True, header=header)
