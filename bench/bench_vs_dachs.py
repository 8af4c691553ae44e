"""diavo against the database alone and (when one is given) against a GAVO DaCHS on the same data:
the issue-14 targets as ratios measured in one run, requests interleaved (prints a table).

    python bench/bench_vs_dachs.py --archive DIR [--dachs-tap URL --dachs-table SCHEMA.TABLE]

DIR is a diavo archive, e.g. ``diavo demo build DIR --seed 1 --n-sources 1000000 --quiet``. With
``--dachs-tap`` the same ADQL (the DiaSource table named ``--dachs-table`` there) goes to that TAP
service too, each request alternating between the two servers. ``bench/dachs_setup.py`` says how
to install DaCHS on Debian and loads the archive's DiaSources into it (``--dachs-tap
http://localhost:8080/tap --dachs-table dp1.diasource``). Without it the script prints diavo's
figures and the engine-alone ratios. TABLEDATA is asked for as
``application/x-votable+xml;serialization=TABLEDATA`` (DaCHS's plain VOTable is BINARY).

Measured, on the server started here (``diavo serve DIR`` on loopback): a 0.05° cone with 11
columns and with ``SELECT *``, in TABLEDATA and BINARY2, over HTTP against the same translated
query on the DuckDB engine alone in this process (``Engine.execute``: SQL to Arrow); 100k rows
of ``SELECT *`` in both serialisations; cones from 8 concurrent clients; the server's RSS idle and
after the run; and the time from ``diavo serve`` to the first answered cone.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_tap as bt  # noqa: E402

from conformance.server_process import ServerProcess, diavo_command, free_port  # noqa: E402

ELEVEN = ("SELECT diaSourceId, ra, dec, psfFlux, psfFluxErr, band, midpointMjdTai, visit, detector, "
          "diaObjectId, snr FROM {table} WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, "
          "{dec:.6f}, 0.05)) = 1")
STAR = "SELECT * FROM {table} WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, 0.05)) = 1"
HUNDRED_K = "SELECT TOP 100000 * FROM {table}"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TABLEDATA = "application/x-votable+xml;serialization=TABLEDATA"  # DaCHS's plain VOTable is BINARY
BINARY2 = bt.BINARY2


def paired_p50(sessions: list, taps: list[str], queries: list[list[str]], fmt: str,
               repeat: int) -> list[float]:
    """p50 per server of the same queries, each request alternating between the servers."""
    times: list[list[float]] = [[] for _ in taps]
    for _ in range(repeat):
        for k in range(len(queries[0])):
            for i, (session, tap) in enumerate(zip(sessions, taps, strict=True)):
                t = time.perf_counter()
                body = bt.sync(session, tap, queries[i][k], fmt=fmt, maxrec=100_000).content
                times[i].append(time.perf_counter() - t)
                bt.complete(body)
    return [statistics.median(x) * 1e3 for x in times]


def engine_p50(archive: Path, queries: list[str], repeat: int) -> float:
    """The translated queries on the DuckDB engine alone in this process, SQL to Arrow: what
    the server's engine layer does, without HTTP, translation or serialisation."""
    from diavo.server.engine.base import Limits
    from diavo.server.query.executor import open_service

    service = open_service(archive)
    compiled = [service.translate(q) for q in queries]
    times = []
    for _ in range(repeat):
        for c in compiled:
            t = time.perf_counter()
            service.engine.execute(c, Limits(maxrec=100_000))
            times.append(time.perf_counter() - t)
    service.close()
    return statistics.median(times) * 1e3


def cold_start(archive: Path, query: str) -> float:
    port = free_port()
    t = time.perf_counter()
    proc = subprocess.Popen([*diavo_command(), "serve", str(archive), "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                r = requests.post(f"http://127.0.0.1:{port}/tap/sync", data={"LANG": "ADQL", "QUERY": query},
                                  timeout=30)
                if r.status_code == 200:
                    return time.perf_counter() - t
            except requests.ConnectionError:
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, type=Path)
    ap.add_argument("--dachs-tap", help="a DaCHS TAP URL serving the same DiaSources")
    ap.add_argument("--dachs-table", default="dp1.DiaSource")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, diavo: float, other: float | None, unit: str, target: str) -> None:
        ratio = f"{diavo / other:.2f}" if other else "—"
        rows.append((name, f"{diavo:,.1f} {unit}", f"{other:,.1f} {unit}" if other else "—", ratio + "  " + target))
        versus = f"{other:10,.1f}" if other else "         —"
        print(f"  {name:52s} {diavo:10,.1f} {unit}   vs {versus}   ratio {ratio}  {target}", flush=True)

    with tempfile.TemporaryDirectory() as work:
        server = ServerProcess(archive=args.archive, state_dir=Path(work) / "uws", log_path=Path(work) / "log").start()
        try:
            tap = server.tap_url
            idle = rss_mib(server.pid)
            with requests.Session() as s, requests.Session() as d:
                centres = bt.cone_centres(s, tap, 10, seed=42)
                sessions, taps = [s, d], [tap, args.dachs_tap]
                if not args.dachs_tap:
                    sessions, taps = sessions[:1], taps[:1]
                for label, template in (("11 columns", ELEVEN), ("SELECT *", STAR)):
                    queries = [[template.format(table=table, ra=ra, dec=dec) for ra, dec in centres]
                               for table in ("dp1.DiaSource", args.dachs_table)][:len(taps)]
                    alone = engine_p50(args.archive, queries[0], args.repeat)
                    for fmt_name, fmt in (("TABLEDATA", TABLEDATA), ("BINARY2", BINARY2)):
                        p50 = paired_p50(sessions, taps, queries, fmt, args.repeat)
                        row(f"cone {label}, {fmt_name}: HTTP / engine alone", p50[0], alone, "ms", "(target ≤ 1.5)")
                        if args.dachs_tap:
                            row(f"cone {label}, {fmt_name}: diavo / DaCHS", p50[0], p50[1], "ms", "(target ≤ 0.1)")
                for fmt_name, fmt in (("TABLEDATA", TABLEDATA), ("BINARY2", BINARY2)):
                    queries = [[HUNDRED_K.format(table=table)] for table in ("dp1.DiaSource", args.dachs_table)]
                    p50 = paired_p50(sessions, taps, queries[:len(taps)], fmt, 3)
                    other = p50[1] if args.dachs_tap else None
                    row(f"100k rows SELECT *, {fmt_name}" + (": diavo / DaCHS" if other else ""), p50[0], other, "ms",
                        "(target ≤ 0.2)" if other else f"({100_000 / p50[0] * 1e3 / 1e6:.2f} M rows/s)")
            clients = bt.throughput(tap, centres, 8, 10.0, fmt=BINARY2)
            other = bt.throughput(args.dachs_tap, centres, 8, 10.0, fmt=BINARY2) if args.dachs_tap else None
            row("8 clients, cones per second" + (": diavo / DaCHS" if other else ""), clients, other, "req/s",
                "(target ≥ 10)" if other else "")
            after = rss_mib(server.pid)
        finally:
            server.stop()
    cone = ELEVEN.format(table="dp1.DiaSource", ra=centres[0][0], dec=centres[0][1])
    starts = [cold_start(args.archive, cone) * 1e3 for _ in range(3)]
    row("diavo serve to the first answered cone", statistics.median(starts), None, "ms", "(target ≤ 1,000 ms)")
    row("server RSS idle", idle, None, "MiB", "(target ≤ 150)")
    row("server RSS after the run", after, None, "MiB", "(target ≤ 400)")
    print("\n| measurement | diavo | other | ratio / target |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
