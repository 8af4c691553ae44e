"""Streaming Parquet writer: Arrow batches straight into ``pyarrow.parquet.ParquetWriter``.

The Arrow types go through unchanged (timestamps stay timestamps, arrays stay lists). The
VOTable FIELD metadata (unit, ucd, utype, xtype, datatype, arraysize, description) rides along
as Arrow field metadata under ``votable:<attribute>`` keys; the caller's ``infos`` and the
query status become key-value metadata of the file, written with the footer at the end:
``QUERY_STATUS`` is ``OK``, ``OVERFLOW`` (cut at MAXREC) or ``ERROR`` (with ``QUERY_ERROR``)
when the stream failed midway, in which case the file holds the rows read so far and the
exception is re-raised.

Batches are gathered up to ``ROW_GROUP_ROWS`` rows per row group, so memory stays bounded by
one row group. The output need not be seekable (an HTTP response): positions are counted here.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_parquet", "ROW_GROUP_ROWS"]

ROW_GROUP_ROWS = 65536
_FIELD_KEYS = ("datatype", "arraysize", "xtype", "unit", "ucd", "utype", "description")


class _Positioned:
    """A write-only file wrapper that knows its position (for outputs without ``tell``)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0
        self.closed = False

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self._out.write(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:       # the caller owns *out*; only stop using it
        self.flush()
        self.closed = True


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _schema(schema: pa.Schema, columns: Sequence[Mapping[str, Any]], infos) -> pa.Schema:
    fields = []
    for field, col in zip(schema, columns, strict=False):
        meta = {f"votable:{k}": _text(col.get(k)) for k in _FIELD_KEYS
                if col.get(k) not in (None, "")}
        fields.append(field.with_metadata(meta) if meta else field)
    meta = {}
    for item in infos:
        if isinstance(item, Mapping):
            name, value = item["name"], item.get("content") or item.get("value", "")
        else:
            name, value, *rest = item
            value = rest[0] if rest and rest[0] else value
        meta[_text(name)] = _text(value)
    return pa.schema(fields, metadata=meta or None)


def write_parquet(stream: Any, out: BinaryIO, infos: Sequence[Any] = (), *,
                  row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write *stream* (batches with ``.schema`` and ``.columns``) as Parquet; return the rows.

    Rows are gathered into row groups of at least *row_group_rows* (bounded memory)."""
    schema = _schema(stream.schema, list(stream.columns), infos)
    sink = pa.PythonFile(_Positioned(out), mode="w")
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    pending: list[pa.RecordBatch] = []
    pending_rows = rows = 0
    status = {"QUERY_STATUS": "OK"}

    def flush() -> None:
        nonlocal pending, pending_rows
        if pending:
            writer.write_table(pa.Table.from_batches(pending))
            pending, pending_rows = [], 0

    try:
        for batch in stream:
            if not batch.num_rows:
                continue
            pending.append(batch)
            pending_rows += batch.num_rows
            rows += batch.num_rows
            if pending_rows >= row_group_rows:
                flush()
        flush()
        if getattr(stream, "overflow", False):
            status["QUERY_STATUS"] = "OVERFLOW"
    except Exception as exc:
        status = {"QUERY_STATUS": "ERROR", "QUERY_ERROR": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(Exception):  # the first error is the one to see
            _finish(writer, sink, status)
        raise
    _finish(writer, sink, status)
    return rows


def _finish(writer: pq.ParquetWriter, sink: pa.NativeFile, status: dict[str, str]) -> None:
    writer.add_key_value_metadata(status)
    writer.close()
    sink.close()
