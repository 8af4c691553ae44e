"""ObsCore rows for difference images, filled the way Rubin fills them for DP1.

The same function serves the demo generator and ``diavo ingest``, so an archive built from real
FITS files and one built from the generator describe their images identically.
"""
from __future__ import annotations

import numpy as np

from diavo.server.archive.images.spec import ImageSpec
from diavo.shared.bands import EM_RANGE_M
from diavo.shared.camera import FACILITY, INSTRUMENT, PIXEL_SCALE_ARCSEC, detector_layout
from diavo.shared.ids import datalink_url, image_id

DATALINK_FORMAT = "application/x-votable+xml;content=datalink"
OBS_COLLECTION = "LSST.DP1"
SUBTYPE = "lsst.difference_image"
TAI_MINUS_UTC_DAYS = 37.0 / 86400.0
FITS_HEADER_KB = 40


def mjd_to_isot(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="tai").isot


def stcs_polygon(ra, dec) -> str:
    """Rubin writes s_region as an STC-S polygon with six decimals."""
    coords = " ".join(f"{a:.6f} {d:.6f}" for a, d in zip(ra, dec, strict=False))
    return f"POLYGON ICRS {coords}"


def great_circle_deg(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.deg2rad, (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.rad2deg(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def _footprint(spec: ImageSpec, wcs):
    """Centre and pixel-edge corners on the sky, from the spec or from a file's own WCS."""
    cx, cy = (spec.width - 1) / 2, (spec.height - 1) / 2
    if wcs is None:
        return spec.pixel_to_sky(cx, cy), spec.corners_sky()
    lo, hx, hy = -0.5, spec.width - 0.5, spec.height - 0.5
    ra, dec = wcs.all_pix2world(np.array([cx, lo, hx, hx, lo]), np.array([cy, lo, lo, hy, hy]), 0)
    return (ra[0], dec[0]), (ra[1:] % 360.0, dec[1:])


def obscore_row(spec: ImageSpec, *, base_url: str, field: str | None = None, wcs=None) -> dict:
    """One ObsCore row; ``wcs`` (astropy) overrides the spec's geometry for foreign files."""
    ident = image_id(spec.visit, spec.detector)
    (cra, cdec), (kra, kdec) = _footprint(spec, wcs)
    radius = float(np.max(great_circle_deg(cra, cdec, kra, kdec)))
    t_min_utc = spec.obs_start_mjd_tai - TAI_MINUS_UTC_DAYS
    t_max_utc = t_min_utc + spec.exp_time / 86400.0
    em_min, em_max = EM_RANGE_M[spec.band]
    ixx, iyy, ixy = spec.psf.moments(spec.width / 2, spec.height / 2)
    sigma_px = float((ixx * iyy - ixy**2) ** 0.25)
    seq = spec.visit % 100000
    obs_id = f"CC_O_{spec.day_obs}_{seq:06d}"
    size_kb = (spec.width * spec.height * 12) // 1024 + FITS_HEADER_KB
    return {
        "dataproduct_type": "image",
        "dataproduct_subtype": SUBTYPE,
        "calib_level": 3,
        "obs_collection": OBS_COLLECTION,
        "obs_id": obs_id,
        "obs_publisher_did": ident,
        "obs_title": (f"difference_image - {spec.band} - {obs_id}-{detector_layout(spec.detector).name} "
                      f"{mjd_to_isot(spec.obs_start_mjd_tai - TAI_MINUS_UTC_DAYS)}Z"),
        "access_url": datalink_url(base_url, ident),
        "access_format": DATALINK_FORMAT,
        "access_estsize": int(size_kb),
        "target_name": field,
        "facility_name": FACILITY,
        "instrument_name": INSTRUMENT,
        "s_ra": float(cra),
        "s_dec": float(cdec),
        "s_fov": 2 * radius,
        "s_region": stcs_polygon(kra, kdec),
        "s_resolution": sigma_px * 2 * np.sqrt(2 * np.log(2)) * PIXEL_SCALE_ARCSEC,
        "s_xel1": spec.width,
        "s_xel2": spec.height,
        "t_xel": 1,
        "t_min": t_min_utc,
        "t_max": t_max_utc,
        "t_exptime": spec.exp_time,
        "t_resolution": spec.exp_time,
        "em_xel": 1,
        "em_min": em_min,
        "em_max": em_max,
        "em_res_power": (em_min + em_max) / 2 / (em_max - em_min),
        "o_ucd": "phot.flux.density",
        "pol_xel": None,
        "pol_states": None,
        "lsst_visit": spec.visit,
        "lsst_detector": spec.detector,
        "lsst_tract": None,
        "lsst_patch": None,
        "lsst_band": spec.band,
        "lsst_filter": spec.physical_filter,
        "lsst_day_obs": spec.day_obs,
    }
