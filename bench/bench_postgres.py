"""The postgresql engine against DuckDB on the same archive, in one run (prints a table).

    python bench/bench_postgres.py --archive DIR [--repeat 5]

A private PostgreSQL cluster (``conformance/pg_cluster.py``: initdb in a temporary directory,
loopback, pgSphere) is started, the archive is copied in with ``pg_store.load`` (what ``diavo
load-pg`` runs; timed), and the same ADQL runs through ``QueryService`` on both engines,
alternating query by query: a 0.05° cone (11 columns, new centres), the tutorial's DiaSource
query (one visit and detector), and a full aggregate over DiaSource. Figures are p50 over
``--repeat`` rounds; the ratio is PostgreSQL / DuckDB. The cluster is stopped at the end.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.pg_cluster import READER, READER_PASSWORD, PgCluster, find_bindir  # noqa: E402

CONE = ("SELECT diaSourceId, ra, dec, psfFlux, psfFluxErr, band, midpointMjdTai, visit, detector, diaObjectId, "
        "snr FROM dp1.DiaSource WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, 0.05)) = 1")
TUTORIAL = "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = {visit} AND detector = {detector}"
AGGREGATE = ("SELECT band, COUNT(*) AS n, AVG(psfFlux) AS mean, MIN(ra) AS lo, MAX(dec) AS hi "
             "FROM dp1.DiaSource GROUP BY band")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--archive", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import psycopg

    from diavo.server.archive import pg_store, store
    from diavo.server.archive.linked import archive_model
    from diavo.server.engine import open_engine
    from diavo.server.engine.base import Limits
    from diavo.server.engine.duckdb_engine import DuckDBEngine
    from diavo.server.query.executor import QueryService

    bindir = find_bindir()
    if bindir is None:
        sys.exit("no PostgreSQL server binaries (Debian: postgresql-15 postgresql-15-pgsphere)")
    model = archive_model(args.archive)
    con = store.connect(args.archive)
    rows = con.execute('SELECT count(*) FROM "dp1"."DiaSource"').fetchall()[0][0]
    pairs = con.execute('SELECT DISTINCT visit, detector FROM "dp1"."DiaSource" ORDER BY 1, 2').fetchall()
    centre = con.execute('SELECT median(ra), median(dec) FROM "dp1"."DiaSource"').fetchall()[0]
    con.close()
    cluster = PgCluster(Path(tempfile.mkdtemp(prefix="diavo-bench-pg-")), bindir).start()
    try:
        url = cluster.create_database("bench")
        t0 = time.perf_counter()
        with psycopg.connect(cluster.admin_url("bench")) as conn:
            report = pg_store.load(args.archive, conn, model, reader=READER, progress=False)
        load_s = time.perf_counter() - t0
        copied = sum(report.tables.values())
        os.environ["PGPASSWORD"] = READER_PASSWORD
        services = {"postgresql": QueryService(model, open_engine(url, args.archive, model)),
                    "duckdb": QueryService(model, DuckDBEngine(args.archive, model))}
        rng = random.Random(1)
        kinds = {
            "cone r = 0.05°, 11 columns (new centre each)": lambda: CONE.format(
                ra=centre[0] + rng.uniform(-0.5, 0.5), dec=centre[1] + rng.uniform(-0.5, 0.5)),
            "tutorial: one visit and detector": lambda: TUTORIAL.format_map(
                dict(zip(("visit", "detector"), pairs[rng.randrange(len(pairs))], strict=True))),
            "full aggregate over DiaSource": lambda: AGGREGATE,
        }
        print(f"{rows:,} DiaSources; load-pg of {copied:,} rows in {load_s:.1f} s ({copied / load_s:,.0f} rows/s, "
              f"indexes and ANALYZE included)\n")
        print("| query | PostgreSQL p50 | DuckDB p50 | ratio |\n|---|---|---|---|")
        for label, make in kinds.items():
            times: dict[str, list[float]] = {k: [] for k in services}
            for _ in range(args.repeat * 4):
                adql = make()
                for name, service in services.items():  # the same query on both, alternating
                    t = time.perf_counter()
                    service.run(adql, Limits(maxrec=100_000, timeout_s=300))
                    times[name].append(time.perf_counter() - t)
            pg, duck = (statistics.median(times[k]) * 1e3 for k in ("postgresql", "duckdb"))
            print(f"| {label} | {pg:,.1f} ms | {duck:,.1f} ms | {pg / duck:.2f} |")
        for service in services.values():
            service.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
