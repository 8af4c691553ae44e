"""Benchmark the ADQL geometry functions inside DuckDB (medians; prints numbers, asserts
nothing but equal results).

    python bench/bench_geometry.py                 # builds a 10M-row HEALPix-ordered table
    python bench/bench_geometry.py --rows 2000000
    python bench/bench_geometry.py --archive DIR   # dp1.DiaSource of a demo build

Timings are for the query inside the engine down to an Arrow table, on a read-only connection.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from diavo.server.adql import cover
from diavo.server.adql import geometry as G
from diavo.server.engine import duckdb_functions

CENTRE = (53.1, -28.1)      # ECDFS, where DP1 is


def median_ms(fn, repeat):
    fn()                                            # warm caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def to_arrow(con, sql):
    rel = con.sql(sql)
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()


def build_table(path: Path, rows: int, seed: int = 1) -> None:
    """Points uniform over ~8 deg^2 around CENTRE (10M rows give ~10k in a 0.05 deg cone)."""
    import duckdb
    import pyarrow as pa

    from diavo.server.archive.store import healpix_index

    rng = np.random.default_rng(seed)
    half = 1.45
    ra = CENTRE[0] + (rng.random(rows) * 2 - 1) * half / np.cos(np.radians(CENTRE[1]))
    s0, s1 = np.sin(np.radians([CENTRE[1] - half, CENTRE[1] + half]))
    dec = np.degrees(np.arcsin(rng.uniform(s0, s1, rows)))
    con = duckdb.connect(str(path))
    con.register("src", pa.table({"ra": ra, "dec": dec, "_healpix": healpix_index(ra, dec)}))
    con.execute("CREATE TABLE t AS SELECT * FROM src ORDER BY _healpix")
    con.close()


def _udf_in_circle(ra, dec, cra, cdec, r):
    """The numpy alternative to the SQL macro, for the comparison only."""
    import pyarrow as pa

    from diavo.server.adql import spherical as S
    ra, dec = ra.to_numpy(), dec.to_numpy()
    return pa.array(S.in_circle(ra, dec, cra[0].as_py(), cdec[0].as_py(), r[0].as_py()))


def main(argv=None) -> None:
    import duckdb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--archive", type=Path, help="use dp1.DiaSource of this archive")
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--radius", type=float, default=0.05)
    args = ap.parse_args(argv)

    tmp = None
    if args.archive:
        path, table = args.archive / "catalog.duckdb", "dp1.DiaSource"
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_geometry_")
        path, table = Path(tmp.name) / "points.duckdb", "t"
        t = time.perf_counter()
        build_table(path, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - t:.1f} s")
    con = duckdb.connect(str(path), read_only=True, config={"enable_external_access": False})
    duckdb_functions.register(con)
    n = con.execute(f"SELECT count(*), avg(ra), avg(dec) FROM {table}").fetchall()[0]
    cra, cdec = (float(n[1]), float(n[2])) if args.archive else CENTRE
    print(f"table {table}: {n[0]:,} rows; cone at ({cra:.4f}, {cdec:.4f}) r={args.radius} deg; "
          f"median of {args.repeat}")

    r = args.radius
    t_rng, ranges = median_ms(lambda: cover.healpix_ranges("circle", (cra, cdec, r)), args.repeat)
    hp = cover.healpix_filter_sql(ranges)
    cone = f"adql_in_circle(ra, dec, {cra!r}, {cdec!r}, {r!r})"
    cols = "ra, dec"
    rows = {}

    def report(label, sql, repeat=args.repeat):
        ms, tbl = median_ms(lambda: to_arrow(con, sql), repeat)
        rows[label] = tbl.num_rows
        print(f"  {label:<44s} {ms:9.2f} ms  {tbl.num_rows:>8,} rows")

    print(f"healpix_ranges(circle): {t_rng:.3f} ms, {len(ranges)} ranges")
    report("cone, brute force (SQL macro)", f"SELECT {cols} FROM {table} WHERE {cone}", 7)
    double, _, boolean, _, _ = duckdb_functions._types()
    con.create_function("udf_in_circle", _udf_in_circle, [double] * 5, boolean, type="arrow")
    report("cone, brute force (numpy arrow UDF)",
           f"SELECT {cols} FROM {table} WHERE udf_in_circle(ra, dec, {cra!r}, {cdec!r}, {r!r})", 3)
    report("cone, HEALPix-pruned (SQL macro)", f"SELECT {cols} FROM {table} WHERE {hp} AND {cone}")
    report("cone via adql_contains(POINT, CIRCLE), pruned",
           f"SELECT {cols} FROM {table} WHERE {hp} AND adql_contains(list_value(1.0, ra, dec), "
           f"[2.0, {cra!r}, {cdec!r}, {r!r}]) = 1")
    assert len(set(rows.values())) == 1, rows

    # a CCD-sized polygon (~0.2 x 0.2 deg), rotated, around the same centre
    dra = 0.1 / np.cos(np.radians(cdec))
    verts = [cra + dra, cdec - 0.12, cra + dra * 1.2, cdec + 0.1, cra - dra, cdec + 0.12,
             cra - dra * 1.1, cdec - 0.1]
    t_prng, pranges = median_ms(lambda: cover.healpix_ranges("polygon", verts), args.repeat)
    poly = "[" + ", ".join(repr(float(v)) for v in verts) + "]::DOUBLE[]"
    print(f"healpix_ranges(polygon): {t_prng:.3f} ms, {len(pranges)} ranges")
    rows.clear()
    report("polygon, brute force (UDF)",
           f"SELECT {cols} FROM {table} WHERE adql_in_polygon(ra, dec, {poly})", 3)
    report("polygon, HEALPix-pruned (UDF)", f"SELECT {cols} FROM {table} WHERE "
           f"{cover.healpix_filter_sql(pranges)} AND adql_in_polygon(ra, dec, {poly})")
    assert len(set(rows.values())) == 1, rows

    # adql_region on 16k STC-S strings (s_region-like, all different)
    rng = np.random.default_rng(2)
    k = 16384
    c_ra, c_dec = rng.random(k) * 360, rng.uniform(-80, 80, k)
    texts = [f"POLYGON ICRS {a + .1:.6f} {d - .1:.6f} {a + .1:.6f} {d + .1:.6f} "
             f"{a - .1:.6f} {d + .1:.6f} {a - .1:.6f} {d - .1:.6f}" for a, d in zip(c_ra, c_dec, strict=False)]
    import pyarrow as pa
    con.register("regions", pa.table({"s_region": texts}))
    G._shape.cache_clear()
    ms, out = median_ms(lambda: to_arrow(con, "SELECT adql_region(s_region) AS g FROM regions"), 5)
    assert out.column("g").null_count == 0
    print(f"  {'adql_region on 16,384 STC-S polygons':<44s} {ms:9.2f} ms")
    ms, _ = median_ms(lambda: to_arrow(
        con, f"SELECT count(*) FROM regions WHERE adql_intersects(adql_region(s_region), "
             f"[2.0, {float(c_ra[0])!r}, {float(c_dec[0])!r}, 1.0]) = 1"), 5)
    print(f"  {'INTERSECTS(s_region, CIRCLE) on 16,384 rows':<44s} {ms:9.2f} ms")
    con.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
