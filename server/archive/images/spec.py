"""What it takes to draw one difference image: its pointing, visit conditions, PSF and noise.

An ImageSpec is stored per image in the archive, so any image of a DP1-scale archive can be
produced on demand, deterministically, without keeping its pixels. The WCS follows the Rubin
convention: every detector of a visit shares one gnomonic (TAN) projection about the boresight
and differs only in where its pixel (0, 0) sits in the focal plane.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH, PIXEL_SCALE_ARCSEC, detector_layout
from diavo.shared.psf import GaussianPsfModel


def cd_matrix(rotation_deg: float, scale_arcsec: float = PIXEL_SCALE_ARCSEC) -> np.ndarray:
    """CD matrix (deg/pixel) for a sky rotation angle: east left, north up at rotation 0."""
    s = scale_arcsec / 3600.0
    t = np.deg2rad(rotation_deg)
    return s * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])


def sky_to_tangent(ra, dec, ra0: float, dec0: float):
    """Gnomonic projection about (ra0, dec0): standard coordinates (xi, eta) in degrees.

    Returns NaN where the point lies on the far hemisphere.
    """
    ra = np.deg2rad(np.asarray(ra, dtype=float))
    dec = np.deg2rad(np.asarray(dec, dtype=float))
    a0, d0 = np.deg2rad(ra0), np.deg2rad(dec0)
    cosc = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = np.cos(dec) * np.sin(ra - a0) / cosc
        eta = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cosc
    bad = cosc <= 0
    xi = np.where(bad, np.nan, xi)
    eta = np.where(bad, np.nan, eta)
    return np.rad2deg(xi), np.rad2deg(eta)


def tangent_to_sky(xi, eta, ra0: float, dec0: float):
    xi = np.deg2rad(np.asarray(xi, dtype=float))
    eta = np.deg2rad(np.asarray(eta, dtype=float))
    a0, d0 = np.deg2rad(ra0), np.deg2rad(dec0)
    rho = np.hypot(xi, eta)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, eta * np.sin(c) * np.cos(d0) / rho, 0.0))
        ra = a0 + np.arctan2(xi * np.sin(c), rho * np.cos(d0) * np.cos(c) - eta * np.sin(d0) * np.sin(c))
    return np.rad2deg(ra) % 360.0, np.rad2deg(dec)


@dataclass(frozen=True)
class ImageSpec:
    """Everything needed to draw (and describe) one synthetic difference image."""

    visit: int
    detector: int
    band: str
    physical_filter: str
    day_obs: int
    boresight_ra: float
    boresight_dec: float
    rotation_deg: float
    obs_start_mjd_tai: float
    exp_time: float
    airmass: float
    par_angle_rad: float
    altitude_deg: float
    azimuth_deg: float
    air_pressure_pa: float
    air_temperature_c: float
    humidity_pct: float
    psf: GaussianPsfModel
    var_level: float
    var_grad_x: float
    var_grad_y: float
    seed: int
    width: int = CCD_WIDTH
    height: int = CCD_HEIGHT
    extra: dict = field(default_factory=dict, compare=False)

    # -- geometry ----------------------------------------------------------------------------
    @property
    def cd(self) -> np.ndarray:
        return cd_matrix(self.rotation_deg)

    @property
    def crpix0(self) -> tuple[float, float]:
        """Zero-based pixel position of the boresight in this detector's pixel frame."""
        lay = detector_layout(self.detector)
        return (-lay.x0, -lay.y0)

    def sky_to_pixel(self, ra, dec):
        xi, eta = sky_to_tangent(ra, dec, self.boresight_ra, self.boresight_dec)
        inv = np.linalg.inv(self.cd)
        dx = inv[0, 0] * xi + inv[0, 1] * eta
        dy = inv[1, 0] * xi + inv[1, 1] * eta
        cx, cy = self.crpix0
        return dx + cx, dy + cy

    def pixel_to_sky(self, x, y):
        cx, cy = self.crpix0
        dx = np.asarray(x, dtype=float) - cx
        dy = np.asarray(y, dtype=float) - cy
        cd = self.cd
        return tangent_to_sky(cd[0, 0] * dx + cd[0, 1] * dy, cd[1, 0] * dx + cd[1, 1] * dy,
                              self.boresight_ra, self.boresight_dec)

    def wcs_cards(self, x0: int = 0, y0: int = 0) -> list[tuple[str, object, str]]:
        """FITS WCS cards for the sub-image whose pixel (0, 0) is parent pixel (x0, y0)."""
        cx, cy = self.crpix0
        cd = self.cd
        return [
            ("WCSAXES", 2, ""),
            ("CTYPE1", "RA---TAN", ""), ("CTYPE2", "DEC--TAN", ""),
            ("CUNIT1", "deg", ""), ("CUNIT2", "deg", ""),
            ("CRVAL1", float(self.boresight_ra), "boresight RA"),
            ("CRVAL2", float(self.boresight_dec), "boresight Dec"),
            ("CRPIX1", float(cx - x0 + 1.0), "FITS 1-based"),
            ("CRPIX2", float(cy - y0 + 1.0), "FITS 1-based"),
            ("CD1_1", float(cd[0, 0]), ""), ("CD1_2", float(cd[0, 1]), ""),
            ("CD2_1", float(cd[1, 0]), ""), ("CD2_2", float(cd[1, 1]), ""),
            ("RADESYS", "ICRS", ""),
        ]

    def astropy_wcs(self):
        from astropy.io import fits
        from astropy.wcs import WCS

        hdr = fits.Header()
        for key, value, comment in self.wcs_cards():
            hdr[key] = (value, comment)
        return WCS(hdr)

    def corners_sky(self, inset: float = 0.0):
        """Sky positions of the four pixel-edge corners, counter-clockwise from (0, 0)."""
        lo, hx, hy = -0.5 + inset, self.width - 0.5 - inset, self.height - 0.5 - inset
        xs = np.array([lo, hx, hx, lo])
        ys = np.array([lo, lo, hy, hy])
        return self.pixel_to_sky(xs, ys)

    # -- time -------------------------------------------------------------------------------
    @property
    def obs_mid_mjd_tai(self) -> float:
        return self.obs_start_mjd_tai + self.exp_time / 2.0 / 86400.0

    # -- storage ----------------------------------------------------------------------------
    def to_record(self) -> dict:
        rec = asdict(self)
        rec.pop("extra")
        rec.pop("psf")
        rec.update(self.psf.to_record())
        return rec

    @classmethod
    def from_record(cls, rec: dict) -> ImageSpec:
        rec = dict(rec)
        psf = GaussianPsfModel.from_record(rec)
        names = {f for f in cls.__dataclass_fields__ if f not in ("psf", "extra")}
        return cls(psf=psf, **{k: rec[k] for k in names if k in rec})
