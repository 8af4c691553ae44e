"""``diavo export``: the served tables as Parquet files anyone can read (pyarrow, pandas, DuckDB).

Spatial tables keep their HEALPix order, so a reader filtering on position benefits from the
row-group statistics just as the server does; the storage column itself is not exported.
"""
from __future__ import annotations

from pathlib import Path

from diavo.server.archive import store


def export_parquet(root: Path, out: Path, row_group_size: int = 122_880) -> dict[str, Path]:
    import pyarrow.parquet as pq

    from diavo.server.archive.model import load_model

    model = load_model()
    con = store.connect(root, read_only=True)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    try:
        for schema in ("ivoa", "dp1"):
            for table in (t for t in model.tables() if t.schema == schema):
                q = f"{table.schema}.{table.name}"
                cols = ", ".join(f'"{c.name}"' for c in table.columns)
                order = (f"{store.HEALPIX_COLUMN}, " if q in store.SPATIAL_TABLES else "")
                key = ", ".join(f'"{k}"' for k in table.primary_key) or cols
                sql = f'SELECT {cols} FROM "{table.schema}"."{table.name}" ORDER BY {order}{key}'
                data = store.fetch_arrow(con, sql)
                data = data.cast(_schema_for(table, data.schema))
                path = out / f"{q}.parquet"
                pq.write_table(data, path, row_group_size=row_group_size, compression="zstd")
                written[q] = path
    finally:
        con.close()
    return written


def _schema_for(table, current):
    import pyarrow as pa

    fields = []
    for c, _f in zip(table.columns, current, strict=False):
        meta = {k: v for k, v in (("unit", c.unit), ("ucd", c.ucd), ("description", c.description)) if v}
        fields.append(pa.field(c.name, c.arrow_type(), nullable=c.nullable, metadata=meta))
    return pa.schema(fields, metadata={"diavo.table": f"{table.schema}.{table.name}"})
