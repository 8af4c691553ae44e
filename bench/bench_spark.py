"""DuckDB against Spark with one and with two workers, on the same archive (prints numbers; asserts
only that every engine gives the same rows).

    python bench/bench_spark.py --archive DIR [--repeat 5] [--clients 8]

DIR is a format-3 archive (its spatial tables also as HATS in DIR/hats), e.g. from
``diavo demo build DIR --scale dp1 --n-sources 10000000``. For each Spark configuration a
standalone master and N workers (1 core and ``--worker-memory`` each) are started on loopback,
the engine is opened (start-up time) and the first query timed, then: a cone r=0.05° (p50 over
centres and repetitions), the tutorial's visit/detector query, a full-scan aggregate, and a
cross-match of an uploaded 10,000-row table (pairs within 1" sharing a 1-arcminute RA/Dec cell:
an equi-join key every engine can hash, so the answer is the same everywhere). Then the
throughput of a scan-heavy mix, ``--clients`` threads each running aggregates with different
thresholds, as queries per second. Everything goes through the QueryService the TAP handlers use.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The MAXREC of every request (the cross-match gives 1.04 M rows).
MAXREC = 2_000_000
CENTRES = [(53.125, -27.74), (53.3, -27.9), (59.1, -48.8), (40.0, -34.4), (94.8, -25.2), (37.9, 6.9)]
CONE = ("SELECT diaSourceId, ra, dec, psfFlux, band, midpointMjdTai, visit, detector, diaObjectId, x, y "
        "FROM dp1.DiaSource WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.05)) = 1")
TUTORIAL = "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2"
AGGREGATE = "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS f FROM dp1.DiaSource GROUP BY band"
MIX = "SELECT band, COUNT(*) AS n, MAX(snr) AS m FROM dp1.DiaSource WHERE psfFlux > {t} GROUP BY band"
XMATCH = ("SELECT u.id, s.diaSourceId FROM TAP_UPLOAD.targets AS u JOIN dp1.DiaSource AS s "
          "ON FLOOR(s.ra * 60) = FLOOR(u.ra * 60) AND FLOOR(s.dec * 60) = FLOOR(u.dec * 60) "
          "AND DISTANCE(POINT(s.ra, s.dec), POINT(u.ra, u.dec)) < 1.0 / 3600")


def targets(archive: Path, n: int = 10_000):
    """n DiaSource positions (every k-th, seed-free), moved by 0.3": the uploaded table."""
    import pyarrow as pa

    from diavo.server.archive import store
    from diavo.server.archive.model import Column, Table

    con = store.connect(archive)
    total = con.execute('SELECT count(*) FROM dp1."DiaSource"').fetchall()[0][0]
    step = max(1, total // n)
    rows = con.execute(f'SELECT ra, dec FROM dp1."DiaSource" WHERE diaSourceId % {step} = 0 '
                       f"ORDER BY diaSourceId LIMIT {n}").fetchall()
    con.close()
    data = pa.table({"id": list(range(len(rows))), "ra": [r[0] + 0.3 / 3600 for r in rows],
                     "dec": [r[1] for r in rows]})
    table = Table("TAP_UPLOAD", "targets", "", (Column("id", "long"), Column("ra", "double", unit="deg"),
                                                  Column("dec", "double", unit="deg")))
    return {"targets": SimpleNamespace(table=table, data=data)}


def timed(service, adql, uploads=None) -> tuple[float, list]:
    from diavo.server.engine.base import Limits

    t = time.perf_counter()
    # as a TAP request with MAXREC above every result here: TAP always caps a query with LIMIT
    result = service.run(adql, Limits(maxrec=MAXREC, timeout_s=3600), uploads=uploads)
    elapsed = time.perf_counter() - t
    # sums of doubles depend on the order engines add them in: compare to 12 significant digits
    rows = [{k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in r.items()}
            for r in result.table.to_pylist()]
    return elapsed, sorted(map(repr, rows))


def measure(name: str, service, repeat: int, clients: int, up) -> dict:
    out: dict = {}
    cones = [CONE.format(ra=ra, dec=dec) for ra, dec in CENTRES]
    for label, queries, extra in (("cone", cones, None), ("tutorial", [TUTORIAL], None),
                                  ("aggregate", [AGGREGATE], None), ("xmatch", [XMATCH], up)):
        times, answers = [], []
        for q in queries:  # warm, and keep the answer for the comparison
            answers.append(timed(service, q, extra)[1])
        for i in range(repeat):
            times.append(timed(service, queries[i % len(queries)], extra)[0])
        out[label] = (statistics.median(times) * 1e3, answers)
        print(f"  {name:16s} {label:10s} p50 {out[label][0]:10.1f} ms ({len(answers[0])} rows)", flush=True)
    done = []
    lock = threading.Lock()

    def client(k: int) -> None:
        for j in range(2):
            timed(service, MIX.format(t=100 * (k * 2 + j)))
            with lock:
                done.append(1)

    cpu0 = cpu_seconds()
    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    cpu = {k: v - cpu0[k] for k, v in cpu_seconds().items()}
    out["throughput"] = (len(done) / wall, None)
    busy = (cpu["driver"] + cpu["executors"]) / wall
    print(f"  {name:16s} {clients} clients: {out['throughput'][0]:.2f} queries/s; CPU per query: driver "
          f"{cpu['driver'] / len(done):.2f} s, executors {cpu['executors'] / len(done):.2f} s; "
          f"{busy:.2f} of {os.cpu_count()} cores busy", flush=True)
    out["cpu"] = ({k: v / len(done) for k, v in cpu.items()}, None)
    return out


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process with its driver JVM, and of every Spark
    executor JVM on the machine (Linux /proc: the bench runs master, workers and driver here)."""
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    out = {"driver": own.user + own.system, "executors": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if b"CoarseGrainedExecutorBackend" in cmd:
            out["executors"] += seconds
        elif b"pyspark-shell" in cmd and int(fields[1]) == os.getpid():
            out["driver"] += seconds
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--worker-memory", default="2g")
    args = ap.parse_args()

    from conformance.spark_cluster import SparkCluster, driver_conf
    from diavo.server.archive.model import load_model
    from diavo.server.engine import open_engine
    from diavo.server.query.executor import QueryService

    model = load_model()
    up = targets(args.archive)
    results = {}
    duck = QueryService(model, open_engine("duckdb", args.archive, model))
    results["duckdb"] = measure("duckdb", duck, args.repeat, args.clients, up)
    duck.close()
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as work:
            cluster = SparkCluster(Path(work), workers=workers, worker_memory=args.worker_memory).start()
            try:
                conf = dict(driver_conf(cluster), **{"spark.executor.memory": args.worker_memory})
                t = time.perf_counter()
                engine = open_engine("spark", args.archive, model, spark_master=cluster.url, spark_conf=conf)
                start = time.perf_counter() - t
                service = QueryService(model, engine)
                first = timed(service, CONE.format(ra=CENTRES[0][0], dec=CENTRES[0][1]))[0]
                name = f"spark {workers} worker" + ("s" if workers > 1 else "")
                print(f"  {name:16s} start-up {start:.1f} s, first cone {first * 1e3:.0f} ms", flush=True)
                results[name] = measure(name, service, args.repeat, args.clients, up)
                service.close()
            finally:
                cluster.stop()
    for name, res in results.items():
        for label in ("cone", "tutorial", "aggregate", "xmatch"):
            assert res[label][1] == results["duckdb"][label][1], (name, label)
    one, two = results["spark 1 worker"]["throughput"][0], results["spark 2 workers"]["throughput"][0]
    print(f"same rows on every engine; throughput 2 workers / 1 worker: {two / one:.2f}x")
    cpu = results["spark 2 workers"]["cpu"][0]
    print(f"with 2 workers: {os.cpu_count()} cores here bound the mix at "
          f"{os.cpu_count() / (cpu['driver'] + cpu['executors']):.2f} queries/s; on a cluster where "
          f"the driver has its own cores, N one-core workers bound it at N x {1 / cpu['executors']:.2f}")


if __name__ == "__main__":
    main()
