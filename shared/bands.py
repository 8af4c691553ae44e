"""Rubin bands: physical filter names and the wavelength ranges ObsCore's em_min/em_max carry."""
from __future__ import annotations

BANDS = ("u", "g", "r", "i", "z", "y")

#: LSSTComCam physical filter for each band, as DP1 names them.
PHYSICAL_FILTER = {"u": "u_02", "g": "g_01", "r": "r_03", "i": "i_06", "z": "z_03", "y": "y_04"}

#: Band limits in metres (the values Rubin's ObsCore configuration uses for DP1).
EM_RANGE_M = {
    "u": (300.0e-9, 393.2e-9),
    "g": (402.6e-9, 548.3e-9),
    "r": (551.0e-9, 689.1e-9),
    "i": (693.6e-9, 818.8e-9),
    "z": (819.2e-9, 920.1e-9),
    "y": (927.8e-9, 1100.0e-9),
}


def band_of_filter(physical_filter: str) -> str:
    band = physical_filter.split("_", 1)[0]
    if band not in BANDS:
        raise ValueError(f"unknown physical filter {physical_filter!r}")
    return band
