"""A spatially varying elliptical Gaussian PSF, shared by the server (to paint sources) and the
client (to answer ``computeImage`` / ``computeShape`` the way an LSST ``Psf`` does).

The second moments (pixels^2) vary linearly across the CCD::

    ixx(x, y) = ixx0 + ixx1 * u + ixx2 * v,  u = (x - width/2) / width,  v = (y - height/2) / height

with zero-based pixel coordinates whose pixel centres sit on integers. Eight numbers and the CCD
size describe the model completely, so it travels in a FITS header or a catalogue row.

Only numpy is used here: the client must stay thin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PSF_MODEL_NAME = "GAUSS2D-LIN"
_TERMS = ("ixx", "iyy", "ixy")


def moments(values) -> tuple[float, float, float]:
    """A moment's three linear coefficients (centre, per width, per height) as plain floats."""
    a, b, c = values
    return float(a), float(b), float(c)


@dataclass(frozen=True)
class GaussianPsfModel:
    """Elliptical Gaussian PSF with second moments linear in the CCD position."""

    ixx: tuple[float, float, float]
    iyy: tuple[float, float, float]
    ixy: tuple[float, float, float]
    width: int
    height: int

    def __post_init__(self):
        # Plain floats/ints keep equality, hashing and records free of numpy scalars.
        for name in _TERMS:
            value = tuple(float(c) for c in getattr(self, name))
            if len(value) != 3:
                raise ValueError(f"{name} needs 3 coefficients, got {len(value)}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # -- evaluation ---------------------------------------------------------------------------
    def _uv(self, x, y):
        u = (np.asarray(x, dtype=float) - self.width / 2.0) / self.width
        v = (np.asarray(y, dtype=float) - self.height / 2.0) / self.height
        return u, v

    def moments(self, x, y):
        """(ixx, iyy, ixy) in pixels^2 at (x, y); arrays broadcast, scalars give floats."""
        u, v = self._uv(x, y)
        out = []
        for name in _TERMS:
            c0, c1, c2 = getattr(self, name)
            m = c0 + c1 * u + c2 * v
            out.append(float(m) if np.ndim(m) == 0 else m)
        return tuple(out)

    def determinant_radius(self, x, y):
        """(ixx*iyy - ixy^2)^(1/4): the sigma LSST's ``getDeterminantRadius`` reports."""
        ixx, iyy, ixy = self.moments(x, y)
        r = (np.asarray(ixx) * iyy - np.asarray(ixy) ** 2) ** 0.25
        return float(r) if np.ndim(r) == 0 else r

    def max_sigma(self) -> float:
        """Largest sigma along any axis anywhere on the CCD (moments are linear, so the
        extremes sit at the corners); sizes stamps that must never depend on position."""
        xs = np.array([-0.5, self.width - 0.5, -0.5, self.width - 0.5])
        ys = np.array([-0.5, -0.5, self.height - 0.5, self.height - 0.5])
        ixx, iyy, ixy = self.moments(xs, ys)
        tr, det = ixx + iyy, ixx * iyy - ixy**2
        lam = tr / 2 + np.sqrt(np.maximum(tr**2 / 4 - det, 0.0))
        return float(np.sqrt(lam.max()))

    @staticmethod
    def stamp_value(dx, dy, ixx, iyy, ixy):
        """Unit-flux Gaussian density at offsets (dx, dy) from the centre.

        Analytically normalised (1 / (2 pi sqrt(det))), so its sum over well-sampled pixels is
        1 to better than 1e-6 for sigma above ~1 px; no per-stamp renormalisation is needed.
        """
        det = ixx * iyy - ixy * ixy
        dx = np.asarray(dx, dtype=float)
        dy = np.asarray(dy, dtype=float)
        q = (iyy * dx * dx - 2.0 * ixy * dx * dy + ixx * dy * dy) / det
        return np.exp(-0.5 * q) / (2.0 * np.pi * np.sqrt(det))

    def kernel(self, x, y, half: int | None = None):
        """PSF image at (x, y), summing to 1, and the parent pixel of its lower-left corner.

        The central pixel is the one containing (x, y); the sub-pixel offset of the position is
        kept in the profile, as LSST's ``computeImage`` does. Returns ``(array, x0, y0)`` with
        ``array[j, i]`` the value at parent pixel ``(x0 + i, y0 + j)``.
        """
        x, y = float(x), float(y)
        ixx, iyy, ixy = self.moments(x, y)
        if half is None:
            half = int(math.ceil(5.0 * math.sqrt(max(ixx, iyy))))
        half = int(half)
        xc, yc = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
        offs = np.arange(-half, half + 1, dtype=float)
        dx = (xc + offs)[None, :] - x
        dy = (yc + offs)[:, None] - y
        img = self.stamp_value(dx, dy, ixx, iyy, ixy)
        img /= img.sum()
        return img, xc - half, yc - half

    # -- serialisation ------------------------------------------------------------------------
    def to_record(self) -> dict:
        return {f"psf_{name}{i}": getattr(self, name)[i] for name in _TERMS for i in range(3)}

    @classmethod
    def from_record(cls, rec) -> GaussianPsfModel:
        ixx, iyy, ixy = (moments(rec[f"psf_{name}{i}"] for i in range(3)) for name in _TERMS)
        return cls(ixx, iyy, ixy, width=int(rec["width"]), height=int(rec["height"]))

    def header_cards(self) -> list[tuple[str, object, str]]:
        cards: list[tuple[str, object, str]] = [
            ("PSFMODEL", PSF_MODEL_NAME, "Gaussian PSF, moments linear in position")]
        for name in _TERMS:
            for i, what in enumerate(("at CCD centre", "per CCD width", "per CCD height")):
                cards.append((f"PSF{name.upper()}{i}", getattr(self, name)[i], f"[pix2] {name} {what}"))
        cards.append(("PSFWIDTH", self.width, "[pix] CCD width the PSF model refers to"))
        cards.append(("PSFHEIGH", self.height, "[pix] CCD height the PSF model refers to"))
        return cards

    @classmethod
    def from_header(cls, header) -> GaussianPsfModel:
        model = header.get("PSFMODEL", PSF_MODEL_NAME)
        if model != PSF_MODEL_NAME:
            raise ValueError(f"unsupported PSF model {model!r}")
        ixx, iyy, ixy = (moments(header[f"PSF{name.upper()}{i}"] for i in range(3)) for name in _TERMS)
        return cls(ixx, iyy, ixy, width=int(header["PSFWIDTH"]), height=int(header["PSFHEIGH"]))

    # -- generation ---------------------------------------------------------------------------
    @classmethod
    def random(cls, rng: np.random.Generator, width: int, height: int) -> GaussianPsfModel:
        """A plausible Rubin PSF: sigma 1.6-2.3 px, ellipticity of a few per cent (the
        tutorial's ixx 3.36, iyy 3.86, ixy 0.12 has |e| ~ 0.08), gradients of a few per cent."""
        sigma = rng.uniform(1.6, 2.3)
        e1, e2 = np.clip(rng.normal(0.0, 0.04, size=2), -0.12, 0.12)
        # Choose the trace so that the determinant radius equals sigma.
        half_trace = sigma**2 / math.sqrt(1.0 - (e1 * e1 + e2 * e2))
        ixx0, iyy0, ixy0 = half_trace * (1 + e1), half_trace * (1 - e1), half_trace * e2
        gx, gy = rng.uniform(-0.04, 0.04, size=2) * ixx0
        hx, hy = rng.uniform(-0.04, 0.04, size=2) * iyy0
        kx, ky = rng.normal(0.0, 0.01, size=2) * half_trace
        # 12 significant digits: exact through a 20-character FITS value as well as a record.
        def r(*cs):
            return tuple(float(f"{c:.12g}") for c in cs)

        return cls(ixx=r(ixx0, gx, gy), iyy=r(iyy0, hx, hy), ixy=r(ixy0, kx, ky), width=width, height=height)
