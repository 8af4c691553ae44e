"""diavo's data model: the Felis YAML files under ``schema/`` and everything derived from them.

The YAML files are the single source of truth for table and column metadata. The DuckDB DDL, the
TAP_SCHEMA rows, VOTable FIELD attributes and Arrow types are all computed here so they cannot drift
apart. The files are read with PyYAML rather than lsst-felis: felis is GPL-3 and heavy, so it is used
only by the tests, which check that the files are valid Felis.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

#: libyaml's loader where PyYAML was built with it: the three Felis schemas load in ~30 ms instead
#: of ~250 ms with the pure-Python scanner, which is most of the server's start.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "Column",
    "DataModel",
    "ForeignKey",
    "Schema",
    "Table",
    "adql_name",
    "default_schema_paths",
    "load_model",
    "tap_schema_rows",
]

SCHEMA_DIR = Path(__file__).parent / "schema"
# Order matters: it becomes TAP_SCHEMA.schemas.schema_index, so ObsCore is listed first.
DEFAULT_FILES = ("ivoa.yaml", "dp1.yaml", "tap_schema.yaml")

_VOTABLE_TYPES = {
    "boolean": "boolean",
    "byte": "unsignedByte",
    "short": "short",
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "char": "char",
    "string": "char",
    "unicode": "unicodeChar",
    "text": "char",
    "binary": "unsignedByte",
    "timestamp": "char",
}
# byte is unsigned to match VOTable's unsignedByte; lengths are not enforced (DuckDB ignores them).

# ADQL 2.1 reserved words (SQL and ADQL lists of the grammar). A column or table called like one of
# these must appear quoted in TAP_SCHEMA (TAP 1.1 section 4.3), e.g. TAP_SCHEMA.columns."size".
_ADQL_RESERVED = frozenset(
    """
    ABS ABSOLUTE ACOS ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AREA AS ASC ASIN ASSERTION AT
    ATAN ATAN2 AUTHORIZATION AVG BEGIN BETWEEN BIGINT BIT BIT_LENGTH BOTH BOX BY CASCADE
    CASCADED CASE CAST CATALOG CEILING CENTROID CHAR CHARACTER CHARACTER_LENGTH CHAR_LENGTH
    CHECK CIRCLE CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT CONNECTION CONSTRAINT
    CONSTRAINTS CONTAINS CONTINUE CONVERT COORD1 COORD2 COORDSYS CORRESPONDING COS COT COUNT
    CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE
    DAY DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DEGREES DELETE DESC DESCRIBE
    DESCRIPTOR DIAGNOSTICS DISCONNECT DISTANCE DISTINCT DOMAIN DOUBLE DROP ELSE END ESCAPE
    EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXP EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT FLOOR FOR
    FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY ILIKE IMMEDIATE
    IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERSECTS
    INTERVAL INTO IN_UNIT IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOG
    LOG10 LOWER MATCH MAX MIN MINUTE MOD MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO NOT
    NULL NULLIF NUMERIC OCTET_LENGTH OF OFFSET ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT
    OVERLAPS PAD PARTIAL PI POINT POLYGON POSITION POWER PRECISION PREPARE PRESERVE PRIMARY
    PRIOR PRIVILEGES PROCEDURE PUBLIC RADIANS RAND READ REAL REFERENCES REGION RELATIVE RESTRICT
    REVOKE RIGHT ROLLBACK ROUND ROWS SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER
    SET SIN SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR SQLSTATE SQRT SUBSTRING SUM
    SYSTEM_USER TABLE TAN TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO TOP
    TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE TRUNCATE UNION UNIQUE UNKNOWN UPDATE
    UPPER USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE
    YEAR ZONE
    """.split()
)
_REGULAR_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def adql_name(name: str) -> str:
    """The form of an identifier that ADQL accepts: delimited when it is reserved or irregular."""
    if _REGULAR_IDENTIFIER.match(name) and name.upper() not in _ADQL_RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    name: str
    datatype: str  # Felis datatype
    length: int | None = None
    nullable: bool = True
    description: str = ""
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    arraysize: str | None = None  # explicit votable:arraysize, else derived from the length
    principal: bool = False
    std: bool = False
    indexed: bool = False
    column_index: int | None = None

    def __post_init__(self) -> None:
        if self.datatype not in _VOTABLE_TYPES:
            raise ValueError(f"column {self.name!r}: unknown Felis datatype {self.datatype!r}")

    @property
    def votable_datatype(self) -> str:
        return _VOTABLE_TYPES[self.datatype]

    @property
    def votable_arraysize(self) -> str | None:
        """Felis' rules: char(N) is fixed 'N', bounded strings are 'N*', text and timestamps '*'.

        A length of 1 gives no arraysize, since VOTable treats a missing arraysize as one element.
        """
        if self.arraysize:
            return self.arraysize
        if self.datatype in ("text", "timestamp"):
            return "*"
        if self.datatype == "char":
            return str(self.length) if self.length and self.length > 1 else None
        if self.datatype in ("string", "unicode", "binary"):
            if self.length is None:
                return "*"
            return f"{self.length}*" if self.length > 1 else None
        return None

    @property
    def votable_xtype(self) -> str | None:
        if self.xtype:
            return self.xtype
        return "timestamp" if self.datatype == "timestamp" else None

    @property
    def size(self) -> int | None:
        """TAP 1.0's "size": the arraysize as an integer, None when scalar or multi-dimensional."""
        arraysize = self.votable_arraysize
        if arraysize is None or "x" in arraysize:
            return None
        digits = arraysize.rstrip("*")
        return int(digits) if digits else None

    def arrow_type(self) -> pyarrow.DataType:
        import pyarrow as pa  # lazily: pyarrow is only needed by ingest and export

        return {
            "boolean": pa.bool_,
            "byte": pa.uint8,
            "short": pa.int16,
            "int": pa.int32,
            "long": pa.int64,
            "float": pa.float32,
            "double": pa.float64,
            "char": pa.string,
            "string": pa.string,
            "unicode": pa.string,
            "text": pa.string,
            "binary": pa.binary,
            "timestamp": lambda: pa.timestamp("us"),  # DuckDB TIMESTAMP has microseconds
        }[self.datatype]()

    def votable_attrs(self) -> dict[str, str]:
        """FIELD attributes for result tables; TAP 1.1 wants them to agree with TAP_SCHEMA."""
        attrs = {
            "name": self.name,
            "datatype": self.votable_datatype,
            "arraysize": self.votable_arraysize,
            "unit": self.unit,
            "ucd": self.ucd,
            "utype": self.utype,
            "xtype": self.votable_xtype,
        }
        out = {k: v for k, v in attrs.items() if v}
        out["description"] = self.description
        return out


@dataclass(frozen=True)
class ForeignKey:
    key_id: str
    from_table: str  # qualified, e.g. dp1.DiaSource
    target_table: str
    from_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    table_index: int | None = None
    utype: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    #: The Felis indexes' column lists (storages that build indexes build these).
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        """Case-insensitive, like regular ADQL identifiers; a miss suggests the nearest names."""
        wanted = name.lower()
        for col in self.columns:
            if col.name.lower() == wanted:
                return col
        close = difflib.get_close_matches(name, self.column_names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no column {name!r} in {self.qualified_name}{hint}")


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    version: str | None
    tables: tuple[Table, ...]
    schema_index: int | None = None


@dataclass(frozen=True)
class DataModel:
    schemas: tuple[Schema, ...]

    def tables(self) -> Iterator[Table]:
        for schema in self.schemas:
            yield from schema.tables

    def schema(self, name: str) -> Schema:
        for schema in self.schemas:
            if schema.name.lower() == name.lower():
                return schema
        raise KeyError(f"no schema {name!r}; known: {', '.join(s.name for s in self.schemas)}")

    def table(self, qualified_name: str) -> Table:
        wanted = qualified_name.lower()
        for table in self.tables():
            if table.qualified_name.lower() == wanted:
                return table
        names = [t.qualified_name for t in self.tables()]
        close = difflib.get_close_matches(qualified_name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no table {qualified_name!r}{hint}")


def default_schema_paths() -> tuple[Path, ...]:
    return tuple(SCHEMA_DIR / name for name in DEFAULT_FILES)


def _refs(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _column_name(ref: str, ids: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(table, column) of a Felis reference such as '#DiaSource.visit'."""
    if ref in ids:
        return ids[ref]
    table, _, column = ref.lstrip("#").partition(".")
    if not column:
        raise ValueError(f"cannot resolve Felis column reference {ref!r}")
    return table, column


def _load_schema(path: Path, schema_index: int) -> Schema:
    doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    schema_name = doc["name"]
    ids = {
        c.get("@id", f"#{t['name']}.{c['name']}"): (t["name"], c["name"])
        for t in doc["tables"]
        for c in t.get("columns", [])
    }
    tables = []
    for t in doc["tables"]:
        pk = tuple(_column_name(r, ids)[1] for r in _refs(t.get("primaryKey")))
        indexed = set(pk)
        for idx in t.get("indexes", []):
            indexed.update(_column_name(r, ids)[1] for r in idx.get("columns", [])[:1])
        fks = []
        for con in t.get("constraints", []):
            if con.get("@type") == "Unique":
                indexed.update(_column_name(r, ids)[1] for r in con["columns"][:1])
            if con.get("@type") != "ForeignKey":
                continue
            targets = [_column_name(r, ids) for r in con["referencedColumns"]]
            fks.append(
                ForeignKey(
                    key_id=con["name"],
                    from_table=f"{schema_name}.{t['name']}",
                    target_table=f"{schema_name}.{targets[0][0]}",
                    from_columns=tuple(_column_name(r, ids)[1] for r in con["columns"]),
                    target_columns=tuple(c for _, c in targets),
                    description=con.get("description") or "",
                )
            )
        columns = tuple(
            Column(
                name=c["name"],
                datatype=c["datatype"],
                length=c.get("length"),
                nullable=bool(c.get("nullable", True)) and c["name"] not in pk,
                description=(c.get("description") or "").strip(),
                unit=c.get("ivoa:unit") or c.get("fits:tunit"),
                ucd=c.get("ivoa:ucd"),
                utype=c.get("votable:utype"),
                xtype=c.get("votable:xtype"),
                arraysize=None if c.get("votable:arraysize") is None else str(c["votable:arraysize"]),
                principal=bool(c.get("tap:principal", 0)),
                std=bool(c.get("tap:std", 0)),
                indexed=c["name"] in indexed,
                column_index=c.get("tap:column_index"),
            )
            for c in t["columns"]
        )
        tables.append(
            Table(
                schema=schema_name,
                name=t["name"],
                description=(t.get("description") or "").strip(),
                columns=columns,
                primary_key=pk,
                table_index=t.get("tap:table_index"),
                utype=t.get("votable:utype"),
                foreign_keys=tuple(fks),
                indexes=tuple(tuple(_column_name(r, ids)[1] for r in idx.get("columns", []))
                              for idx in t.get("indexes", [])),
            )
        )
    version = doc.get("version")
    if isinstance(version, dict):  # Felis also allows {current: ..., compatible: [...]}
        version = version.get("current")
    return Schema(
        name=schema_name,
        description=(doc.get("description") or "").strip(),
        version=None if version is None else str(version),
        tables=tuple(tables),
        schema_index=schema_index,
    )


def load_model(paths: Iterable[Path] | None = None) -> DataModel:
    """Load Felis YAML files; their order sets schema_index. The packaged model is cached."""
    if paths is None:
        return _default_model()
    return DataModel(schemas=tuple(_load_schema(Path(p), i) for i, p in enumerate(paths)))


@lru_cache(maxsize=1)
def _default_model() -> DataModel:
    return load_model(default_schema_paths())



def tap_schema_rows(model: DataModel) -> dict[str, list[dict[str, Any]]]:
    """Rows of the five TAP 1.1 TAP_SCHEMA tables, keyed by table name.

    Row keys are the column names of the TAP_SCHEMA tables in tap_schema.yaml, so the rows can be
    inserted as they are. Every schema of the model is described, TAP_SCHEMA itself included, as
    TAP 1.1 asks. Names that ADQL would need delimited are stored with their quotes (TAP 1.1 4.2/4.3).
    """
    rows: dict[str, list[dict[str, Any]]] = {
        "schemas": [],
        "tables": [],
        "columns": [],
        "keys": [],
        "key_columns": [],
    }
    for schema in model.schemas:
        rows["schemas"].append(
            {
                "schema_name": adql_name(schema.name),
                "utype": None,
                "description": schema.description or None,
                "schema_index": schema.schema_index,
            }
        )
        for table in schema.tables:
            table_name = f"{adql_name(schema.name)}.{adql_name(table.name)}"
            rows["tables"].append(
                {
                    "schema_name": adql_name(schema.name),
                    "table_name": table_name,
                    "table_type": "table",
                    "utype": table.utype,
                    "description": table.description or None,
                    "table_index": table.table_index,
                }
            )
            for position, col in enumerate(table.columns, start=1):
                rows["columns"].append(
                    {
                        "table_name": table_name,
                        "column_name": adql_name(col.name),
                        "datatype": col.votable_datatype,
                        "arraysize": col.votable_arraysize,
                        "xtype": col.votable_xtype,
                        "size": col.size,
                        "description": col.description or None,
                        "utype": col.utype,
                        "unit": col.unit,
                        "ucd": col.ucd,
                        "indexed": int(col.indexed),
                        "principal": int(col.principal),
                        "std": int(col.std),
                        "column_index": col.column_index if col.column_index is not None else position,
                    }
                )
            for fk in table.foreign_keys:
                from_schema, _, from_name = fk.from_table.partition(".")
                target_schema, _, target_name = fk.target_table.partition(".")
                rows["keys"].append(
                    {
                        "key_id": fk.key_id,
                        "from_table": f"{adql_name(from_schema)}.{adql_name(from_name)}",
                        "target_table": f"{adql_name(target_schema)}.{adql_name(target_name)}",
                        "description": fk.description or None,
                        "utype": None,
                    }
                )
                for from_col, target_col in zip(fk.from_columns, fk.target_columns, strict=True):
                    rows["key_columns"].append(
                        {
                            "key_id": fk.key_id,
                            "from_column": adql_name(from_col),
                            "target_column": adql_name(target_col),
                        }
                    )
    return rows
