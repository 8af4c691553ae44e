"""Benchmark the ADQL front end and the DuckDB engine on a demo archive (medians; prints one JSON
line per measurement, asserts nothing but equal results).

    python bench/bench_adql.py --archive DIR     # an existing demo build
    python bench/bench_adql.py --build-dp1       # build a dp1-scale demo (~3.7M DiaSources) first
    python bench/bench_adql.py --build-10m       # build a 10M-DiaSource demo first

Measured, all through the QueryService the TAP and SIA handlers use:

- parse + check + translate of the tutorial's DiaSource query and of a cone query (each stage
  alone too); the cone once with its text repeated (the HEALPix cover is memoised) and once with
  a new centre every time (the cover computed afresh);
- a CONTAINS(POINT, CIRCLE) cone of radius 0.05 deg on dp1.DiaSource, centred on randomly drawn
  DiaSource positions, from translated SQL to an Arrow table: with the HEALPix range filter the
  translator emits and with the ranges removed (the same exact test over every row), side by
  side, and the rows equal;
- SELECT COUNT(*), AVG(psfFlux) ... WHERE band = 'r'.

"engine" figures are ResultSet.elapsed_s (SQL to Arrow on a fresh cursor); "call" figures are
the whole Engine.execute call, i.e. they add opening that cursor and installing the ADQL
functions on it.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"translate_ms": 2.0, "cone_ms": 5.0, "band_aggregate_ms": 50.0}

TUTORIAL = "SELECT diaSourceId, x, y FROM dp1.DiaSource WHERE visit = 2024110800246 AND detector = 2"
CONE = ("SELECT diaSourceId, ra, dec, psfFlux FROM dp1.DiaSource "
        "WHERE CONTAINS(POINT(ra, dec), CIRCLE({ra!r}, {dec!r}, {r!r})) = 1")
BAND = "SELECT COUNT(*), AVG(psfFlux) FROM dp1.DiaSource WHERE band = 'r'"

# What the translator puts before the exact spherical test: the enclosing interval, then (when
# there are several) the parenthesised OR of the ranges.
_RANGES = re.compile(r'(?:"\w+"\.)?"_healpix" BETWEEN \d+ AND \d+ AND '
                     r'(?:\((?:"\w+"\.)?"_healpix" BETWEEN \d+ AND \d+'
                     r'(?: OR (?:"\w+"\.)?"_healpix" BETWEEN \d+ AND \d+)*\) AND )?')


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def median_ms(fn, repeat: int, warm: int = 1):
    for _ in range(warm):
        out = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1e3, 3), out


def scan_stats(engine, query) -> dict:
    """Row groups the table scan read, of all there are (DuckDB's EXPLAIN ANALYZE)."""
    from diavo.server.engine.base import EngineQuery, Limits

    plan = engine.execute(EngineQuery(sql="EXPLAIN ANALYZE " + query.sql, params=query.params),
                          Limits(timeout_s=600)).table.column(1)[0].as_py()
    groups = re.findall(r"Row Groups Scanned: ([\d,]+) / ([\d,]+)", plan)
    return {"row_groups": " + ".join(f"{a}/{b}" for a, b in groups) or None}


def brute_force(query):
    """The translated cone with its HEALPix ranges removed: the exact test alone, every row."""
    from diavo.server.engine.base import EngineQuery

    sql, n = _RANGES.subn("", query.sql)
    assert n == 1, f"expected one HEALPix range filter, found {n}: {query.sql[:300]}"
    return EngineQuery(sql=sql, params=query.params, columns=query.columns)


def bench_translate(service, repeat: int, centres) -> None:
    from diavo.server.adql.check import check
    from diavo.server.adql.parser import parse
    from diavo.server.adql.plan import plan
    from diavo.server.sql.emitter import emit as emit_sql

    model = service.model
    engine = service.engine
    ra, dec = centres[0]
    for label, text in (("tutorial", TUTORIAL), ("cone", CONE.format(ra=ra, dec=dec, r=0.05))):
        ms, _ = median_ms(lambda text=text: service.translate(text), repeat, warm=10)
        p_ms, tree = median_ms(lambda text=text: parse(text), repeat)
        c_ms, checked = median_ms(lambda tree=tree: check(tree, model, None), repeat)
        e_ms, _ = median_ms(lambda checked=checked: emit_sql(plan(checked, engine.layout), engine.dialect), repeat)
        emit(measure="translate", query=label, repeat=repeat, ms=ms, parse_ms=p_ms, check_ms=c_ms,
             emit_ms=e_ms, target_ms=TARGETS["translate_ms"])
    # A new centre every time, so the memoised HEALPix cover never helps.
    texts = [CONE.format(ra=ra + 1e-7 * i, dec=dec, r=0.05) for i in range(repeat + 1)]
    it = iter(texts)
    ms, _ = median_ms(lambda: service.translate(next(it)), repeat)
    emit(measure="translate", query="cone, new centre each time", repeat=repeat, ms=ms,
         target_ms=TARGETS["translate_ms"])


def bench_cone(service, centres, radius: float, repeat: int, brute_repeat: int) -> None:
    from diavo.server.engine.base import Limits

    engine, limits = service.engine, Limits(maxrec=None, timeout_s=600)

    def run(query):
        t = time.perf_counter()
        res = engine.execute(query, limits)
        return res.elapsed_s, time.perf_counter() - t, res.table

    def timed(query, n):
        run(query)                                  # warm
        eng, call = [], []
        for _ in range(n):
            e, c, table = run(query)
            eng.append(e)
            call.append(c)
        return statistics.median(eng) * 1e3, statistics.median(call) * 1e3, table

    per = []
    for ra, dec in centres:
        pruned = service.translate(CONE.format(ra=ra, dec=dec, r=radius))
        p_eng, p_call, p_tab = timed(pruned, repeat)
        b_eng, b_call, b_tab = timed(brute_force(pruned), brute_repeat)
        ids_p = sorted(p_tab.column("diaSourceId").to_pylist())
        assert ids_p == sorted(b_tab.column("diaSourceId").to_pylist()), (ra, dec)
        n_ranges = pruned.sql.count(" BETWEEN ")
        row = dict(ra=round(ra, 5), dec=round(dec, 5), rows=len(ids_p), healpix_ranges=n_ranges,
                   pruned_ms=round(p_eng, 2), pruned_call_ms=round(p_call, 2),
                   brute_ms=round(b_eng, 2), brute_call_ms=round(b_call, 2),
                   speedup=round(b_eng / p_eng, 1))
        per.append(row)
        stats = {f"pruned_{k}": v for k, v in scan_stats(engine, pruned).items()}
        stats.update({f"brute_{k}": v for k, v in scan_stats(engine, brute_force(pruned)).items()})
        emit(measure="cone", radius_deg=radius, repeat=repeat, brute_repeat=brute_repeat, **row,
             **stats)

    def med(key):
        return round(statistics.median(r[key] for r in per), 2)

    emit(measure="cone summary", radius_deg=radius, centres=len(per), rows=med("rows"),
         rows_max=max(r["rows"] for r in per), pruned_ms=med("pruned_ms"),
         pruned_ms_max=max(r["pruned_ms"] for r in per), pruned_call_ms=med("pruned_call_ms"),
         brute_ms=med("brute_ms"), brute_call_ms=med("brute_call_ms"),
         speedup=round(med("brute_ms") / med("pruned_ms"), 1), target_ms=TARGETS["cone_ms"])


def bench_band(service, repeat: int) -> None:
    from diavo.server.engine.base import Limits

    limits = Limits(maxrec=None, timeout_s=600)
    query = service.translate(BAND)
    eng, call = [], []
    service.engine.execute(query, limits)
    for _ in range(repeat):
        t = time.perf_counter()
        res = service.engine.execute(query, limits)
        call.append(time.perf_counter() - t)
        eng.append(res.elapsed_s)
    count, avg = (res.table.column(i)[0].as_py() for i in range(2))
    emit(measure="band aggregate", query=BAND, repeat=repeat, count=count, avg_psfFlux=avg,
         ms=round(statistics.median(eng) * 1e3, 2), call_ms=round(statistics.median(call) * 1e3, 2),
         target_ms=TARGETS["band_aggregate_ms"], **scan_stats(service.engine, query))


def sample_centres(service, k: int, seed: int) -> list[tuple[float, float]]:
    """k DiaSource positions drawn at random (reproducibly), so every cone lands on sources."""
    from diavo.server.engine.base import EngineQuery, Limits

    sql = (f'SELECT ra, dec FROM "dp1"."DiaSource" USING SAMPLE reservoir({k} ROWS) '
           f"REPEATABLE ({seed}) ORDER BY ra, dec")
    table = service.engine.execute(EngineQuery(sql=sql), Limits(timeout_s=600)).table
    return list(zip(table.column("ra").to_pylist(), table.column("dec").to_pylist(), strict=False))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--archive", type=Path, help="a demo archive directory (diavo demo build)")
    src.add_argument("--build-dp1", action="store_true", help="build a dp1-scale demo first")
    src.add_argument("--build-10m", action="store_true", help="build a 10M-DiaSource demo first")
    ap.add_argument("--repeat", type=int, default=21, help="repeats of each engine query")
    ap.add_argument("--translate-repeat", type=int, default=1000)
    ap.add_argument("--brute-repeat", type=int, default=7)
    ap.add_argument("--centres", type=int, default=10, help="cone centres drawn from DiaSource")
    ap.add_argument("--radius", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)

    tmp = None
    root = args.archive
    if root is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_archive import build

        tmp = tempfile.TemporaryDirectory(prefix="bench_adql_")
        root = Path(tmp.name) / "archive"
        n_sources = 10_000_000 if args.build_10m else None
        emit(measure="build", scale="dp1", n_sources=n_sources, **build("dp1", root, n_sources))

    from diavo.server.engine.base import Limits
    from diavo.server.query.executor import open_service

    t = time.perf_counter()
    service = open_service(root)
    n = service.run("SELECT COUNT(*) FROM dp1.DiaSource", Limits(timeout_s=600)).table.column(0)[0].as_py()
    emit(measure="archive", diasource_rows=n, open_and_count_s=round(time.perf_counter() - t, 2))

    centres = sample_centres(service, args.centres, args.seed)
    bench_translate(service, args.translate_repeat, centres)
    bench_cone(service, centres, args.radius, args.repeat, args.brute_repeat)
    bench_band(service, args.repeat)
    service.engine.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
