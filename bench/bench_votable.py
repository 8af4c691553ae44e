"""Benchmark the streaming VOTable writer (prints rows/s; asserts nothing).

    python bench/bench_votable.py                      # 1M rows x 5 columns, both encodings
    python bench/bench_votable.py --rows 10000000 --astropy-rows 0

The table is (long, double, double, float, char(1)), handed over as Arrow record batches of
--batch rows and written to a sink that only counts bytes.  astropy's own writer
(``votable.from_table(...).to_xml``) is timed on the same table for comparison.
Targets (issue 4): BINARY2 >= 3 M rows/s, TABLEDATA >= 1 M rows/s.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import pyarrow as pa

from diavo.server.output import write_votable

COLUMNS = [
    {"name": "diaSourceId", "datatype": "long", "ucd": "meta.id;meta.main"},
    {"name": "ra", "datatype": "double", "unit": "deg", "ucd": "pos.eq.ra;meta.main"},
    {"name": "dec", "datatype": "double", "unit": "deg", "ucd": "pos.eq.dec;meta.main"},
    {"name": "psfFlux", "datatype": "float", "unit": "nJy", "ucd": "phot.flux"},
    {"name": "band", "datatype": "char", "arraysize": "1", "ucd": "meta.id;instr.filter"},
]


class Sink(io.RawIOBase):
    def __init__(self):
        self.size = 0

    def writable(self):
        return True

    def write(self, b):
        n = memoryview(b).nbytes
        self.size += n
        return n


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "diaSourceId": pa.array(np.arange(rows, dtype=np.int64) * 7919 + 170_000_000_000),
        "ra": pa.array(rng.uniform(52.0, 54.0, rows)),
        "dec": pa.array(rng.uniform(-29.0, -27.0, rows)),
        "psfFlux": pa.array(rng.normal(1000.0, 300.0, rows).astype(np.float32)),
        "band": pa.array(np.array(list("ugrizy"))[rng.integers(0, 6, rows)]),
    })


def time_ours(table: pa.Table, encoding: str, batch: int, repeat: int):
    times, size = [], 0
    for _ in range(repeat):
        sink = Sink()
        t = time.perf_counter()
        write_votable(table.to_batches(max_chunksize=batch), COLUMNS, sink, encoding=encoding)
        times.append(time.perf_counter() - t)
        size = sink.size
    return statistics.median(times), size


def time_astropy(table: pa.Table, encoding: str):
    from astropy.io import votable
    from astropy.table import Table

    t_in = Table({name: table[name].to_numpy() for name in table.column_names})
    t_in["band"] = t_in["band"].astype("S1")
    vot = votable.from_table(t_in)
    buf = io.BytesIO()
    t = time.perf_counter()
    vot.to_xml(buf, tabledata_format=encoding)
    return time.perf_counter() - t, buf.tell()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--astropy-rows", type=int, default=None,
                    help="rows for astropy's writer (default: --rows; 0 skips it)")
    ap.add_argument("--batch", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    table = make_table(args.rows)
    arows = args.rows if args.astropy_rows is None else args.astropy_rows
    print(f"{args.rows:,} rows x 5 columns (long, double, double, float, char(1)), "
          f"batches of {args.batch:,}")
    print(f"{'writer':<10} {'encoding':<10} {'rows':>11} {'seconds':>8} {'M rows/s':>9} "
          f"{'MB out':>8}")
    for enc in ("binary2", "tabledata"):
        time_ours(table.slice(0, min(args.rows, 100_000)), enc, args.batch, 1)   # warm-up
        sec, size = time_ours(table, enc, args.batch, args.repeat)
        print(f"{'diavo':<10} {enc:<10} {args.rows:>11,} {sec:>8.3f} "
              f"{args.rows / sec / 1e6:>9.2f} {size / 1e6:>8.1f}")
        if arows:
            sec, size = time_astropy(table.slice(0, arows), enc)
            print(f"{'astropy':<10} {enc:<10} {arows:>11,} {sec:>8.3f} "
                  f"{arows / sec / 1e6:>9.2f} {size / 1e6:>8.1f}")


if __name__ == "__main__":
    main()
