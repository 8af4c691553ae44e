"""ADQL's value types, with the unit and UCD an expression carries, and their VOTable form.

The checker types every expression with an :class:`EType`; output columns get their FIELD
attributes from a model column (``column_meta``) or from the type (``type_meta``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["EType", "GEOMETRIES", "INTEGERS", "NUMERIC_ORDER", "column_meta", "column_type",
           "model_column_meta", "model_column_type", "promote", "type_meta"]

INTEGERS = ("SMALLINT", "INTEGER", "BIGINT")
NUMERIC_ORDER = ("SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE")
GEOMETRIES = ("POINT", "CIRCLE", "POLYGON", "REGION")
_FELIS_KIND = {
    "boolean": "BOOLEAN", "byte": "SMALLINT", "short": "SMALLINT", "int": "INTEGER", "long": "BIGINT",
    "float": "REAL", "double": "DOUBLE", "char": "VARCHAR", "string": "VARCHAR", "unicode": "VARCHAR",
    "text": "VARCHAR", "binary": "BINARY", "timestamp": "TIMESTAMP",
}
_VOTABLE = {  # ADQL type → (datatype, arraysize, xtype)
    "SMALLINT": ("short", None, None), "INTEGER": ("int", None, None), "BIGINT": ("long", None, None),
    "REAL": ("float", None, None), "DOUBLE": ("double", None, None), "VARCHAR": ("char", "*", None),
    "TIMESTAMP": ("char", "*", "timestamp"), "BOOLEAN": ("boolean", None, None),
    "BINARY": ("unsignedByte", "*", None), "POINT": ("double", "2", "point"),
    "CIRCLE": ("double", "3", "circle"), "POLYGON": ("double", "*", "polygon"),
    "REGION": ("double", "*", None), "ARRAY": ("double", "*", None), "NULL": ("char", "*", None),
    "UNKNOWN": ("char", "*", None),
}



@dataclass(frozen=True)
class EType:
    """The ADQL type of an expression, with the unit and UCD it carries when known."""

    kind: str
    unit: str | None = None
    ucd: str | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_ORDER

    @property
    def geometry(self) -> bool:
        return self.kind in GEOMETRIES

    @property
    def loose(self) -> bool:  # NULL or unknown: compatible with anything
        return self.kind in ("NULL", "UNKNOWN")


@lru_cache(maxsize=4096)
def model_column_meta(col) -> dict:
    return column_meta(col)


@lru_cache(maxsize=4096)
def model_column_type(col) -> EType:
    return column_type(col)


def column_meta(col, name: str | None = None) -> dict:
    attrs = col.votable_attrs()
    return {
        "name": name or col.name,
        "datatype": attrs.get("datatype"),
        "arraysize": attrs.get("arraysize"),
        "unit": attrs.get("unit"),
        "ucd": attrs.get("ucd"),
        "utype": attrs.get("utype"),
        "xtype": attrs.get("xtype"),
        "description": attrs.get("description") or None,
    }


def type_meta(etype: EType, name: str, description: str | None = None) -> dict:
    datatype, arraysize, xtype = _VOTABLE.get(etype.kind, ("char", "*", None))
    return {"name": name, "datatype": datatype, "arraysize": arraysize, "unit": etype.unit,
            "ucd": etype.ucd, "utype": None, "xtype": xtype, "description": description}


def column_type(col) -> EType:
    xtype = (col.xtype or "").lower()
    if xtype in ("adql:region", "region") and col.datatype in ("char", "string", "unicode", "text"):
        return EType("REGION", col.unit, col.ucd)
    if xtype in ("point", "circle", "polygon") and col.datatype in ("double", "float"):
        return EType(xtype.upper(), col.unit, col.ucd)
    size = getattr(col, "arraysize", None)
    if size and col.datatype not in ("char", "string", "unicode", "text", "binary", "timestamp"):
        return EType("ARRAY", col.unit, col.ucd)  # a numeric vector (uploads): select it, test IS NULL
    return EType(_FELIS_KIND[col.datatype], col.unit, col.ucd)


def promote(a: EType, b: EType) -> str:
    kinds = [k for k in (a.kind, b.kind) if k in NUMERIC_ORDER]
    if not kinds:
        return "DOUBLE"
    return max(kinds, key=NUMERIC_ORDER.index)
