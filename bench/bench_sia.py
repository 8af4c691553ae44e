"""Benchmark SIA 2.0 /sia/query over HTTP, against the same ADQL through /tap/sync (prints a table).

    python bench/bench_sia.py                        # builds the small demo in a temp dir, serves it
    python bench/bench_sia.py --archive DIR          # serve an existing archive, e.g. a dp1-scale one:
                                                     #   diavo demo build DIR --scale dp1 --quiet
    python bench/bench_sia.py --url http://host:port # an already running server

Each SIA query is timed end to end (request to last byte, one client, keep-alive); its ADQL
equivalent is the text the service reports in its QUERY INFO, sent to /tap/sync. "cold" is the
very first SIA request of a fresh server, sent as soon as it accepts connections (it shares the
machine with the rest of start-up; footprints are parsed only for the candidates the bounding
columns keep, never all at once).
The row-by-row line runs the tutorial's ADQL with the s_region test written '>= 1', which the
translator does not prefilter: the cost of the exact test on every footprint.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from html import unescape
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conformance.server_process import ServerProcess, build_small_archive  # noqa: E402

R_BAND = "5.51e-07 6.891e-07"
TUTORIAL = {"POS": "CIRCLE 53.125 -27.74 1e-05", "BAND": R_BAND, "TIME": "60623.0 60624.0"}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def sia(session: requests.Session, base: str, params) -> tuple[int, str]:
    r = session.get(base + "/sia/query", params=params, timeout=120)
    if r.status_code != 200:
        raise RuntimeError(f"{params}: HTTP {r.status_code}: {r.text[:400]}")
    query = re.search(r'<INFO name="QUERY" value="([^"]*)"', r.text)
    return r.text.count("<TR>"), unescape(query[1]) if query else ""


def tap(session: requests.Session, base: str, adql: str) -> int:
    r = session.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": adql}, timeout=600)
    if r.status_code != 200:
        raise RuntimeError(f"{adql[:80]}: HTTP {r.status_code}: {r.text[:400]}")
    return r.text.count("<TR>")


def timed(fn, n: int) -> tuple[list[float], int]:
    times, rows = [], 0
    for i in range(n):
        t = time.perf_counter()
        rows = fn(i)
        times.append(time.perf_counter() - t)
    return times, rows


def footprints(session: requests.Session, base: str, n: int, seed: int) -> list[tuple[float, float]]:
    r = session.post(base + "/tap/sync", data={"LANG": "ADQL", "RESPONSEFORMAT": "csv",
                                               "QUERY": "SELECT s_ra, s_dec FROM ivoa.ObsCore"}, timeout=120)
    rows = [tuple(float(x) for x in line.split(",")) for line in r.text.strip().splitlines()[1:]]
    rng = random.Random(seed)
    return [rng.choice(rows) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, help="archive to serve (default: build the small demo in a temp dir)")
    p.add_argument("--url", help="benchmark an already running server at this base URL instead")
    p.add_argument("-n", type=int, default=200, help="requests timed per query")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)

    with ExitStack() as stack:
        if args.url:
            base = args.url.rstrip("/")
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sia-")))
            archive = args.archive or build_small_archive(work / "archive")
            server = ServerProcess(archive=archive, state_dir=work / "uws", log_path=work / "server.log")
            server.start()
            stack.callback(server.stop)
            base = server.url
        session = stack.enter_context(requests.Session())
        report = []

        t = time.perf_counter()
        rows, _ = sia(session, base, TUTORIAL)
        report.append(("tutorial (first request, cold)", [time.perf_counter() - t], rows))

        centres = footprints(session, base, args.n, args.seed)

        def cone(i):
            ra, dec = centres[i]
            return {"POS": f"CIRCLE {ra:.6f} {dec:.6f} 0.05"}

        def polygon(i):
            ra, dec = centres[i]
            d = 0.1
            return {"POS": f"POLYGON {ra - d:.6f} {dec - d:.6f} {ra + d:.6f} {dec - d:.6f} {ra:.6f} {dec + d:.6f}"}

        def box(i):
            ra, dec = centres[i]
            return {"POS": f"RANGE {ra - 0.15:.6f} {ra + 0.15:.6f} {dec - 0.15:.6f} {dec + 0.15:.6f}"}

        cases = [
            ("tutorial: point circle + BAND r + TIME", lambda i: TUTORIAL),
            ("cone r=0.05 deg at a random footprint", cone),
            ("triangle ~0.2 deg at a random footprint", polygon),
            ("RANGE 0.3 x 0.3 deg at a random footprint", box),
            ("LSST_BAND=r + TIME (no POS)", lambda i: {"LSST_BAND": "r", "TIME": "60623.0 60624.0"}),
            ("MAXREC=0 (metadata only)", lambda i: {"MAXREC": "0", "POS": TUTORIAL["POS"]}),
        ]
        for _name, make in cases:       # untimed warm-up (keep-alive connection, cursors)
            for i in range(5):
                sia(session, base, make(i))
        adql = {}
        for name, make in cases:
            times, rows = timed(lambda i, make=make: sia(session, base, make(i))[0], args.n)
            report.append((f"SIA  {name}", times, rows))
            adql[name] = [sia(session, base, make(i))[1] for i in range(min(args.n, 50))]
        for name, _make in cases[:5]:
            queries = adql[name]
            times, rows = timed(lambda i, queries=queries: tap(session, base, queries[i % len(queries)]), args.n)
            report.append((f"TAP  {name}", times, rows))
        slow = adql[cases[0][0]][0].replace("s_region) = 1", "s_region) >= 1")
        times, rows = timed(lambda i: tap(session, base, slow), max(3, args.n // 20))
        report.append(("TAP  tutorial, s_region test row by row ('>= 1')", times, rows))

    width = max(len(r[0]) for r in report)
    print(f"{'query':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'rows (last)':>11}  runs")
    for name, times, rows in report:
        print(f"{name:<{width}}  {1000 * statistics.median(times):8.1f}  {1000 * pct(times, 0.95):8.1f}  "
              f"{rows:>11}  {len(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
