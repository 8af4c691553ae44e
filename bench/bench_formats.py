"""Benchmark every result format: rows/s and peak RSS, beside astropy's writers (asserts nothing).

    python bench/bench_formats.py                         # 1M rows x 5 columns
    python bench/bench_formats.py --rows 10000000 --astropy-rows 0
    python bench/bench_formats.py --formats fits,parquet

Each measurement runs in a fresh child process: "peak RSS" is its high-water mark
(``ru_maxrss``) and "over base" the growth while writing, above the process holding its imports
and the input table (for diavo a list of Arrow batches handed over one by one as a result
stream; for astropy an astropy Table, which its writers need whole). Only the writing is timed;
output goes to a file in a temporary directory. The table is (long, double, double, float,
char(1)). astropy's VOTable writer runs ~100x slower, so it gets
``--astropy-votable-rows`` rows (rates are per row, so they compare).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

COLUMNS = [
    {"name": "diaSourceId", "datatype": "long", "ucd": "meta.id;meta.main"},
    {"name": "ra", "datatype": "double", "unit": "deg", "ucd": "pos.eq.ra;meta.main"},
    {"name": "dec", "datatype": "double", "unit": "deg", "ucd": "pos.eq.dec;meta.main"},
    {"name": "psfFlux", "datatype": "float", "unit": "nJy", "ucd": "phot.flux"},
    {"name": "band", "datatype": "char", "ucd": "meta.id;instr.filter"},
]
FORMATS = ["votable", "votable-b2", "csv", "tsv", "fits", "parquet"]
ASTROPY = {"votable": ("votable", {"tabledata_format": "tabledata"}),
           "votable-b2": ("votable", {"tabledata_format": "binary2"}),
           "csv": ("ascii.csv", {}), "tsv": ("ascii.tab", {}), "fits": ("fits", {}),
           "parquet": ("parquet", {})}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _batches(rows: int, batch: int):
    import numpy as np
    import pyarrow as pa

    bands = np.array(list("ugrizy"))
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        rng = np.random.default_rng(start)
        yield pa.record_batch([
            pa.array(np.arange(start, start + n, dtype=np.int64) * 7919 + 170_000_000_000),
            pa.array(rng.uniform(52.0, 54.0, n)), pa.array(rng.uniform(-29.0, -27.0, n)),
            pa.array(rng.normal(1000.0, 300.0, n).astype(np.float32)),
            pa.array(bands[rng.integers(0, 6, n)])], names=[c["name"] for c in COLUMNS])


class _Stream:
    """The result-stream shape the writers take: batches plus FIELD metadata."""

    def __init__(self, batches: list):
        self.columns, self.overflow, self.rows = COLUMNS, False, 0
        self.schema = batches[0].schema
        self._batches = batches

    def __iter__(self):
        for b in self._batches:
            self.rows += b.num_rows
            yield b


def child(writer: str, key: str, rows: int, batch: int) -> dict:
    import pyarrow as pa  # noqa: F401 - imported before the baseline is taken

    from diavo.server.output.formats import by_key

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out")
        if writer == "diavo":
            fmt = by_key(key)
            with open(path, "wb") as out:                       # warm-up: imports, caches
                fmt.write(_Stream(list(_batches(20_000, batch))), out)
            batches = list(_batches(rows, batch))
            base = _rss_mb()
            t = time.perf_counter()
            with open(path, "wb") as out:
                fmt.write(_Stream(batches), out)
            sec = time.perf_counter() - t
        else:
            from astropy.table import Table

            name, kw = ASTROPY[key]
            import pyarrow as pa

            arrow = pa.Table.from_batches(list(_batches(rows, batch)))
            table = Table({n: arrow[n].to_numpy() for n in arrow.column_names})
            table["band"] = table["band"].astype("U1")
            del arrow
            base = _rss_mb()
            t = time.perf_counter()
            table.write(path, format=name, overwrite=True, **kw)
            sec = time.perf_counter() - t
        size = os.path.getsize(path)
    return {"rows": rows, "sec": sec, "mb": size / 1e6, "rss": _rss_mb(), "base": base}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--astropy-rows", type=int, default=None,
                    help="rows for astropy's writers (default --rows; 0 skips them)")
    ap.add_argument("--astropy-votable-rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--child", nargs=2, metavar=("WRITER", "FORMAT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.rows, args.batch)))
        return

    arows = args.rows if args.astropy_rows is None else args.astropy_rows
    print(f"{args.rows:,} rows x 5 columns (long, double, double, float, char), "
          f"batches of {args.batch:,}; output to a file")
    print(f"{'format':<11} {'writer':<8} {'rows':>10} {'seconds':>8} {'M rows/s':>9} "
          f"{'MB out':>8} {'peak RSS MB':>12} {'over base':>10}")
    for key in args.formats.split(","):
        runs = [("diavo", args.rows)]
        if arows:
            runs.append(("astropy", min(arows, args.astropy_votable_rows)
                         if key.startswith("votable") else arows))
        for writer, rows in runs:
            out = subprocess.run([sys.executable, __file__, "--child", writer, key,
                                  "--rows", str(rows), "--batch", str(args.batch)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{key:<11} {writer:<8} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{key:<11} {writer:<8} {r['rows']:>10,} {r['sec']:>8.3f} "
                  f"{r['rows'] / r['sec'] / 1e6:>9.2f} {r['mb']:>8.1f} {r['rss']:>12.0f} "
                  f"{r['rss'] - r['base']:>10.0f}")


if __name__ == "__main__":
    main()
