"""An exposure's sky WCS with the pipelines' calls, computed by astropy.

Two pixel frames meet here. The LSST calls (``pixelToSky``, ``skyToPixel``...) take and return
PARENT pixels: zero-based, pixel centres on integers, and a cut-out keeps the coordinates of the
full CCD. ``.wcs`` is the astropy WCS of the exposure's own arrays (array index [0, 0] is pixel 0
there), the frame astropy, matplotlib and ``Cutout2D`` expect. The two differ by ``xy0``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from astropy.wcs import WCS, FITSFixedWarning

from .geom import Angle, Point2D, SpherePoint, _xy, degrees


def _is_point_list(args) -> bool:
    return len(args) == 1 and isinstance(args[0], (list, tuple)) and len(args[0]) > 0 and (
        hasattr(args[0][0], "getX") or isinstance(args[0][0], SpherePoint))


class SkyWcs:
    """Pixel <-> sky mapping of one exposure (``exposure.getWcs()``)."""

    def __init__(self, wcs: WCS, x0: int = 0, y0: int = 0) -> None:
        self.wcs = wcs
        self._x0, self._y0 = int(x0), int(y0)

    @classmethod
    def from_header(cls, header, x0: int = 0, y0: int = 0) -> SkyWcs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header)
        if not wcs.has_celestial:
            raise ValueError("the header has no celestial WCS")
        return cls(wcs.celestial, x0, y0)

    # -- vectorised forms (degrees=False gives radians, as the pipelines' *Array calls do) -------
    def pixelToSkyArray(self, x, y, degrees: bool = False):
        """(ra, dec) arrays for parent pixel arrays ``x``, ``y``."""
        ra, dec = self.wcs.all_pix2world(np.asarray(x, dtype=float) - self._x0,
                                         np.asarray(y, dtype=float) - self._y0, 0)
        ra = np.mod(ra, 360.0)
        return (ra, dec) if degrees else (np.deg2rad(ra), np.deg2rad(dec))

    def skyToPixelArray(self, ra, dec, degrees: bool = False):
        """Parent pixel (x, y) arrays for ``ra``, ``dec`` arrays (radians unless degrees=True)."""
        ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
        if not degrees:
            ra, dec = np.rad2deg(ra), np.rad2deg(dec)
        x, y = self.wcs.all_world2pix(ra, dec, 0)
        return x + self._x0, y + self._y0

    # -- the pipelines' scalar calls --------------------------------------------------------------
    def pixelToSky(self, *args):
        """Sky position of a parent pixel position: ``pixelToSky(x, y)`` or ``(Point2D)``; a
        list of points gives a list of SpherePoints."""
        if _is_point_list(args):
            ra, dec = self.pixelToSkyArray([p.getX() for p in args[0]], [p.getY() for p in args[0]], True)
            return [SpherePoint(a, d, degrees) for a, d in zip(ra, dec, strict=False)]
        x, y = _xy(args)
        ra, dec = self.pixelToSkyArray(x, y, degrees=True)
        return SpherePoint(float(ra), float(dec), degrees)

    def skyToPixel(self, coord):
        """Parent pixel position (Point2D) of a SpherePoint; a list gives a list."""
        if isinstance(coord, (list, tuple)) and coord and isinstance(coord[0], SpherePoint):
            x, y = self.skyToPixelArray([c.getRa().asDegrees() for c in coord],
                                        [c.getDec().asDegrees() for c in coord], True)
            return [Point2D(float(a), float(b)) for a, b in zip(x, y, strict=False)]
        coord = SpherePoint(coord)
        x, y = self.skyToPixelArray(coord.getRa().asDegrees(), coord.getDec().asDegrees(), True)
        return Point2D(float(x), float(y))

    def getPixelOrigin(self) -> Point2D:
        """Parent pixel of the reference point (FITS CRPIX, made zero-based and parent)."""
        cx, cy = self.wcs.wcs.crpix
        return Point2D(cx - 1.0 + self._x0, cy - 1.0 + self._y0)

    def getSkyOrigin(self) -> SpherePoint:
        ra, dec = self.wcs.wcs.crval
        return SpherePoint(float(ra), float(dec), degrees)

    def getCdMatrix(self, *point) -> np.ndarray:
        """Local linear map at a parent pixel (default: the pixel origin), degrees per pixel:
        columns are d/dx and d/dy of (ra * cos(dec), dec)."""
        x, y = _xy(point) if point else tuple(self.getPixelOrigin())
        ra, dec = self.pixelToSkyArray([x, x + 0.5, x - 0.5, x, x], [y, y, y, y + 0.5, y - 0.5], True)
        cosd = math.cos(math.radians(dec[0]))
        dra = (np.array([ra[1] - ra[2], ra[3] - ra[4]]) + 180.0) % 360.0 - 180.0
        return np.array([[dra[0] * cosd, dra[1] * cosd], [dec[1] - dec[2], dec[3] - dec[4]]])

    def getPixelScale(self, *point) -> Angle:
        """Side of a square pixel of the same solid angle, at a parent pixel position (default:
        the pixel origin, as the pipelines do)."""
        det = abs(float(np.linalg.det(self.getCdMatrix(*point))))
        return Angle(math.sqrt(det), degrees)

    def isFlipped(self) -> bool:
        """True when east is to the right of north (a parity flip of the sky)."""
        return float(np.linalg.det(self.getCdMatrix())) > 0

    def getFitsMetadata(self):
        """FITS cards of the WCS of the exposure's arrays (``.wcs``)."""
        return self.wcs.to_header()

    @property
    def xy0(self) -> Point2D:
        return Point2D(self._x0, self._y0)

    def __str__(self) -> str:
        sky, pix = self.getSkyOrigin(), self.getPixelOrigin()
        scale = self.getPixelScale().asArcseconds()
        return (f"SkyWcs ({'/'.join(self.wcs.wcs.ctype)}): Sky Origin: {sky} "
                f"Pixel Origin: ({pix.getX():g}, {pix.getY():g}) Pixel Scale: {scale:.6g} arcsec/pixel")

    __repr__ = __str__


__all__ = ["SkyWcs"]
