"""An exposure's PSF with the pipelines' calls, evaluated from the model in the FITS header.

Positions are parent pixels (zero-based, pixel centres on integers), the frame the model's
coefficients refer to, so a cut-out's PSF is the same function as the full image's.
"""
from __future__ import annotations

import math

from diavo.shared.psf import GaussianPsfModel

from .geom import Box2I, Point2D, _xy
from .planes import Image

#: FWHM / sigma of a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class Quadrupole:
    """Second moments of the PSF (pixels^2), like ``lsst.afw.geom.ellipses.Quadrupole``."""

    def __init__(self, ixx: float, iyy: float, ixy: float) -> None:
        self.ixx, self.iyy, self.ixy = float(ixx), float(iyy), float(ixy)

    def getIxx(self) -> float:
        return self.ixx

    def getIyy(self) -> float:
        return self.iyy

    def getIxy(self) -> float:
        return self.ixy

    def getDeterminant(self) -> float:
        return self.ixx * self.iyy - self.ixy ** 2

    def getDeterminantRadius(self) -> float:
        """(ixx * iyy - ixy^2)^(1/4): the sigma of a round Gaussian of the same area."""
        return self.getDeterminant() ** 0.25

    def getTraceRadius(self) -> float:
        return math.sqrt((self.ixx + self.iyy) / 2.0)

    @property
    def sigma(self) -> float:
        return self.getDeterminantRadius()

    @property
    def fwhm(self) -> float:
        """FWHM (pixels) of the Gaussian with this determinant radius."""
        return FWHM_PER_SIGMA * self.getDeterminantRadius()

    def __repr__(self) -> str:
        return f"Quadrupole(ixx={self.ixx!r}, iyy={self.iyy!r}, ixy={self.ixy!r})"


class Psf:
    """``exposure.getPsf()``: PSF images and shapes at any parent pixel position."""

    def __init__(self, model: GaussianPsfModel) -> None:
        self.model = model

    @classmethod
    def from_header(cls, header) -> Psf:
        return cls(GaussianPsfModel.from_header(header))

    def getAveragePosition(self) -> Point2D:
        """The CCD centre, where the model's constant terms apply."""
        return Point2D(self.model.width / 2.0, self.model.height / 2.0)

    def _where(self, args) -> tuple[float, float]:
        x, y = self.getAveragePosition() if not args else _xy(args)
        return float(x), float(y)

    def computeImage(self, *position) -> Image:
        """The PSF as it would appear centred at ``position``: sums to 1, placed in parent
        pixels (``getBBox()``), the sub-pixel offset kept in the profile."""
        x, y = self._where(position)
        array, x0, y0 = self.model.kernel(x, y)
        return Image(array, x0, y0)

    def computeKernelImage(self, *position) -> Image:
        """The PSF at ``position``, centred on pixel (0, 0) of its own frame (xy0 = -half)."""
        x, y = self._where(position)
        array, _, _ = self.model.kernel(math.floor(x + 0.5), math.floor(y + 0.5))
        half = array.shape[0] // 2
        return Image(array, -half, -half)

    def computeBBox(self, *position) -> Box2I:
        return self.computeImage(*position).getBBox()

    def computeShape(self, *position) -> Quadrupole:
        x, y = self._where(position)
        return Quadrupole(*self.model.moments(x, y))

    def computePeak(self, *position) -> float:
        return float(self.computeKernelImage(*position).array.max())

    def __repr__(self) -> str:
        return f"Psf({self.model!r})"
