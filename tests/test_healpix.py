"""shared.healpix (cdshealpix's compiled core, no astropy) against cdshealpix's public API."""
from __future__ import annotations

import subprocess
import sys

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Latitude, Longitude
from cdshealpix import nested

from diavo.shared import healpix


@pytest.mark.parametrize("depth", [0, 5, 10, 16, 29])
def test_indices_equal_public_api(depth):
    rng = np.random.default_rng(depth)
    ra = rng.uniform(-360, 720, 5000)  # outside [0, 360) too: wrapped like a Longitude
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    dec[:4] = [90, -90, 0, 89.999999]
    want = nested.lonlat_to_healpix(Longitude(ra, u.deg), Latitude(dec, u.deg), depth).astype(np.int64)
    assert np.array_equal(healpix.lonlat_to_index(ra, dec, depth), want)
    assert healpix.lonlat_to_index([], [], depth).shape == (0,)


def test_cones_equal_public_api():
    rng = np.random.default_rng(7)
    for _ in range(200):
        ra, dec = rng.uniform(0, 360), np.degrees(np.arcsin(rng.uniform(-1, 1)))
        r, depth = rng.choice([0.001, 0.05, 1.0, 20.0]), int(rng.integers(3, 14))
        ipix, depths = healpix.cone_cells(ra, dec, r, depth)
        want, want_d, _ = nested.cone_search(Longitude(ra * u.deg), Latitude(dec * u.deg), r * u.deg, depth,
                                             flat=False)
        assert np.array_equal(ipix, want) and np.array_equal(depths, want_d)
        assert len(ipix) > 0


def test_no_astropy_imported():
    code = ("import sys; from diavo.shared import healpix as h; h.cone_cells(53, -28, 0.05, 10); "
            "h.lonlat_to_index([1.0], [2.0], 16); print('astropy' in sys.modules, 'cdshealpix.nested' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
