"""``diavo export DIR --hats OUT``: the spatial catalogs as HATS catalogs that LSDB opens.

HATS (Hierarchical Adaptive Tiling Scheme) is the HEALPix-partitioned Parquet layout the Rubin
community's tools share: ``hats.properties``, ``partition_info.csv``,
``dataset/Norder=k/Dir=d/Npix=n.parquet`` with ``_metadata`` and ``_common_metadata``, and the
``_healpix_29`` index column; partitions are split adaptively by row count. The layout is written
by LSDB itself (``lsdb.from_dataframe`` then ``write_catalog``), so it is exactly what LSDB and
hats read; the model's units, UCDs and descriptions are then added to the fields of
``dataset/_common_metadata``, the schema readers take a catalog's column metadata from.

``diavo demo build`` and ``diavo ingest`` write these catalogs into the archive (``DIR/hats``,
archive format 3) without a margin; ``diavo export --hats OUT --margin ARCSEC`` also writes each
catalog's margin cache (the rows within ARCSEC outside each partition, for LSDB cross-matches) and
the collection that ties the two together, LSDB's default layout.

The rows pass through pandas in memory: fine for the demo archives (the dp1 scale needs a few
GB); larger catalogs belong to ``hats-import``'s out-of-core pipeline.
"""
from __future__ import annotations

from pathlib import Path

from diavo.server.archive import store

#: Rows per HATS partition at most (LSDB's adaptive split stops below this), and the deepest
#: HEALPix order a partition may have: order 8 pixels are 0.23 deg across, so a partition stays
#: under the row limit up to ~5M rows per square degree, and the split's per-pixel histogram
#: (12·4^k bins) costs a fraction of a second (order 10 cost 5 s per table).
PARTITION_ROWS = 250_000
HIGHEST_ORDER = 8


def export_hats(root: Path, out: Path, partition_rows: int = PARTITION_ROWS,
                margin_arcsec: float | None = None) -> dict[str, Path]:
    """Write each spatial table of the archive at ``root`` that has rows as a HATS catalog
    ``out/SCHEMA.TABLE`` (a collection with its margin cache when ``margin_arcsec`` is given)."""
    import shutil

    import lsdb

    from diavo.server.archive.model import load_model

    model = load_model()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    con = store.connect(root, read_only=True)
    try:
        for qualified, (ra, dec) in store.SPATIAL_TABLES.items():
            table = model.table(qualified)
            cols = ", ".join(f'"{c.name}"' for c in table.columns)
            key = ", ".join(f'"{k}"' for k in table.primary_key) or cols
            data = store.fetch_arrow(con, f'SELECT {cols} FROM "{table.schema}"."{table.name}" '
                                          f"ORDER BY {store.HEALPIX_COLUMN}, {key}")
            path = out / qualified
            if data.num_rows == 0:  # HATS has no empty catalog; the table is served natively
                shutil.rmtree(path, ignore_errors=True)
                continue
            frame = data.to_pandas(types_mapper=_arrow_dtype)
            catalog = lsdb.from_dataframe(frame, ra_column=ra, dec_column=dec, catalog_name=table.name,
                                          partition_rows=partition_rows, highest_order=HIGHEST_ORDER,
                                          margin_threshold=margin_arcsec)
            shutil.rmtree(path, ignore_errors=True)  # a catalog replaces a collection and vice versa
            catalog.write_catalog(path, as_collection=margin_arcsec is not None, overwrite=True,
                                  progress_bar=False)
            for metadata in path.glob("**/dataset/_common_metadata"):  # the catalog and its margin
                _describe_columns(metadata, table)
            written[qualified] = path
    finally:
        con.close()
    return written


def _arrow_dtype(arrow_type):
    import pandas as pd

    return pd.ArrowDtype(arrow_type)


def _describe_columns(path: Path, table) -> None:
    """Units, UCDs and descriptions of the model's columns on the catalog schema's fields."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    fields = []
    for f in schema:
        try:
            col = table.column(f.name)
        except KeyError:
            fields.append(f)
            continue
        meta = {k: v for k, v in (("unit", col.unit), ("ucd", col.ucd), ("description", col.description)) if v}
        fields.append(f.with_metadata({**(f.metadata or {}), **{k.encode(): v.encode() for k, v in meta.items()}}))
    pq.write_metadata(pa.schema(fields, metadata=schema.metadata), path)
