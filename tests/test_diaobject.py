"""DiaObject statistics do not depend on how many threads compute them."""
from __future__ import annotations

import duckdb

from diavo.server.archive.diaobject import create_diaobject_table

BANDS_SQL = "['u','g','r','i','z','y'][1 + (i % 6)::INT]"


def _catalog(con: duckdb.DuckDBPyConnection) -> None:
    """Many objects with many sources each, so a parallel aggregation splits every group."""
    con.execute(f"""
        CREATE TABLE src AS SELECT
            i AS diaSourceId, (i * 7919) % 4000 AS diaObjectId, {BANDS_SQL} AS band,
            (i * 0.618033988749) % 360 AS ra, ((i * 0.414213562) % 120) - 60 AS dec,
            sin(i * 1.7) * 1000 + 5000 AS psfFlux, 10 + (i % 13) AS psfFluxErr,
            cos(i * 0.3) * 900 + 4000 AS scienceFlux, 11 + (i % 7) AS scienceFluxErr,
            60600 + (i % 997) * 0.37 AS midpointMjdTai
        FROM range(200000) r(i)""")


def test_diaobject_table_is_bit_identical_whatever_the_threads_setting():
    """At 8 threads an unpinned parallel aggregation differs in the last bits from run to run."""
    con = duckdb.connect()
    _catalog(con)
    results = []
    for i, threads in enumerate((1, 2, 8, 8, 8)):
        con.execute(f"SET threads TO {threads}")
        create_diaobject_table(con, f"obj{i}", source_table="src")
        assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == threads  # restored
        results.append(con.sql(f"SELECT * FROM obj{i} ORDER BY diaObjectId").to_arrow_table())
    assert results[0].num_rows == 4000
    for other in results[1:]:
        # Arrow equality compares every value exactly (NaN only where both are NULL).
        assert other.equals(results[0])

