"""Deterministic, on-demand pixels of a synthetic difference image.

Nothing is stored but the ImageSpec and the image's DiaSources, so the pixels must come out the
same every time, and a cut-out must equal the same slice of the whole image bit for bit (a SODA
cut-out and a full download must never disagree). Two rules guarantee that:

* Random numbers come from a fixed grid of TILE x TILE tiles aligned at pixel (0, 0); each tile
  has its own generator seeded with (spec.seed, tile_y, tile_x) and is always generated whole,
  then sliced. A tile's cosmic rays are drawn from its own generator and stay inside it.
* Each source is drawn on a stamp of fixed extent (|dx|, |dy| <= R, R fixed per image) that is
  always evaluated whole, then sliced; sources are added in id order. So the set and order of
  floating-point terms reaching a pixel never depend on the requested region.

Every other step is element-wise on values that depend only on the pixel's parent position.

Model (all in nJy): a background variance var_level * (1 + var_grad_x*u + var_grad_y*v), plus
SOURCE_VAR_GAIN * |model| so the variance rises at sources; image = model + sqrt(variance) * N(0, 1);
sources are PSF-shaped blobs of total flux ``flux`` (negative when fainter than the template).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diavo.shared.masks import MASK_PLANES

from .spec import ImageSpec

TILE = 256
#: Pixels within this distance of the CCD border are EDGE (the warped template's border).
EDGE_WIDTH = 20
#: Variance added per nJy of source model, nJy (Poisson noise of the sources).
SOURCE_VAR_GAIN = 1.0
#: |model| above which a pixel counts as saturated (then also interpolated), nJy.
SAT_LEVEL = 50_000.0
#: Detection threshold, in sigma of the PSF-matched-filtered image (as the pipelines detect).
DETECTION_SIGMA = 5.0
#: Mean number of cosmic-ray hits per tile (about five per full CCD).
CR_PER_TILE = 0.02
#: Fraction of detectors (by seed) that carry one bad column.
BAD_COLUMN_FRACTION = 0.3

_BIT = {name: np.int32(1 << bit) for name, bit in MASK_PLANES.items()}


@dataclass(frozen=True, eq=False)
class Planes:
    """The three planes of a (sub-)image; ``(x0, y0)`` is the parent pixel of element [0, 0]."""

    image: np.ndarray  # float32, nJy
    mask: np.ndarray  # int32, bits of shared.masks.MASK_PLANES
    variance: np.ndarray  # float32, nJy^2
    x0: int
    y0: int

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(xmin, ymin, xmax, ymax), half-open, in parent pixels."""
        h, w = self.image.shape
        return (self.x0, self.y0, self.x0 + w, self.y0 + h)


@dataclass(frozen=True, eq=False)
class SourceList:
    """The DiaSources painted into one image: zero-based parent pixel positions, flux in nJy."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    ids: np.ndarray

    def __post_init__(self):
        x = np.atleast_1d(np.asarray(self.x, dtype=np.float64))
        y = np.atleast_1d(np.asarray(self.y, dtype=np.float64))
        flux = np.atleast_1d(np.asarray(self.flux, dtype=np.float64))
        ids = np.atleast_1d(np.asarray(self.ids, dtype=np.int64))
        if not (x.shape == y.shape == flux.shape == ids.shape) or x.ndim != 1:
            raise ValueError("SourceList columns must be 1-d and of equal length")
        # The id order is what makes per-pixel sums reproducible, so enforce it here.
        if ids.size > 1 and np.any(np.diff(ids) < 0):
            order = np.argsort(ids, kind="stable")
            x, y, flux, ids = x[order], y[order], flux[order], ids[order]
        for name, value in (("x", x), ("y", y), ("flux", flux), ("ids", ids)):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.ids.size)

    @classmethod
    def empty(cls) -> SourceList:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))


def stamp_radius(spec: ImageSpec) -> int:
    """Half-size R of every source stamp of this image: ~7 sigma of the widest PSF axis, so the
    truncated wings hold < 1e-10 of the flux; fixed per image, never per region."""
    return max(8, int(math.ceil(7.0 * spec.psf.max_sigma())))


def _background_terms(spec: ImageSpec):
    """Per-column and per-row parts of the background variance, float32; a pixel's background
    variance is col[x] + row[y]. Always computed for the whole CCD so values never depend on
    the region."""
    u = (np.arange(spec.width, dtype=np.float64) - spec.width / 2.0) / spec.width
    v = (np.arange(spec.height, dtype=np.float64) - spec.height / 2.0) / spec.height
    col = (spec.var_level * (1.0 + spec.var_grad_x * u)).astype(np.float32)
    row = (spec.var_level * spec.var_grad_y * v).astype(np.float32)
    return col, row


def _bad_column(spec: ImageSpec):
    """(x, ystart, ystop) of this detector's bad column, or None; derived from the seed only."""
    rng = np.random.Generator(np.random.PCG64([spec.seed, 0xBAD]))
    if rng.random() >= BAD_COLUMN_FRACTION:
        return None
    x = int(rng.integers(EDGE_WIDTH + 10, spec.width - EDGE_WIDTH - 10))
    if rng.random() < 0.5:  # a column broken from some row to the readout edge
        start, stop = 0, int(rng.integers(spec.height // 4, spec.height))
    else:
        start, stop = 0, spec.height
    return x, start, stop


def _tile_noise(spec: ImageSpec, ty: int, tx: int):
    """Whole-tile N(0, 1) noise (float32) and the tile's cosmic rays (tile-local pixels)."""
    h = min(TILE, spec.height - ty * TILE)
    w = min(TILE, spec.width - tx * TILE)
    rng = np.random.Generator(np.random.PCG64([spec.seed, ty, tx]))
    noise = rng.standard_normal((h, w), dtype=np.float32)
    n_cr = int(rng.poisson(CR_PER_TILE))
    crs = []
    for _ in range(n_cr):
        length = int(rng.integers(1, 6))
        sx, sy = [(1, 0), (0, 1), (1, 1), (1, -1)][int(rng.integers(0, 4))]
        # Keep the whole track inside the tile.
        cx = int(rng.integers(0, max(1, w - 5)))
        cy = int(rng.integers(5, max(6, h - 5))) if sy < 0 else int(rng.integers(0, max(1, h - 5)))
        amps = rng.uniform(300.0, 5000.0, size=length).astype(np.float32)
        xs = np.clip(cx + sx * np.arange(length), 0, w - 1)
        ys = np.clip(cy + sy * np.arange(length), 0, h - 1)
        crs.append((ys, xs, amps))
    return noise, crs


def render(
    spec: ImageSpec,
    sources: SourceList,
    region: tuple[int, int, int, int] | None = None,
    *,
    noise: bool = True,
) -> Planes:
    """Draw the image, mask and variance planes of ``spec`` over ``region``.

    ``region`` = (xmin, ymin, xmax, ymax), half-open, zero-based parent pixels, clipped to the
    CCD (ValueError if nothing is left); None means the whole CCD. ``noise=False`` gives the
    noiseless model (no pixel noise, no cosmic rays) with the same mask and variance, for tests.
    """
    W, H = spec.width, spec.height
    if region is None:
        xmin, ymin, xmax, ymax = 0, 0, W, H
    else:
        xmin, ymin, xmax, ymax = (int(v) for v in region)
        xmin, ymin = max(xmin, 0), max(ymin, 0)
        xmax, ymax = min(xmax, W), min(ymax, H)
        if xmax <= xmin or ymax <= ymin:
            raise ValueError(f"region {region} does not overlap the {W}x{H} image")
    nx, ny = xmax - xmin, ymax - ymin

    col, row = _background_terms(spec)
    model = np.zeros((ny, nx), dtype=np.float32)
    mask = np.zeros((ny, nx), dtype=np.int32)

    # -- sources: fixed-extent stamps, id order ----------------------------------------------
    R = stamp_radius(spec)
    offs = np.arange(-R, R + 1, dtype=np.float64)
    touched = []  # (region slice, model slice) of every stamp that lands in the region
    ok = np.isfinite(sources.x) & np.isfinite(sources.y) & np.isfinite(sources.flux)
    cxs = np.floor(sources.x + 0.5)
    cys = np.floor(sources.y + 0.5)
    ok &= (cxs + R >= xmin) & (cxs - R < xmax) & (cys + R >= ymin) & (cys - R < ymax)
    det_bit = _BIT["DETECTED"]
    neg_bit = _BIT["DETECTED_NEGATIVE"]
    for i in np.flatnonzero(ok):
        x, y, flux = float(sources.x[i]), float(sources.y[i]), float(sources.flux[i])
        cx, cy = int(cxs[i]), int(cys[i])
        ixx, iyy, ixy = spec.psf.moments(x, y)
        dx = (cx + offs)[None, :] - x
        dy = (cy + offs)[:, None] - y
        stamp = (flux * spec.psf.stamp_value(dx, dy, ixx, iyy, ixy)).astype(np.float32)
        # Overlap of the stamp with the region, in both frames.
        ax0, ax1 = max(cx - R, xmin), min(cx + R + 1, xmax)
        ay0, ay1 = max(cy - R, ymin), min(cy + R + 1, ymax)
        reg = (slice(ay0 - ymin, ay1 - ymin), slice(ax0 - xmin, ax1 - xmin))
        sub = (slice(ay0 - (cy - R), ay1 - (cy - R)), slice(ax0 - (cx - R), ax1 - (cx - R)))
        model[reg] += stamp[sub]
        touched.append(reg)

        # Detection footprint: the source's PSF-filtered signal (a Gaussian with doubled
        # moments) against DETECTION_SIGMA times the filtered noise sigma(pixel)/sqrt(4 pi sqrt(det)).
        det = ixx * iyy - ixy * ixy
        # Evaluated whole then sliced, like the model stamp, so no value depends on the region.
        filt = (flux * spec.psf.stamp_value(dx, dy, 2 * ixx, 2 * iyy, 2 * ixy))[sub]
        bg = (col[ax0:ax1][None, :] + row[ay0:ay1][:, None]).astype(np.float64)
        hit = filt * filt >= DETECTION_SIGMA**2 * bg / (4.0 * np.pi * math.sqrt(det))
        mask[reg] |= np.where(hit, det_bit if flux > 0 else neg_bit, np.int32(0)).astype(np.int32)

    # Saturated cores, once the model is complete (OR is idempotent over overlapping stamps).
    sat = _BIT["SAT"] | _BIT["INTRP"]
    for reg in touched:
        mask[reg] |= np.where(np.abs(model[reg]) >= SAT_LEVEL, sat, np.int32(0)).astype(np.int32)

    # -- static defects -----------------------------------------------------------------------
    edge = _BIT["EDGE"]
    e = EDGE_WIDTH
    mask[: max(0, min(ny, e - ymin)), :] |= edge
    mask[max(0, H - e - ymin):, :] |= edge
    mask[:, : max(0, min(nx, e - xmin))] |= edge
    mask[:, max(0, W - e - xmin):] |= edge
    bad = _bad_column(spec)
    if bad is not None:
        bx, bstart, bstop = bad
        if xmin <= bx < xmax:
            ys0, ys1 = max(bstart, ymin), min(bstop, ymax)
            if ys1 > ys0:
                mask[ys0 - ymin: ys1 - ymin, bx - xmin] |= _BIT["BAD"]

    # -- variance and noise, tile by tile (cache-sized, and the tiles are the noise grid) ------
    image = np.empty((ny, nx), dtype=np.float32)
    variance = np.empty((ny, nx), dtype=np.float32)
    gain = np.float32(SOURCE_VAR_GAIN)
    cr_bit = _BIT["CR"]
    for ty in range(ymin // TILE, (ymax - 1) // TILE + 1):
        ty0 = ty * TILE
        oy0, oy1 = max(ty0, ymin), min(ty0 + TILE, ymax)
        for tx in range(xmin // TILE, (xmax - 1) // TILE + 1):
            tx0 = tx * TILE
            ox0, ox1 = max(tx0, xmin), min(tx0 + TILE, xmax)
            reg = (slice(oy0 - ymin, oy1 - ymin), slice(ox0 - xmin, ox1 - xmin))
            m = model[reg]
            var = variance[reg]
            np.add(col[ox0:ox1][None, :], row[oy0:oy1][:, None], out=var)
            var += gain * np.abs(m)
            img = image[reg]
            if not noise:
                img[...] = m
                continue
            tile_noise, crs = _tile_noise(spec, ty, tx)
            np.sqrt(var, out=img)
            img *= tile_noise[oy0 - ty0: oy1 - ty0, ox0 - tx0: ox1 - tx0]
            img += m
            for ys, xs, amps in crs:
                py, px = ys + ty0, xs + tx0
                inside = (py >= oy0) & (py < oy1) & (px >= ox0) & (px < ox1)
                if inside.any():
                    ry, rx = py[inside] - ymin, px[inside] - xmin
                    image[ry, rx] += amps[inside]
                    mask[ry, rx] |= cr_bit
    return Planes(image=image, mask=mask, variance=variance, x0=xmin, y0=ymin)
