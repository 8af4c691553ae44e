"""TAP_SCHEMA as Arrow tables, typed by the TAP_SCHEMA model itself (tap_schema.yaml).

Engines register these under ``Dialect.metadata_relation(name)``; VOSI /tables renders the
same rows, so the two descriptions can never drift apart.
"""
from __future__ import annotations

from functools import lru_cache

import pyarrow as pa

from diavo.server.archive.model import DataModel, tap_schema_rows


def tap_schema_tables(model: DataModel) -> dict[str, pa.Table]:
    rows = tap_schema_rows(model)
    schema = model.schema("TAP_SCHEMA")
    out: dict[str, pa.Table] = {}
    for table in schema.tables:
        data = rows[table.name]
        arrays = [pa.array([r[c.name] for r in data], type=c.arrow_type()) for c in table.columns]
        out[table.name] = pa.Table.from_arrays(arrays, names=[c.name for c in table.columns])
    return out


@lru_cache(maxsize=4)
def cached_tap_schema_tables(model: DataModel) -> dict[str, pa.Table]:
    """The model is immutable and hashable, so its TAP_SCHEMA is computed once per model."""
    return tap_schema_tables(model)
