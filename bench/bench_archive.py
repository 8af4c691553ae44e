"""Build the demo archive at each scale and time the image path on it.

Prints one line per measurement: build wall time, archive size and peak memory (the build runs
in a child process, so its peak is measured alone), then the time to produce one full difference
image and one 200x200 sub-region of it through the archive's ImageStore (catalog lookup of the
image's DiaSources included), and to write the full image as FITS bytes.

    python bench/bench_archive.py                 # small and dp1
    python bench/bench_archive.py --scale small
    python bench/bench_archive.py --scale dp1 --n-sources 10000000
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"small": 30.0, "dp1": 180.0}


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(scale: str, root: Path, n_sources: int | None) -> dict:
    code = ("import json, sys; from pathlib import Path; from diavo.server.archive.demo.build import build_demo; "
            f"print(json.dumps(build_demo(Path(sys.argv[1]), scale={scale!r}, seed=42, "
            f"n_sources={n_sources!r}, progress=False)))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(root)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    info = json.loads(out.stdout.strip().splitlines()[-1])
    info.update(wall_s=round(wall, 1), size_mb=round(dir_size(root) / 2**20, 1),
                peak_rss_mb=round(max(peak_kb, before) / 1024, 1))
    return info


def time_images(root: Path, repeat: int = 5) -> dict:
    from diavo.server.archive.images.access import ImageStore

    images = ImageStore(root)
    visit, detector = 2024110800246, 2
    images.planes(visit, detector, (0, 0, 10, 10))  # warm the catalog connection
    full, region, fits_t = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        images.planes(visit, detector)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        images.planes(visit, detector, (1800, 1900, 2000, 2100))
        region.append(time.perf_counter() - t0)
    for _ in range(2):
        t0 = time.perf_counter()
        images.fits_bytes(visit, detector)
        fits_t.append(time.perf_counter() - t0)
    return {"full_image_s": round(statistics.median(full), 3),
            "region_200_ms": round(1000 * statistics.median(region), 1),
            "full_fits_bytes_s": round(statistics.median(fits_t), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["small", "dp1"], action="append")
    ap.add_argument("--n-sources", type=int, default=None)
    args = ap.parse_args()
    for scale in args.scale or ["small", "dp1"]:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / scale
            info = build(scale, root, args.n_sources)
            info.update(time_images(root))
            info["build_target_s"] = TARGETS[scale]
            print(json.dumps({"scale": scale, **info}), flush=True)


if __name__ == "__main__":
    main()
