"""The catalog's own DuckDB tables against the same tables read from HATS (prints numbers; asserts
only that both storages give the same rows).

    python bench/bench_hats.py --archive DIR [--hats HATSDIR] [--repeat 30]

The HATS side reads the archive's own catalogs (DIR/hats, archive format 3) unless ``--hats``
names others; an archive without them is first exported (``diavo export --hats``) to a temporary
directory, timed. Every query runs through the whole engine path (translate, DuckDB, Arrow), one
storage after the other per repetition, in one process; figures are medians (p50) and 95th
percentiles over the repetitions. For the cones it also prints how many partitions and Parquet
row groups the plan leaves to read (row groups whose ``_healpix_29`` statistics meet the cover;
DuckDB skips the others).
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from diavo.server.archive.hats_export import export_hats
from diavo.server.archive.model import load_model
from diavo.server.engine.base import Limits
from diavo.server.engine.duckdb_engine import DuckDBEngine
from diavo.server.query.executor import QueryService

CENTRES = [(53.125, -27.74), (53.3, -27.9), (59.1, -48.8), (40.0, -34.4), (94.8, -25.2), (37.9, 6.9)]
CONE = ("SELECT diaSourceId, ra, dec, psfFlux, band, midpointMjdTai, visit, detector, diaObjectId, x, y "
        "FROM dp1.DiaSource WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.05)) = 1")
TUTORIAL = "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2"
AGGREGATE = "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS f FROM dp1.DiaSource GROUP BY band"


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(service: QueryService, adql: str) -> tuple[float, int]:
    t = time.perf_counter()
    result = service.run(adql, Limits(maxrec=None, timeout_s=600))
    return time.perf_counter() - t, result.table.num_rows


def row_groups(model, service: QueryService, adql: str) -> tuple[int, int]:
    """(row groups meeting the cone's cover, row groups in the partitions it reads)."""
    import pyarrow.parquet as pq

    from diavo.server.adql import nodes as n
    from diavo.server.adql.check import check
    from diavo.server.adql.parser import parse
    from diavo.server.adql.plan import ConeTest, plan

    tree = plan(check(parse(adql), model), service.engine.layout).query
    cone = next(x for x in n.walk(tree) if isinstance(x, ConeTest))
    files = next(x for x in n.walk(tree) if isinstance(x, n.TableRef)).files
    meets = total = 0
    for path in files:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("_healpix_29")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            total += 1
            meets += stats is None or cone.cover.meets(stats.min, stats.max)
    return meets, total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, type=Path)
    ap.add_argument("--hats", type=Path)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    tmp = None
    hats = args.hats
    if hats is None and (args.archive / "hats" / "dp1.DiaSource" / "hats.properties").is_file():
        hats = args.archive / "hats"
    if hats is None:
        tmp = tempfile.TemporaryDirectory()
        hats = Path(tmp.name)
        t = time.perf_counter()
        export_hats(args.archive, hats)
        print(f"export --hats: {time.perf_counter() - t:.1f} s, {du(hats) / 1e6:.0f} MB "
              f"(catalog.duckdb {du(args.archive / 'catalog.duckdb') / 1e6:.0f} MB, all tables)")
    print(f"sizes: catalog.duckdb {du(args.archive / 'catalog.duckdb') / 1e6:.0f} MB (all tables), "
          f"HATS {du(Path(hats)) / 1e6:.0f} MB (spatial tables)")
    model = load_model()
    services = {"native": QueryService(model, DuckDBEngine(args.archive, model)),
                "hats": QueryService(model, DuckDBEngine(args.archive, model, hats_dir=hats))}
    total = len(services["hats"].engine.layout.partitions["dp1.DiaSource"])
    cones = [CONE.format(ra=ra, dec=dec) for ra, dec in CENTRES]
    read = [len(re.findall(r"Npix=\d+\.parquet'", services["hats"].translate(q).sql)) for q in cones]
    print(f"HATS partitions of dp1.DiaSource: {total}; a 0.05° cone reads {min(read)}-{max(read)} of them")
    groups = [row_groups(model, services["hats"], q) for q in cones]
    print("row groups a cone leaves to read (of those in its partitions): "
          + ", ".join(f"{a}/{b}" for a, b in groups))
    for label, queries in (("cone r=0.05° (11 columns)", cones), ("tutorial visit/detector", [TUTORIAL]),
                           ("full-table aggregate", [AGGREGATE])):
        times: dict[str, list[float]] = {"native": [], "hats": []}
        for q in queries:  # warm both, and check they agree
            rows = {k: timed(s, q)[1] for k, s in services.items()}
            assert rows["native"] == rows["hats"], (q, rows)
        for i in range(args.repeat):
            q = queries[i % len(queries)]
            for key, service in services.items():
                times[key].append(timed(service, q)[0])
        p50 = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        p95 = {k: sorted(v)[int(0.95 * (len(v) - 1))] * 1e3 for k, v in times.items()}
        print(f"{label:28s} native p50 {p50['native']:8.2f} ms p95 {p95['native']:8.2f}   "
              f"HATS p50 {p50['hats']:8.2f} ms p95 {p95['hats']:8.2f}   HATS/native {p50['hats'] / p50['native']:.2f}x")
    for s in services.values():
        s.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
