"""An archive on disk: a directory holding the DuckDB catalog, a manifest and (for ingested
archives) image files.

Layout of DIR (archive format 3):
  archive.json     what built the archive (scale, seed, base URL, HEALPix depth, format)
  catalog.duckdb   schemas ivoa, dp1 (served) and diavo (internal: how to produce each image)
  hats/            the spatial tables as HATS catalogs (hats/dp1.DiaSource, hats/dp1.DiaObject),
                   what LSDB, Spark and ``diavo serve --storage hats`` read
  images/          FITS files copied in by ``diavo ingest``

The served tables are created from the Felis data model. Spatially queried tables carry one
storage column, ``_healpix`` (nested index at HEALPIX_DEPTH), and are stored in its order so
DuckDB's zone maps let a spatial filter skip most row groups; it is not part of the data model.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from diavo.server.archive.layout import Layout, Partition, RegionBounds, SpatialIndex
from diavo.shared.healpix import lonlat_to_index

MANIFEST = "archive.json"
CATALOG = "catalog.duckdb"
IMAGES_DIR = "images"
#: The archive's own HATS catalogs of its spatial tables (format 3).
HATS_DIR = "hats"
FORMAT_VERSION = 3
HEALPIX_DEPTH = 16
HEALPIX_COLUMN = "_healpix"
#: HATS's index column: the nested HEALPix index at order 29.
HATS_HEALPIX_COLUMN = "_healpix_29"
HATS_HEALPIX_ORDER = 29
#: Tables stored in HEALPix order, with the columns that give their position.
SPATIAL_TABLES = {"dp1.DiaSource": ("ra", "dec"), "dp1.DiaObject": ("ra", "dec")}
#: Storage columns of the spatial tables holding the position as a unit vector, so a cone test
#: is one dot product (no trigonometry per row).
UNIT_VECTOR_COLUMNS = ("_x", "_y", "_z")
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
#: ObsCore's footprint and the columns that bound it (centre and diameter).
FOOTPRINT_BOUNDS = {"s_region": ("s_ra", "s_dec", "s_fov")}
READ_CONFIG = {"enable_external_access": False}

IMAGE_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS diavo.image (
    visit BIGINT NOT NULL, detector BIGINT NOT NULL, kind VARCHAR NOT NULL, path VARCHAR,
    field VARCHAR, band VARCHAR, physical_filter VARCHAR, day_obs BIGINT,
    boresight_ra DOUBLE, boresight_dec DOUBLE, rotation_deg DOUBLE, obs_start_mjd_tai DOUBLE,
    exp_time DOUBLE, airmass DOUBLE, par_angle_rad DOUBLE, altitude_deg DOUBLE, azimuth_deg DOUBLE,
    air_pressure_pa DOUBLE, air_temperature_c DOUBLE, humidity_pct DOUBLE,
    psf_ixx0 DOUBLE, psf_ixx1 DOUBLE, psf_ixx2 DOUBLE, psf_iyy0 DOUBLE, psf_iyy1 DOUBLE,
    psf_iyy2 DOUBLE, psf_ixy0 DOUBLE, psf_ixy1 DOUBLE, psf_ixy2 DOUBLE,
    var_level DOUBLE, var_grad_x DOUBLE, var_grad_y DOUBLE, seed BIGINT, width INTEGER, height INTEGER,
    PRIMARY KEY (visit, detector)
)
"""


@dataclass(frozen=True)
class Manifest:
    scale: str
    seed: int | None
    base_url: str
    healpix_depth: int = HEALPIX_DEPTH
    format_version: int = FORMAT_VERSION

    def write(self, root: Path) -> None:
        (root / MANIFEST).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, root: Path) -> Manifest:
        data = json.loads((root / MANIFEST).read_text())
        version = data.get("format_version")
        if version == 2:
            raise ArchiveFormatError(
                f"{root} holds archive format 2 (no HATS catalogs); this diavo reads format {FORMAT_VERSION}: "
                f"migrate it in place with 'diavo migrate {root}' (writes its spatial tables as HATS under "
                f"{Path(root) / HATS_DIR}; nothing else changes)")
        if version != FORMAT_VERSION:
            raise ArchiveFormatError(f"{root} holds archive format {version}, this diavo reads format "
                                     f"{FORMAT_VERSION}: rebuild it with 'diavo demo build' or 'diavo ingest'")
        return cls(**data)


class ArchiveFormatError(ValueError):
    """An archive written by another version of diavo (the message says what to run)."""


def own_hats_dir(root: Path) -> Path:
    """Where an archive keeps the HATS catalogs of its spatial tables."""
    return Path(root) / HATS_DIR


def healpix_index(ra, dec, depth: int = HEALPIX_DEPTH) -> np.ndarray:
    if len(ra) == 0:
        return np.zeros(0, dtype=np.int64)
    return lonlat_to_index(ra, dec, depth)


#: The name the catalog is attached under on a connection that also reads Parquet files.
ATTACHED_CATALOG = "catalog"


def connect_with_files(root: Path, directories: list[Path]):
    """A query connection that reads the catalog and the Parquet files under ``directories``
    only: an in-memory DuckDB with the catalog attached read-only, then external access disabled
    except for those directories (no writes, no other file or URL reachable from SQL)."""
    import duckdb

    path = Path(root) / CATALOG
    if not path.exists():
        raise FileNotFoundError(f"no archive at {root} (missing {CATALOG}); build one with 'diavo demo build'")
    con = duckdb.connect()
    con.execute(f"ATTACH {_sql_string(str(path))} AS {ATTACHED_CATALOG} (READ_ONLY)")
    con.execute(f"USE {ATTACHED_CATALOG}")
    allowed = ", ".join(_sql_string(str(Path(d).resolve()) + "/") for d in directories)
    con.execute(f"SET allowed_directories = [{allowed}]")
    con.execute("SET enable_external_access = false")
    return con


def hats_partition_file(catalog: Path, order: int, pixel: int) -> Path:
    """HATS v1.0: ``dataset/Norder=k/Dir=d/Npix=n.parquet``, d the pixel rounded down to 10,000."""
    return catalog / "dataset" / f"Norder={order}" / f"Dir={pixel // 10000 * 10000}" / f"Npix={pixel}.parquet"


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def hats_layout(model, hats_dir: Path) -> Layout:
    """The layout of an archive whose spatial tables are read from the HATS catalogs in
    ``hats_dir`` (``diavo export --hats``): their ``_healpix_29`` index (covers computed at this
    storage's own order and shifted), no stored unit vectors."""
    from diavo.server.archive.linked import catalog_dir

    base = physical_layout(model)
    spatial, partitions = dict(base.spatial), {}
    found = {name: Path(hats_dir).resolve() / name for name in SPATIAL_TABLES}
    found = {name: catalog_dir(path) for name, path in found.items()  # a catalog, or a collection
             if (path / "hats.properties").is_file() or (path / "collection.properties").is_file()}
    if not found:
        raise FileNotFoundError(f"no HATS catalog of {', '.join(SPATIAL_TABLES)} in {hats_dir} "
                                "(write them with 'diavo export --hats')")
    for name, catalog in found.items():  # a table with no catalog (no rows) is read natively
        ra, dec = SPATIAL_TABLES[name]
        spatial[name] = hats_index_of(ra, dec)
        partitions[name] = _hats_partitions(catalog)
    return Layout(spatial=spatial, regions=base.regions, partitions=partitions)


def hats_index_of(ra: str, dec: str) -> SpatialIndex:
    return SpatialIndex(ra, dec, HATS_HEALPIX_COLUMN, HATS_HEALPIX_ORDER, None, cover_order=HEALPIX_DEPTH)


def _hats_partitions(catalog: Path) -> tuple[Partition, ...]:
    import csv

    with open(catalog / "partition_info.csv", newline="") as f:
        cells = [(int(row["Norder"]), int(row["Npix"])) for row in csv.DictReader(f)]
    return tuple(Partition(k, pix, str(hats_partition_file(catalog, k, pix))) for k, pix in sorted(cells))


def archive_layout(model, root: Path, hats_dir: Path | None = None) -> tuple[Layout, list[Path]]:
    """The layout of the archive at ``root`` (its own tables, or the spatial ones from the HATS
    catalogs in ``hats_dir``) with its linked HATS catalogs, and the directories the engine must
    be able to read besides the catalog."""
    from diavo.server.archive.linked import linked_catalogs

    layout = hats_layout(model, hats_dir) if hats_dir is not None else physical_layout(model)
    directories = [Path(hats_dir)] if hats_dir is not None else []
    linked = linked_catalogs(root)
    if not linked:
        return layout, directories
    spatial, partitions = dict(layout.spatial), dict(layout.partitions)
    for qualified, (cat, _table) in linked.items():
        spatial[qualified] = hats_index_of(cat.ra, cat.dec)
        partitions[qualified] = _hats_partitions(cat.path)
        directories.append(cat.path)
    return Layout(spatial=spatial, regions=layout.regions, partitions=partitions), directories


def connect(root: Path, read_only: bool = True):
    import duckdb

    path = Path(root) / CATALOG
    if not read_only:
        return duckdb.connect(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no archive at {root} (missing {CATALOG}); build one with 'diavo demo build'")
    # One configuration for every reader in a process (DuckDB refuses a second handle on the same
    # file with another one). Reading needs no file system access beyond the catalog itself.
    return duckdb.connect(str(path), read_only=True, config=dict(READ_CONFIG))


def create_catalog(root: Path, model):
    """A fresh, empty catalog with every served table and the internal image table."""

    root.mkdir(parents=True, exist_ok=True)
    path = root / CATALOG
    for stale in (path, path.with_suffix(".duckdb.wal")):
        if stale.exists():
            stale.unlink()
    con = connect(root, read_only=False)
    # One thread while writing keeps row-group layout, and so the file, reproducible.
    con.execute("SET threads TO 1")
    # Large builds spill to disk rather than grow past the benchmark's memory budget.
    con.execute("SET memory_limit = '1500MB'")
    con.execute("SET preserve_insertion_order = true")
    for stmt in catalog_ddl(model, schemas=["ivoa", "dp1"]):
        con.execute(stmt)
    for qualified in SPATIAL_TABLES:
        s, t = qualified.split(".")
        for col, sqltype in ((HEALPIX_COLUMN, "BIGINT"),) + tuple((c, "DOUBLE") for c in UNIT_VECTOR_COLUMNS):
            con.execute(f'ALTER TABLE "{s}"."{t}" ADD COLUMN {col} {sqltype}')
    con.execute("CREATE SCHEMA IF NOT EXISTS diavo")
    con.execute(IMAGE_TABLE_DDL)
    return con


def insert_arrow(con, model, qualified: str, data, order_by: str | None = None,
                 exprs: dict[str, str] | None = None) -> int:
    """Insert an Arrow table into a served table, mapping columns by name (see insert_from)."""
    con.register("_incoming", data)
    try:
        insert_from(con, model, qualified, "_incoming", data.column_names, order_by, exprs)
    finally:
        con.unregister("_incoming")
    return data.num_rows


def insert_from(con, model, qualified: str, relation: str, have, order_by: str | None = None,
                exprs: dict[str, str] | None = None) -> None:
    """INSERT ... SELECT from a relation, mapping columns by name.

    Model columns missing from the relation are filled by ``exprs`` (SQL over its columns) or
    NULL, so a loader only provides what it truly measured.
    """
    table = model.table(qualified)
    have = set(have)
    exprs = exprs or {}
    cols, sel = [], []
    for c in table.columns:
        cols.append(f'"{c.name}"')
        if c.name in exprs:
            sel.append(f"({exprs[c.name]})")
        elif c.name in have:
            sel.append(f'"{c.name}"')
        else:
            sel.append("NULL")
    if qualified in SPATIAL_TABLES and HEALPIX_COLUMN in have:
        cols.append(HEALPIX_COLUMN)
        sel.append(HEALPIX_COLUMN)
    if qualified in SPATIAL_TABLES and set(SPATIAL_TABLES[qualified]) <= have:
        ra, dec = (f'radians("{c}")' for c in SPATIAL_TABLES[qualified])
        cols += list(UNIT_VECTOR_COLUMNS)
        sel += [f"cos({dec}) * cos({ra})", f"cos({dec}) * sin({ra})", f"sin({dec})"]
    s, t = table.schema, table.name
    con.execute(f'INSERT INTO "{s}"."{t}" ({", ".join(cols)}) SELECT {", ".join(sel)} FROM {relation}'
                + (f" ORDER BY {order_by}" if order_by else ""))


def resort_spatial(con, model, qualified: str) -> None:
    """Restore HEALPix order after an append, keeping the table and its constraints."""
    table = model.table(qualified)
    s, t = table.schema, table.name
    key = ", ".join(f'"{k}"' for k in table.primary_key)
    con.execute(f'CREATE TEMP TABLE _resort AS SELECT * FROM "{s}"."{t}" ORDER BY {HEALPIX_COLUMN}'
                + (f", {key}" if key else ""))
    con.execute(f'DELETE FROM "{s}"."{t}"')
    con.execute(f'INSERT INTO "{s}"."{t}" SELECT * FROM _resort')
    con.execute("DROP TABLE _resort")


def fetch_arrow(con, sql: str, params=None):
    """Run a query and return an Arrow table (DuckDB renamed this call across versions)."""
    rel = con.sql(sql, params=params) if params else con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


def physical_layout(model) -> Layout:
    """Where this storage keeps what the emitter's fast paths need: the HEALPix index and unit
    vector of each spatial table, and the bounding columns of each stored footprint that has them
    (an ``adql:REGION`` column of a table with ObsCore's s_ra, s_dec and s_fov)."""
    spatial = {name: SpatialIndex(ra, dec, HEALPIX_COLUMN, HEALPIX_DEPTH, UNIT_VECTOR_COLUMNS)
               for name, (ra, dec) in SPATIAL_TABLES.items()}
    regions = {}
    for table in model.tables():
        names = set(table.column_names)
        for col in table.columns:
            bounds = FOOTPRINT_BOUNDS.get(col.name)
            if bounds and (col.xtype or "").lower() == "adql:region" and set(bounds) <= names:
                regions[(table.qualified_name, col.name)] = RegionBounds(*bounds)
    return Layout(spatial=spatial, regions=regions)


#: The catalog's column types for the model's (Felis) datatypes.
CATALOG_TYPES = {
    "boolean": "BOOLEAN",
    "byte": "UTINYINT",
    "short": "SMALLINT",
    "int": "INTEGER",
    "long": "BIGINT",
    "float": "REAL",
    "double": "DOUBLE",
    "char": "VARCHAR",
    "string": "VARCHAR",
    "unicode": "VARCHAR",
    "text": "VARCHAR",
    "binary": "BLOB",
    "timestamp": "TIMESTAMP",
}


def catalog_ddl(model, schemas: Iterable[str] | None = None) -> list[str]:
    """CREATE SCHEMA / CREATE TABLE statements for DuckDB.

    Foreign keys are left out on purpose: DuckDB checks them row by row and forbids updating or
    deleting referenced rows, which makes bulk loads of DiaSource slow and reloads of Visit or
    DiaObject impossible. They are still published in TAP_SCHEMA.keys for clients. Plain CREATE
    TABLE (not IF NOT EXISTS) so that a stale table of another shape is an error, not a surprise.
    """
    wanted = None if schemas is None else {s.lower() for s in schemas}
    statements: list[str] = []
    for schema in model.schemas:
        if wanted is not None and schema.name.lower() not in wanted:
            continue
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {_quote_sql(schema.name)}")
        for table in schema.tables:
            lines = [
                f"    {_quote_sql(c.name)} {CATALOG_TYPES[c.datatype]}{'' if c.nullable else ' NOT NULL'}"
                for c in table.columns
            ]
            if table.primary_key:
                lines.append(f"    PRIMARY KEY ({', '.join(_quote_sql(c) for c in table.primary_key)})")
            statements.append(
                f"CREATE TABLE {_quote_sql(schema.name)}.{_quote_sql(table.name)} (\n"
                + ",\n".join(lines)
                + "\n)"
            )
    return statements


def _quote_sql(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
