"""Streaming FITS writer: one BINTABLE extension after an empty primary HDU.

A FITS header must state the row count (NAXIS2), the row width (string columns are fixed-width
``nA`` fields, so their widths need the longest value) and the heap size (PCOUNT, for
variable-length arrays) before the first data byte. So the writer reads the stream once,
converting each batch to its FITS-ready Arrow form and spooling it to an anonymous temporary
file in Arrow IPC format while it measures; then writes the header and reads the spool back
batch by batch, encoding big-endian rows. Memory holds one batch at a time; disk holds about
the Arrow size of the result (plus the heap of variable-length arrays). Because nothing is
written before the stream has been read completely, a failing query leaves the output empty
and the exception propagates.

Columns, by VOTable datatype: boolean ``L`` (NULL is the FITS null byte 0, which astropy
reads as False), unsignedByte ``B``, short ``I``, int ``J``, long ``K`` (NULL → ``TNULLn``: the
type's minimum, else the first of its maximum and the values next to the extremes that does not
occur in the data), float ``E`` and double ``D`` (NULL → NaN); fixed arrays ``nX``; variable-length
arrays ``PX(max)`` descriptors into the heap (``Q`` beyond 2 GiB);
char/unicodeChar/timestamps ``nA`` with ``n`` the longest value (at least the declared size),
where FITS has no NULL (NULL → empty) and allows ASCII only (non-ASCII characters → ``?``).
Column names longer than a FITS card allows (68 characters) are cut, and made unique
ignoring case. TTYPE/TFORM/TUNIT/TNULL come with ``TUCDn``/``TUTYPn``/``TCOMMn`` (the STIL conventions) when
the FIELD has a UCD, utype or description; ``infos`` and an overflow become COMMENT cards.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from diavo.server.output.cells import ascii_only, fixed_count, fixed_width, is_list, list_parts, normalise, scalar_text

__all__ = ["write_fits"]

_BLOCK = 2880
_NUMERIC = {  # VOTable datatype -> (FITS code, big-endian dtype, Arrow type)
    "unsignedByte": ("B", ">u1", pa.uint8()), "short": ("I", ">i2", pa.int16()),
    "int": ("J", ">i4", pa.int32()), "long": ("K", ">i8", pa.int64()),
    "float": ("E", ">f4", pa.float32()), "double": ("D", ">f8", pa.float64()),
}
_INFERRED = [(pa.types.is_boolean, "boolean"), (pa.types.is_uint8, "unsignedByte"),
             (pa.types.is_int8, "short"), (pa.types.is_int16, "short"),
             (pa.types.is_uint16, "int"), (pa.types.is_int32, "int"),
             (pa.types.is_integer, "long"), (pa.types.is_float16, "float"),
             (pa.types.is_float32, "float"), (pa.types.is_floating, "double")]


def _datatype(col: Mapping[str, Any], t: pa.DataType) -> str:
    declared = col.get("datatype")
    if declared:
        return declared
    t = t.value_type if is_list(t) else t
    for test, name in _INFERRED:
        if test(t):
            return name
    return "char"


@dataclass
class _Column:
    """How one column is stored, and what the first pass learnt about it."""

    name: str
    kind: str                  # "L", "num", "array", "varray", "text"
    code: str = "A"
    dtype: str = "u1"
    arrow: pa.DataType = pa.string()
    count: int = 1             # elements of a fixed array / declared string width
    has_null: bool = False
    taken: set | None = None   # TNULL candidates that occur in the data
    longest: int = 0           # longest string (bytes) / variable array (elements)
    elements: int = 0          # total elements of a variable-length array
    tnull: int | None = None

    @classmethod
    def plan(cls, col: Mapping[str, Any], t: pa.DataType) -> _Column:
        name = str(col.get("name", ""))
        datatype = _datatype(col, t)
        count = fixed_count(col.get("arraysize"))
        if datatype == "boolean":
            if is_list(normalise(pa.nulls(0, t)).type) or (count or 1) != 1:
                raise NotImplementedError(f"column {name!r}: boolean arrays are not supported")
            return cls(name, "L", "L", "u1", pa.bool_())
        if datatype in _NUMERIC:
            code, dtype, arrow = _NUMERIC[datatype]
            if count == 1 and not is_list(normalise(pa.nulls(0, t)).type):
                return cls(name, "num", code, dtype, arrow)
            if count is None:
                return cls(name, "varray", code, dtype, pa.list_(arrow))
            return cls(name, "array", code, dtype, pa.list_(arrow), count=count)
        return cls(name, "text", count=count or 0)

    # ------------------------------------------------------------------ first pass
    def prepare(self, arr: pa.Array) -> pa.Array:
        """The column in its spooled form; updates the statistics the header needs."""
        arr = normalise(arr)
        if self.kind == "text":
            arr = ascii_only(scalar_text(arr))
            if len(arr):
                longest = pc.max(pc.binary_length(arr)).as_py()
                self.longest = max(self.longest, longest or 0)
            return arr
        if self.kind in ("L", "num") and is_list(arr.type):
            raise ValueError(f"column {self.name!r}: arrays where a scalar was declared")
        arr = arr.cast(self.arrow)
        if arr.null_count:
            self.has_null = True
        if self.kind == "num" and self.code not in ("E", "D") and len(arr) > arr.null_count:
            self._note_candidates(arr)
        if self.kind == "varray" and len(arr):
            lengths = pc.list_value_length(arr).fill_null(0)
            self.longest = max(self.longest, pc.max(lengths).as_py() or 0)
            self.elements += pc.sum(lengths).as_py() or 0
        return arr

    def _candidates(self) -> list[int]:
        """TNULL values in order of preference: the type's extremes, then next to them."""
        info = np.iinfo(np.dtype(self.dtype))
        lo, hi = int(info.min), int(info.max)
        if self.code == "B":
            return [hi, lo, hi - 1, lo + 1, hi - 2, lo + 2]
        return [lo, hi, lo + 1, hi - 1, lo + 2, hi - 2]

    def _note_candidates(self, arr: pa.Array) -> None:
        """Remember which TNULL candidates occur (an exact look only when the data's range
        reaches one of them, which real columns rarely do)."""
        cands = self._candidates()
        mm = pc.min_max(arr).as_py()
        if mm["min"] > min(cands) + 2 and mm["max"] < max(cands) - 2:
            return
        found = pc.unique(pc.filter(arr, pc.is_in(arr, value_set=pa.array(cands, arr.type))))
        self.taken = (self.taken or set()) | set(found.to_pylist())

    # ------------------------------------------------------------------ header
    def finish(self, heap_wide: bool) -> None:
        if self.kind == "num" and self.has_null and self.code not in ("E", "D"):
            cands = self._candidates()
            free = [c for c in cands if c not in (self.taken or ())]
            self.tnull = free[0] if free else cands[0]
        if self.kind == "varray":
            self.code = ("Q" if heap_wide else "P") + self.code

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def width(self) -> int:
        """Bytes per row in the main table."""
        if self.kind == "text":
            return max(self.longest, self.count, 1)
        if self.kind == "array":
            return self.count * self.itemsize
        if self.kind == "varray":
            return 16 if self.code.startswith("Q") else 8
        return self.itemsize

    @property
    def tform(self) -> str:
        if self.kind == "text":
            return f"{self.width}A"
        if self.kind == "array":
            return f"{self.count}{self.code}"
        if self.kind == "varray":
            return f"{self.code}({self.longest})"
        return self.code

    @property
    def heap_bytes(self) -> int:
        return self.elements * self.itemsize if self.kind == "varray" else 0

    # ------------------------------------------------------------------ second pass
    def encode(self, arr: pa.Array, heap: BinaryIO | None) -> np.ndarray:
        """``uint8[n, width]``: this column's bytes in each row."""
        n = len(arr)
        if self.kind == "text":
            return fixed_width(arr, self.width)
        if self.kind == "L":
            vals = arr.fill_null(False).to_numpy(zero_copy_only=False)
            block = np.where(vals, np.uint8(ord("T")), np.uint8(ord("F")))
            if arr.null_count:
                block[arr.is_null().to_numpy(zero_copy_only=False)] = 0
            return block.reshape(n, 1)
        floating = self.code[-1] in ("E", "D")
        null = float("nan") if floating else (self.tnull if self.tnull is not None else 0)
        if self.kind == "num":
            vals = arr.fill_null(null) if arr.null_count else arr
            vals = vals.to_numpy(zero_copy_only=False).astype(self.dtype)
            return vals.view(np.uint8).reshape(n, self.itemsize)
        lengths, values = list_parts(arr)
        fill = float("nan") if floating else 0
        flat = (values.fill_null(fill) if values.null_count else values)
        flat = flat.to_numpy(zero_copy_only=False).astype(self.dtype)
        if self.kind == "array":
            out = np.full((n, self.count), fill, dtype=self.dtype)
            full = lengths == self.count
            if np.all(full | (lengths == 0)):
                out[full] = flat.reshape(-1, self.count)
            else:                                  # odd lengths: copy row by row (rare)
                starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
                for i in np.flatnonzero(lengths):
                    k = min(int(lengths[i]), self.count)
                    out[i, :k] = flat[starts[i]:starts[i] + k]
            return out.view(np.uint8).reshape(n, self.width)
        assert heap is not None
        offsets = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1] * self.itemsize, out=offsets[1:])
        offsets += heap.tell()                     # the heap is shared by all columns
        heap.write(flat.tobytes())
        desc = ">i8" if self.code.startswith("Q") else ">i4"
        pairs = np.empty((n, 2), dtype=desc)
        pairs[:, 0] = lengths
        pairs[:, 1] = offsets
        return pairs.view(np.uint8).reshape(n, self.width)


def _ascii(value: Any) -> str:
    text = "" if value is None else str(value)
    text = "".join(c if 32 <= ord(c) < 127 else ("?" if ord(c) >= 127 else " ") for c in text)
    return text


def _fit(text: str, room: int) -> str:
    """*text* cut to fit *room* characters of a FITS string (a quote takes two)."""
    while len(text) + text.count("'") > room:
        text = text[:-1]
    return text


def _ttypes(names: Sequence[str]) -> list[str]:
    """Column names as TTYPE values: ASCII, on one card (68 characters, as readers require),
    unique regardless of case (FITS column names are case-insensitive)."""
    out: list[str] = []
    used: set[str] = set()
    for name in names:
        base = _fit(_ascii(name) or "col", 68)
        candidate, k = base, 1
        while candidate.lower() in used:
            k += 1
            candidate = _fit(base, 68 - len(f"_{k}")) + f"_{k}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


def _headers(plans: list[_Column], columns: Sequence[Mapping[str, Any]], rows: int, heap: int,
             infos: Sequence[Any], overflow: bool) -> bytes:
    from astropy.io import fits

    primary = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
    h = fits.Header([
        ("XTENSION", "BINTABLE"), ("BITPIX", 8), ("NAXIS", 2),
        ("NAXIS1", sum(p.width for p in plans)), ("NAXIS2", rows),
        ("PCOUNT", heap), ("GCOUNT", 1), ("TFIELDS", len(plans)),
    ])
    names = _ttypes([p.name for p in plans])
    for i, (plan, col, name) in enumerate(zip(plans, columns, names, strict=False), start=1):
        h[f"TTYPE{i}"] = name
        h[f"TFORM{i}"] = plan.tform
        if col.get("unit"):
            h[f"TUNIT{i}"] = _ascii(str(col["unit"]).replace("\u00b5", "u").replace("\u03bc", "u"))
        if plan.tnull is not None:
            h[f"TNULL{i}"] = plan.tnull
        for key, attr in (("TUCD", "ucd"), ("TUTYP", "utype"), ("TCOMM", "description")):
            if col.get(attr):
                h[f"{key}{i}"] = _ascii(col[attr])
    h["EXTNAME"] = "RESULTS"
    for item in infos:
        if isinstance(item, Mapping):
            name, value = item["name"], item.get("content") or item.get("value", "")
        else:
            name, value, *rest = item
            value = rest[0] if rest and rest[0] else value
        h.add_comment(_ascii(f"{name}: {value}"))
    h.add_comment("QUERY_STATUS: " + ("OVERFLOW (the result was cut at MAXREC)" if overflow
                                      else "OK"))
    return (primary.tostring() + h.tostring()).encode("ascii")


def write_fits(stream: Any, out: BinaryIO, infos: Sequence[Any] = (), *,
               spool_dir: str | None = None) -> int:
    """Write *stream* (batches with ``.columns`` and ``.schema``) as a FITS BINTABLE.

    *spool_dir* is where the temporary spool goes (default: the system's temporary directory).
    Returns the rows written.
    """
    columns = list(stream.columns)
    schema = stream.schema
    plans = [_Column.plan(col, schema.field(j).type if schema is not None else pa.null())
             for j, col in enumerate(columns)]
    spool_schema = pa.schema([pa.field(f"c{j}", p.arrow) for j, p in enumerate(plans)])
    rows = 0
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        sink = pa.PythonFile(spool, mode="w")
        writer = pa.ipc.new_stream(sink, spool_schema)
        for batch in stream:
            if batch.num_columns != len(plans):
                raise ValueError(f"batch has {batch.num_columns} columns, "
                                 f"metadata describes {len(plans)}")
            if not batch.num_rows:
                continue
            arrays = [p.prepare(batch.column(j)) for j, p in enumerate(plans)]
            writer.write_batch(pa.record_batch(arrays, schema=spool_schema))
            rows += batch.num_rows
        writer.close()
        sink.flush()

        heap_size = sum(p.heap_bytes for p in plans)
        for p in plans:
            p.finish(heap_wide=heap_size > 2**31 - 1)
        out.write(_headers(plans, columns, rows, heap_size, infos,
                           bool(getattr(stream, "overflow", False))))
        width = sum(p.width for p in plans)
        spool.seek(0)
        heap = tempfile.TemporaryFile(dir=spool_dir) if heap_size else None  # noqa: SIM115 - closed below
        try:
            for batch in pa.ipc.open_stream(pa.PythonFile(spool, mode="r")):
                blocks = [p.encode(batch.column(j), heap) for j, p in enumerate(plans)]
                buf = np.empty((batch.num_rows, width), dtype=np.uint8)
                pos = 0
                for block in blocks:
                    buf[:, pos:pos + block.shape[1]] = block
                    pos += block.shape[1]
                out.write(buf.reshape(-1).data)
            if heap is not None:
                heap.seek(0)
                shutil.copyfileobj(heap, out, 1 << 20)
        finally:
            if heap is not None:
                heap.close()
    pad = -(width * rows + heap_size) % _BLOCK
    if pad:
        out.write(b"\0" * pad)
    return rows
