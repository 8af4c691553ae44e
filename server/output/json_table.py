"""Streaming JSON results, in the shape ESA's TAP+ services (and astroquery's TapPlus) use.

    {"metadata": [{"name": ..., "datatype": ..., "arraysize": ..., "xtype": ..., "unit": ...,
                   "ucd": ..., "utype": ..., "description": ...}, ...],
     "data": [[row 1 values], [row 2 values], ...],
     "status": "OK" | "OVERFLOW" | "ERROR", "error": "..." (only with ERROR)}

``metadata`` holds the same FIELD attributes as the VOTable (null where unknown); ``data`` rows
are in column order. Numbers are JSON numbers, NaN and infinities are null (JSON has neither),
timestamps ISO 8601 strings, geometries arrays of numbers, NULL is null. ``status`` comes last:
whether the result overflowed MAXREC is known only once every row is written; a failure midway
closes the document with ``"status": "ERROR"`` and re-raises, as the VOTable writer does.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

import pyarrow as pa

from diavo.server.output.cells import normalise

__all__ = ["write_json", "METADATA_KEYS"]

METADATA_KEYS = ("name", "datatype", "arraysize", "xtype", "unit", "ucd", "utype", "description")


def _number(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _converter(t: pa.DataType) -> Callable[[Any], Any] | None:
    """How one Python value of an Arrow column becomes JSON (None: as it is)."""
    if pa.types.is_floating(t):
        return _number
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _converter(t.value_type)
        return (lambda v: None if v is None else [inner(x) for x in v]) if inner else None
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return lambda v: None if v is None else v.isoformat()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return lambda v: None if v is None else v.decode("utf-8", "replace")
    return None


def _values(arr: pa.Array) -> list:
    arr = normalise(arr)
    values = arr.to_pylist()
    convert = _converter(arr.type)
    if convert is None:
        return values
    return [None if v is None else convert(v) for v in values]


def _default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def write_json(stream: Any, out: BinaryIO, infos: Sequence[Any] = ()) -> int:
    """Write *stream* (batches with ``.columns``, ``.overflow``) as JSON; return the rows written."""
    columns: list[Mapping[str, Any]] = list(stream.columns)
    meta = [{k: (c.get(k) or None) for k in METADATA_KEYS} for c in columns]
    out.write(b'{"metadata": ' + json.dumps(meta).encode() + b',\n"data": [')
    rows, sep = 0, b"\n"
    error: BaseException | None = None
    try:
        for batch in stream:
            if batch.num_columns != len(columns):
                raise ValueError(f"batch has {batch.num_columns} columns, metadata describes {len(columns)}")
            if not batch.num_rows:
                continue
            cols = [_values(batch.column(j)) for j in range(batch.num_columns)]
            lines = (json.dumps(list(row), allow_nan=False, default=_default) for row in zip(*cols, strict=True))
            text = ",\n".join(lines)
            out.write(sep + text.encode())
            sep = b",\n"
            rows += batch.num_rows
    except Exception as exc:  # noqa: BLE001 - re-raised once the document is closed
        error = exc
    if error is not None:
        tail: dict[str, Any] = {"status": "ERROR", "error": f"{type(error).__name__}: {error}"}
    else:
        tail = {"status": "OVERFLOW" if getattr(stream, "overflow", False) else "OK"}
    out.write(b"\n],\n" + json.dumps(tail).encode()[1:] + b"\n")
    if error is not None:
        raise error
    return rows
