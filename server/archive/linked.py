"""HATS catalogs linked into an archive: served through TAP without being copied.

``diavo ingest DIR --hats SCHEMA.TABLE=PATH`` records a HATS catalog — written by diavo, by LSDB
or by hats-import; a plain catalog or a collection (``collection.properties``, what LSDB's
``write_catalog`` writes by default) — in ``DIR/linked.json``. Its columns, types, units, UCDs and
descriptions come from the catalog's Parquet schema (``dataset/_common_metadata``) and its
positions from ``hats_col_ra``/``hats_col_dec``; the archive's data model gains the table (and its
schema), so TAP_SCHEMA, VOSI and the checker know it like any other, and the engine reads its
partition files in place. Columns Parquet types that VOTable cannot carry (nested lists, structs)
are left out of the model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from diavo.server.archive.model import Column, DataModel, Schema, Table, load_model

LINKED = "linked.json"


class LinkError(ValueError):
    """A path that is not a readable HATS catalog, or a name that cannot be linked."""


@dataclass(frozen=True)
class LinkedCatalog:
    qualified: str
    path: Path  # the catalog directory (hats.properties, partition_info.csv, dataset/)
    ra: str
    dec: str


def _properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def catalog_dir(path: Path) -> Path:
    """The catalog directory of ``path``: itself, or a collection's primary catalog."""
    path = Path(path).resolve()
    if (path / "collection.properties").is_file():
        primary = _properties(path / "collection.properties").get("hats_primary_table_url")
        if not primary:
            raise LinkError(f"{path}: collection.properties names no hats_primary_table_url")
        path = (path / primary).resolve()
    if not (path / "hats.properties").is_file() or not (path / "partition_info.csv").is_file():
        raise LinkError(f"{path} is not a HATS catalog (no hats.properties and partition_info.csv)")
    return path


def _datatype(arrow_type) -> str | None:
    import pyarrow as pa

    t = arrow_type
    checks = [(pa.types.is_boolean, "boolean"), (pa.types.is_int8, "short"), (pa.types.is_uint8, "byte"),
              (pa.types.is_int16, "short"), (pa.types.is_int32, "int"), (pa.types.is_int64, "long"),
              (pa.types.is_float32, "float"), (pa.types.is_float64, "double"), (pa.types.is_string, "string"),
              (pa.types.is_large_string, "string"), (pa.types.is_timestamp, "timestamp")]
    return next((name for check, name in checks if check(t)), None)


def describe(qualified: str, path: Path) -> tuple[LinkedCatalog, Table]:
    """The model table of the HATS catalog at ``path``, served as ``qualified``."""
    import pyarrow.parquet as pq

    schema_name, _, table_name = qualified.partition(".")
    if not schema_name or not table_name or "." in table_name:
        raise LinkError(f"link a catalog as SCHEMA.TABLE, not {qualified!r}")
    cat = catalog_dir(path)
    props = _properties(cat / "hats.properties")
    ra, dec = props.get("hats_col_ra"), props.get("hats_col_dec")
    if not ra or not dec:
        raise LinkError(f"{cat}: hats.properties gives no hats_col_ra/hats_col_dec")
    meta_path = cat / "dataset" / "_common_metadata"
    if not meta_path.is_file():
        meta_path = cat / "dataset" / "_metadata"
    arrow = pq.read_schema(meta_path)
    columns: list[Column] = []
    for field in arrow:
        datatype = _datatype(field.type)
        if datatype is None or field.name.startswith("_healpix") or field.name in ("Norder", "Dir", "Npix"):
            continue
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        columns.append(Column(field.name, datatype, nullable=field.nullable, description=meta.get("description", ""),
                              unit=meta.get("unit") or None, ucd=meta.get("ucd") or None,
                              arraysize="*" if datatype == "string" else None, principal=True,
                              column_index=len(columns) + 1))
    names = {c.name for c in columns}
    if ra not in names or dec not in names:
        raise LinkError(f"{cat}: the position columns {ra}, {dec} are not plain numeric columns")
    title = props.get("obs_title") or props.get("obs_collection") or cat.name
    table = Table(schema_name, table_name, f"HATS catalog {title} (linked from {cat.name})", tuple(columns))
    return LinkedCatalog(qualified, cat, ra, dec), table


def link(root: Path, qualified: str, path: Path) -> LinkedCatalog:
    """Record the catalog at ``path`` in the archive at ``root`` (checked first)."""
    linked, table = describe(qualified, path)
    if any(t.qualified_name.lower() == qualified.lower() for t in load_model().tables()):
        raise LinkError(f"{qualified} is a table of diavo's own model; link the catalog under another name")
    entries = _read(root)
    entries[qualified] = {"path": str(linked.path)}
    (Path(root) / LINKED).write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return linked


def _read(root: Path) -> dict:
    path = Path(root) / LINKED
    return json.loads(path.read_text()) if path.is_file() else {}


def linked_catalogs(root: Path) -> dict[str, tuple[LinkedCatalog, Table]]:
    return {q: describe(q, Path(e["path"])) for q, e in sorted(_read(root).items())}


def archive_model(root: Path | None) -> DataModel:
    """diavo's model, plus the tables of the catalogs linked into the archive at ``root``."""
    model = load_model()
    linked = linked_catalogs(root) if root is not None else {}
    if not linked:
        return model
    schemas = list(model.schemas)
    for _, table in linked.values():
        found = next((i for i, s in enumerate(schemas) if s.name.lower() == table.schema.lower()), None)
        if found is None:
            schemas.append(Schema(table.schema, "Linked HATS catalogs", None, (table,), len(schemas) + 1))
        else:
            s = schemas[found]
            schemas[found] = replace(s, tables=(*s.tables, replace(table, schema=s.name)))
    return DataModel(schemas=tuple(schemas))
