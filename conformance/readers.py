"""Read a TAP result in any output format back to plain Python values, typed by a reference VOTable.

The reference is the VOTable TABLEDATA answer to the same query: its FIELDs say what each column
is (datatype, xtype), and every other format's cells are brought to the same canonical value
(int, float, float32-rounded float, bool, str, ISO timestamp, or None) before comparing.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass

import numpy as np

INT_TYPES = {"short", "int", "long", "unsignedByte"}


@dataclass
class Field:
    name: str
    datatype: str
    xtype: str | None
    arraysize: str | None


@dataclass
class Result:
    fields: list[Field]
    rows: list[tuple]  # raw cells as the format's reader gave them

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


def read_votable(content: bytes) -> Result:
    from astropy.io.votable import parse

    vot = parse(io.BytesIO(content), verify="exception")
    table = vot.get_first_table()
    fields = [Field(f.name, f.datatype, f.xtype, f.arraysize) for f in table.fields]
    data = table.array
    rows = []
    for i in range(len(data)):
        row = []
        for f in fields:
            value = data[f.name][i]
            masked = np.ma.is_masked(value) or (np.ma.isMaskedArray(data[f.name]) and bool(data[f.name].mask[i]))
            row.append(None if masked else value)
        rows.append(tuple(row))
    return Result(fields, rows)


def query_status(content: bytes) -> tuple[str | None, str | None]:
    """QUERY_STATUS value and text of a VOTable (the INFO in the results RESOURCE, else the last)."""
    from lxml import etree

    root = etree.fromstring(content)
    status = None
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "INFO" and el.get("name") == "QUERY_STATUS":
            status = (el.get("value"), (el.text or "").strip() or None)
    return status or (None, None)


def read_csv(content: bytes, delimiter: str = ",") -> tuple[list[str], list[tuple]]:
    text = content.decode("utf-8")
    if delimiter == "\t":
        lines = [line for line in text.split("\n") if line != ""]
        rows = [tuple(line.rstrip("\r").split("\t")) for line in lines]
    else:
        rows = [tuple(r) for r in csv.reader(io.StringIO(text, newline=""))]
    return list(rows[0]), rows[1:]


def read_fits(content: bytes) -> tuple[list[str], list[tuple]]:
    from astropy.table import Table

    table = Table.read(io.BytesIO(content), format="fits", hdu=1)
    rows = []
    for i in range(len(table)):
        row = []
        for name in table.colnames:
            col = table[name]
            masked = hasattr(col, "mask") and bool(np.ma.getmaskarray(col)[i])
            row.append(None if masked else col[i])
        rows.append(tuple(row))
    return list(table.colnames), rows


def read_parquet(content: bytes) -> tuple[list[str], list[tuple]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(content))
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return list(table.column_names), list(zip(*columns, strict=False)) if columns else []


def _timestamp(value) -> str | None:
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").item()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    text = _text(value)
    if text is None:
        return None
    text = text.strip().replace(" ", "T")
    if text.endswith("Z"):
        text = text[:-1]
    return dt.datetime.fromisoformat(text).isoformat(timespec="microseconds")


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8")
    text = str(value)
    return None if text == "" else text


def canonical(value, f: Field):
    """One cell as a comparable Python value; None for null (and for an empty string)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, np.str_, np.bytes_)) and f.datatype not in ("char", "unicodeChar"):
        text = _text(value)
        if text is None:
            return None
        value = text.strip()
        if f.datatype == "boolean":
            low = value.lower()
            if low in ("true", "t", "1"):
                return True
            if low in ("false", "f", "0"):
                return False
            raise ValueError(f"{f.name}: {value!r} is not a boolean")
    if f.xtype and f.xtype.lower() in ("timestamp", "adql:timestamp"):
        return _timestamp(value)
    if f.datatype in INT_TYPES:
        return int(value)
    if f.datatype == "boolean":
        return bool(value)
    if f.datatype in ("float", "double"):
        x = float(value)
        if math.isnan(x):
            return "NaN"
        return float(np.float32(x)) if f.datatype == "float" else x
    if f.datatype in ("char", "unicodeChar"):
        text = _text(value)
        return None if text is None else text.rstrip() if f.arraysize and not f.arraysize.endswith("*") else text
    return value


def canonical_rows(rows: list[tuple], fields: list[Field]) -> list[tuple]:
    return [tuple(canonical(v, f) for v, f in zip(row, fields, strict=False)) for row in rows]
