"""Streaming ECSV 1.0 (astropy's Enhanced CSV): a YAML header with each column's type, unit,
description and UCD, then comma-separated rows, so ``Table.read(f, format="ascii.ecsv")`` gives
back typed, unit-carrying columns.

The rows are the CSV writer's (same cells, NULL an empty field, an empty string ``""``), except
that booleans are ``True``/``False`` as ECSV expects. Arrays (geometries) and timestamps are
strings in ECSV: the element list and ISO 8601 text the CSV carries, with the VOTable xtype kept
in the column's ``meta``. The header is written before the first row, when nobody knows yet
whether MAXREC will cut the result, so ECSV (like CSV) cannot flag an overflow.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import pyarrow as pa

from diavo.server.output.cells import is_list, normalise, scalar_text
from diavo.server.output.delimited import CHUNK_ROWS, header_line, join_rows, text_cells

__all__ = ["write_ecsv"]

#: VOTable datatype → ECSV datatype (anything else, and every array, is a string).
_TYPES = {"boolean": "bool", "unsignedByte": "uint8", "short": "int16", "int": "int32", "long": "int64",
          "float": "float32", "double": "float64"}


def _scalar(col: Mapping[str, Any]) -> bool:
    size = col.get("arraysize")
    return col.get("datatype") in _TYPES and not size and not col.get("xtype")


def _header(columns: Sequence[Mapping[str, Any]]) -> bytes:
    lines = ["# %ECSV 1.0", "# ---", "# delimiter: ','", "# datatype:"]
    for col in columns:
        entry: dict[str, Any] = {"name": str(col.get("name", "")),
                                 "datatype": _TYPES[col["datatype"]] if _scalar(col) else "string"}
        for key in ("unit", "description"):
            if col.get(key):
                entry[key] = str(col[key])
        meta = {k: str(col[k]) for k in ("ucd", "utype", "xtype") if col.get(k)}
        if meta:
            entry["meta"] = meta
        lines.append("# - " + json.dumps(entry))  # JSON is YAML's flow style
    lines.append("# schema: astropy-2.0")
    return ("\n".join(lines) + "\n").encode("utf-8") + header_line(columns, tsv=False)


def _cells(arr: pa.Array, col: Mapping[str, Any]) -> pa.Array:
    arr = normalise(arr)
    if pa.types.is_boolean(arr.type) and not is_list(arr.type):
        return scalar_text(arr, "True", "False")
    return text_cells(arr, col, tsv=False)


def write_ecsv(stream: Any, out: BinaryIO, infos: Sequence[Any] = ()) -> int:
    """Write *stream* (batches with ``.columns``) as ECSV; return the rows written."""
    columns = list(stream.columns)
    out.write(_header(columns))
    rows = 0
    for batch in stream:
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            chunk = batch.slice(start, CHUNK_ROWS)
            if chunk.num_columns != len(columns):
                raise ValueError(f"batch has {chunk.num_columns} columns, metadata describes {len(columns)}")
            out.write(join_rows([_cells(chunk.column(j), c) for j, c in enumerate(columns)],
                                chunk.num_rows, tsv=False))
            rows += chunk.num_rows
    return rows
