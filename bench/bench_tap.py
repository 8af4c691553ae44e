"""Benchmark the TAP service over HTTP, as clients see it (prints a table; asserts nothing).

    python bench/bench_tap.py                       # builds the small demo in a temp dir, serves it
    python bench/bench_tap.py --archive DIR         # serve an existing archive (e.g. a 1M-row one:
                                                    #   diavo demo build DIR --seed 1 --n-sources 1000000 --quiet)
    python bench/bench_tap.py --url http://host:port [--pid PID]   # an already running server

Measures: a 0.05° cone on dp1.DiaSource (latency p50/p95 for one client; requests/s for 1 and
8 concurrent clients), an aggregate over every row, a 100k-row fetch, async submit -> result
latency, and streaming output rows/s in BINARY2 and TABLEDATA for a 5-column result of up to 1M
rows. The server's peak RSS (VmHWM) is read from /proc for each phase when the server is local.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conformance import uws_client as uws  # noqa: E402
from conformance.server_process import ServerProcess, build_small_archive  # noqa: E402

CONE = ("SELECT diaSourceId, ra, dec, psfFlux, band FROM dp1.DiaSource "
        "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, 0.05)) = 1")
AGGREGATE = "SELECT band, COUNT(*) AS n, AVG(psfFlux) AS mean_flux FROM dp1.DiaSource GROUP BY band"
FIVE_COLUMNS = "SELECT TOP {n} diaSourceId, ra, dec, psfFlux, band FROM dp1.DiaSource"
TUTORIAL = "SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2"
BINARY2 = "application/x-votable+xml;serialization=BINARY2"
TABLEDATA = "application/x-votable+xml"


class Peak:
    """Per-phase peak RSS of a local server process (VmHWM, reset through clear_refs)."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def reset(self) -> None:
        if self.pid:
            with suppress(OSError):
                Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def mib(self) -> str:
        if not self.pid:
            return "-"
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) / 1024:.0f} MiB"
        except OSError:
            pass
        return "-"


def sync(session: requests.Session, tap: str, query: str, fmt: str | None = None,
         maxrec: int | None = None, stream: bool = False) -> requests.Response:
    data = {"LANG": "ADQL", "QUERY": query}
    if fmt:
        data["RESPONSEFORMAT"] = fmt
    if maxrec is not None:
        data["MAXREC"] = str(maxrec)
    r = session.post(tap + "/sync", data=data, timeout=600, stream=stream)
    if r.status_code != 200:
        status = re.search(r'name="QUERY_STATUS"[^>]*>([^<]*)<', r.text)
        raise RuntimeError(f"{query[:60]}...: HTTP {r.status_code}: {status[1] if status else r.text[:300]}")
    return r


def complete(body: bytes) -> bytes:
    """A VOTable that ends properly and carries no trailing ERROR status (a cut stream is no result)."""
    tail = body[-4096:]
    if not tail.rstrip().endswith(b"</VOTABLE>") or b'value="ERROR"' in tail:
        raise RuntimeError(f"incomplete or failed VOTable: ...{tail[-300:].decode(errors='replace')}")
    return body


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def cone_centres(session: requests.Session, tap: str, n: int, seed: int) -> list[tuple[float, float]]:
    r = sync(session, tap, "SELECT TOP 5000 ra, dec FROM dp1.DiaSource", fmt="csv")
    rows = [line.split(",") for line in r.text.strip().splitlines()[1:]]
    rng = random.Random(seed)
    return [(float(a), float(b)) for a, b in rng.sample(rows, min(n, len(rows)))]


def throughput(tap: str, centres, clients: int, seconds: float, fmt: str | None = None) -> float:
    """Cone requests per second with ``clients`` threads, each with its own connection."""
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def worker(i: int) -> None:
        with requests.Session() as s:
            k = i
            while time.monotonic() < stop:
                ra, dec = centres[k % len(centres)]
                _ = sync(s, tap, CONE.format(ra=ra, dec=dec), fmt=fmt).content
                counts[i] += 1
                k += clients

    t = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - t)


def stream_rows(session: requests.Session, tap: str, rows: int, fmt: str) -> tuple[float, int, int]:
    """Seconds, bytes and rows (counted for TABLEDATA; the requested count for BINARY2)."""
    t = time.perf_counter()
    r = sync(session, tap, FIVE_COLUMNS.format(n=rows), fmt=fmt, maxrec=rows, stream=True)
    size, trs, tail, last = 0, 0, b"", b""
    for chunk in r.iter_content(1 << 20):
        size += len(chunk)
        last = (last + chunk)[-4096:]
        if fmt == TABLEDATA:
            trs += (tail + chunk).count(b"<TR>")
            tail = chunk[-3:]
    complete(last)
    return time.perf_counter() - t, size, trs if fmt == TABLEDATA else rows


def measure(report: list, name: str, fn) -> None:
    """Run one measurement; a failure is a row of the table, not the end of the run."""
    try:
        value, note = fn()
    except Exception as exc:  # noqa: BLE001 - reported, then the next measurement runs
        value, note = "FAILED", str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    report.append((name, value, note))
    print(f"  {name}: {value}  {note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", type=Path, help="archive to serve (default: build the small demo in a temp dir)")
    p.add_argument("--url", help="benchmark an already running server at this base URL instead")
    p.add_argument("--pid", type=int, help="with --url: the server's pid, for its peak RSS")
    p.add_argument("--cones", type=int, default=200, help="single-client cone queries timed")
    p.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    p.add_argument("--stream-rows", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)

    report: list[tuple[str, str, str]] = []
    with ExitStack() as stack:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tap-")))
            archive = args.archive or build_small_archive(tmp / "archive")
            server = ServerProcess(archive=archive, state_dir=tmp / "uws", log_path=tmp / "server.log")
            server.start()
            stack.callback(server.stop)
            base, pid = server.url, server.pid
        tap = base + "/tap"
        peak = Peak(pid)
        s = stack.enter_context(requests.Session())
        rows_total = int(sync(s, tap, "SELECT COUNT(*) AS n FROM dp1.DiaSource", fmt="csv").text.split()[1])
        print(f"server {base} (pid {pid or '?'}), dp1.DiaSource rows: {rows_total:,}", flush=True)
        centres = cone_centres(s, tap, args.cones, args.seed)

        def cones():
            sizes = [len(sync(s, tap, CONE.format(ra=ra, dec=dec), fmt="csv").text.splitlines()) - 1
                     for ra, dec in centres[:20]]
            peak.reset()
            lat = []
            for ra, dec in centres:
                t = time.perf_counter()
                complete(sync(s, tap, CONE.format(ra=ra, dec=dec)).content)
                lat.append(time.perf_counter() - t)
            return (f"{pct(lat, .5) * 1e3:.1f} / {pct(lat, .95) * 1e3:.1f} ms",
                    f"median {statistics.median(sizes):.0f} rows, TABLEDATA, {len(lat)} cones")

        measure(report, "cone r=0.05°, 1 client: p50 / p95", cones)
        for clients in (1, 8):
            measure(report, f"cone, {clients} concurrent client(s)",
                    lambda clients=clients: (f"{throughput(tap, centres, clients, args.seconds):.0f} req/s",
                             f"{args.seconds:g} s; peak RSS {peak.mib()}"))

        def aggregate():
            peak.reset()
            agg = timed(lambda: complete(sync(s, tap, AGGREGATE).content), 11)
            return f"{pct(agg, .5) * 1e3:.1f} ms p50", f"peak RSS {peak.mib()}"

        measure(report, f"aggregate over all {rows_total:,} rows (GROUP BY band)", aggregate)

        n100k = min(100_000, rows_total)
        for fmt, label in ((TABLEDATA, "TABLEDATA"), (BINARY2, "BINARY2")):
            def fetch(fmt=fmt):
                peak.reset()
                dt = timed(lambda: complete(sync(s, tap, FIVE_COLUMNS.format(n=n100k), fmt=fmt,
                                                 maxrec=n100k).content), 3)
                return f"{pct(dt, .5) * 1e3:.0f} ms p50", f"peak RSS {peak.mib()}"

            measure(report, f"{n100k:,}-row fetch, 5 columns, {label}", fetch)

        def async_roundtrip() -> None:
            job = uws.submit(s, tap, {"QUERY": TUTORIAL}, run=True)
            if uws.wait_for(s, job, timeout_s=120) != "COMPLETED":
                raise RuntimeError(f"job {job} did not complete")
            complete(s.get(job + "/results/result", timeout=60).content)
            s.delete(job, allow_redirects=False, timeout=60)

        def async_latency():
            peak.reset()
            lat = timed(async_roundtrip, 11)
            return f"{pct(lat, .5) * 1e3:.0f} ms p50", f"peak RSS {peak.mib()}"

        measure(report, "async submit -> result (tutorial query)", async_latency)

        n_stream = min(args.stream_rows, rows_total)
        for fmt, label in ((BINARY2, "BINARY2"), (TABLEDATA, "TABLEDATA")):
            def streamed(fmt=fmt):
                peak.reset()
                seconds, size, nrows = stream_rows(s, tap, n_stream, fmt)
                return (f"{nrows / seconds / 1e6:.2f} M rows/s ({size / seconds / 1e6:.0f} MB/s)",
                        f"{nrows:,} rows; peak RSS {peak.mib()}")

            measure(report, f"stream {n_stream:,} rows x 5 columns, {label}", streamed)

    width = max(len(r[0]) for r in report)
    print(f"\n{'measurement':<{width}}  {'result':<28}  notes")
    for name, value, note in report:
        print(f"{name:<{width}}  {value:<28}  {note}")
    return 1 if any(value == "FAILED" for _, value, _ in report) else 0


if __name__ == "__main__":
    sys.exit(main())
