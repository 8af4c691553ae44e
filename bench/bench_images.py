"""Time the on-demand image path: full render, a 200x200 cut-out, and full FITS bytes.

Run with ``python bench/bench_images.py [n_sources]``. Targets: full render <= 1.5 s, 200x200
region <= 20 ms, full FITS bytes <= 0.5 s.
"""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from diavo.server.archive.images.fitsio import exposure_bytes
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.images.synth import SourceList, render
from diavo.shared.psf import GaussianPsfModel


def bench_spec() -> ImageSpec:
    psf = GaussianPsfModel.random(np.random.default_rng(7), 4072, 4000)
    return ImageSpec(
        visit=2024110800247, detector=4, band="r", physical_filter="r_03", day_obs=20241108,
        boresight_ra=53.2, boresight_dec=-28.0, rotation_deg=30.0, obs_start_mjd_tai=60623.2593,
        exp_time=30.0, airmass=1.038, par_angle_rad=1.78496, altitude_deg=74.4,
        azimuth_deg=121.0, air_pressure_pa=74135.0, air_temperature_c=14.375,
        humidity_pct=17.05, psf=psf, var_level=300.0, var_grad_x=0.12, var_grad_y=-0.08, seed=123,
    )


def bench_sources(n: int) -> SourceList:
    rng = np.random.default_rng(1)
    flux = rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(2.5, 6.0, n)
    return SourceList(rng.uniform(0, 4072, n), rng.uniform(0, 4000, n), flux, np.arange(n))


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up: first-touch page faults and imports are not what we measure
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 200
    spec, sources = bench_spec(), bench_sources(n)
    full = render(spec, sources)
    rng = np.random.default_rng(3)
    corners = [(int(rng.integers(0, 3872)), int(rng.integers(0, 3800))) for _ in range(64)]
    it = iter(corners * 100)

    def region():
        x0, y0 = next(it)
        return render(spec, sources, (x0, y0, x0 + 200, y0 + 200))

    t_full = median_time(lambda: render(spec, sources), 5)
    t_region = median_time(region, 31)
    t_fits = median_time(lambda: exposure_bytes(spec, full), 5)
    print(f"sources: {n}")
    print(f"full render 4072x4000:   {t_full * 1e3:8.1f} ms  (target 1500)")
    print(f"200x200 region render:   {t_region * 1e3:8.1f} ms  (target 20)")
    print(f"full FITS bytes:         {t_fits * 1e3:8.1f} ms  (target 500)")


if __name__ == "__main__":
    main()
