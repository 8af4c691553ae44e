"""What a deterministic DiaObject aggregation costs (prints numbers, asserts only equal results).

    python bench/bench_diaobject.py [--rows 2000000]

Runs ``diaobject_sql`` over a synthetic source table three ways, in one process: parallel on every
core (fast, but floating-point sums differ in the last bits from run to run), pinned to one thread
(what ``create_diaobject_table`` does: bit-identical), and with ordered aggregates (``sum(x ORDER
BY t, diaSourceId)``, also exact) on every core. Times are medians of three.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import duckdb

from diavo.server.archive.diaobject import create_diaobject_table, diaobject_sql


def synthetic(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    con.execute(f"""
        CREATE TABLE src AS SELECT
            i AS diaSourceId, (i * 7919) % {max(rows // 50, 1)} AS diaObjectId,
            ['u','g','r','i','z','y'][1 + (i % 6)::INT] AS band,
            (i * 0.618033988749) % 360 AS ra, ((i * 0.414213562) % 120) - 60 AS dec,
            sin(i * 1.7) * 1000 + 5000 AS psfFlux, 10 + (i % 13) AS psfFluxErr,
            cos(i * 0.3) * 900 + 4000 AS scienceFlux, 11 + (i % 7) AS scienceFluxErr,
            60600 + (i % 997) * 0.37 AS midpointMjdTai
        FROM range({rows}) r(i)""")


def timed(fn) -> float:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    con = duckdb.connect()
    synthetic(con, args.rows)
    counter = iter(range(10**6))

    def parallel() -> None:
        con.execute(f"SET threads TO {cores}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE p AS {diaobject_sql('src')}")

    def pinned() -> None:
        con.execute(f"SET threads TO {cores}")
        create_diaobject_table(con, f"t{next(counter)}", source_table="src")

    # The ordered variant: the order-sensitive per-band statistics get ORDER BY t, diaSourceId
    # (the weighted means of the w step stay as they are, so this understates its cost).
    ordered_sql = diaobject_sql("src")
    for fn in ("regr_slope(f, t", "regr_intercept(f, t", "avg(e", "stddev_samp(f", "stddev_samp(sf",
               "skewness(f"):
        ordered_sql = ordered_sql.replace(f"{fn})", f"{fn} ORDER BY t, diaSourceId)")
    assert "ORDER BY t, diaSourceId)" in ordered_sql

    def ordered() -> None:
        con.execute(f"SET threads TO {cores}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE o AS {ordered_sql}")

    t_par, t_pin, t_ord = timed(parallel), timed(pinned), timed(ordered)
    print(f"DiaObject aggregation over {args.rows:,} sources, {cores} cores (median of 3):")
    print(f"  parallel, not reproducible       {t_par:7.2f} s")
    print(f"  one thread (diavo's build)       {t_pin:7.2f} s   {t_pin / t_par:.2f}x parallel")
    print(f"  ordered aggregates, all cores    {t_ord:7.2f} s   {t_ord / t_par:.2f}x parallel")
    a = con.sql("SELECT * FROM t0 ORDER BY diaObjectId").to_arrow_table()
    b = con.sql("SELECT * FROM t1 ORDER BY diaObjectId").to_arrow_table()
    print(f"  two pinned runs bit-identical: {a.equals(b)}")


if __name__ == "__main__":
    main()
