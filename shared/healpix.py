"""Nested HEALPix through cdshealpix's compiled core, in degrees, without astropy.

cdshealpix's package ``__init__`` imports astropy.units and astropy.coordinates (0.4–0.5 s), and
its public functions build Longitude/Latitude/Quantity objects that cost more than the search.
Its compiled module takes plain radians, so the first cone of a fresh server loads only that
module (a few ms); the public API stays the fallback should a release move the compiled one.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

_CORE = "cdshealpix.cdshealpix"


def _core() -> ModuleType | None:
    """The compiled module, loaded from its file without running the package ``__init__``.

    It is registered under its own name in ``sys.modules`` (the interpreter's import cache), so a
    later ``import cdshealpix`` reuses it instead of initialising the extension twice.
    """
    if _CORE in sys.modules:
        return sys.modules[_CORE]
    spec = importlib.util.find_spec("cdshealpix")
    for where in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(Path(where).glob("cdshealpix*.so")) + sorted(Path(where).glob("cdshealpix*.pyd")):
            core_spec = importlib.util.spec_from_file_location(_CORE, path)
            if core_spec is None or core_spec.loader is None:
                continue
            module = importlib.util.module_from_spec(core_spec)
            core_spec.loader.exec_module(module)
            sys.modules[_CORE] = module
            return module
    return None


def cone_cells(ra: float, dec: float, radius: float, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells (and their depths, not flattened) overlapping a cone; degrees in."""
    core = _core()
    if core is not None and hasattr(core, "cone_search"):
        ipix, depths, _ = core.cone_search(np.uint8(depth), np.uint8(2), np.float64(math.radians(ra)),
                                           np.float64(math.radians(dec)), np.float64(math.radians(radius)),
                                           False)
        return ipix, depths
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ipix, depths, _ = nested.cone_search(Longitude(ra * u.deg), Latitude(dec * u.deg), radius * u.deg, depth,
                                         flat=False)
    return ipix, depths


def lonlat_to_index(ra, dec, depth: int) -> np.ndarray:
    """Nested indices at ``depth`` of positions in degrees (any shape; int64)."""
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    if ra.size == 0:
        return np.zeros(ra.shape, dtype=np.int64)
    core = _core()
    if core is not None and hasattr(core, "lonlat_to_healpix"):
        lon = np.radians(np.mod(ra, 360.0)).ravel()
        lat = np.radians(dec).ravel()
        out = np.empty(lon.shape, dtype=np.uint64)
        dx = np.empty(lon.shape, dtype=np.float64)
        dy = np.empty(lon.shape, dtype=np.float64)
        core.lonlat_to_healpix(np.full(lon.shape, depth, dtype=np.uint8), lon, lat, out, dx, dy, np.uint16(1))
        return out.astype(np.int64).reshape(ra.shape)
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix.nested import lonlat_to_healpix

    return lonlat_to_healpix(Longitude(ra, u.deg), Latitude(dec, u.deg), depth).astype(np.int64)
