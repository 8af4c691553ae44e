"""PNG previews of a difference image: downsampled, stretched, mask planes tinted, DiaSources ringed.

No imaging library is needed: numpy does the downsampling, stretch and drawing, and a small PNG
encoder (zlib + CRC chunks) writes the file. North is wherever the WCS puts it; rows are flipped
so that pixel y grows upwards, as image displays (and the pipelines' displays) show a CCD.
"""
from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from diavo.shared.masks import MASK_COLORS, MASK_PLANES

STRETCHES = ("asinh", "zscale")
DEFAULT_SIZE = 1024
MIN_SIZE, MAX_SIZE = 16, 4096
#: Opacity of a mask plane's tint.
MASK_ALPHA = 0.45
#: Softening of the asinh stretch, in units of the background noise (linear within +-2 sigma).
ASINH_SOFTENING = 2.0
#: Ring radius around each DiaSource, in preview pixels.
SOURCE_RING_PX = 6.0
#: Ring colours: sources brighter and fainter than the template.
SOURCE_RGB = {"positive": (255, 64, 64), "negative": (64, 160, 255)}
#: RGB of the colour names shared.masks uses.
COLOR_RGB = {
    "red": (255, 0, 0), "green": (0, 200, 0), "blue": (40, 80, 255), "cyan": (0, 230, 230),
    "magenta": (230, 0, 230), "yellow": (255, 230, 0), "orange": (255, 150, 0),
}
_GREY = (160, 160, 160)
#: Pixels the stretch statistics (median, MAD, percentiles, zscale) are computed from.
STATS_SAMPLE = 250_000
#: zlib level: previews are mostly noise, which compresses little at any level, so favour speed.
PNG_LEVEL = 1


def plane_rgb(name: str) -> tuple[int, int, int]:
    return COLOR_RGB.get(MASK_COLORS.get(name, ""), _GREY)


# ------------------------------------------------------------------------------- PNG writer
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """8-bit greyscale (H, W) or RGB (H, W, 3) array -> PNG bytes (every row 'Sub'-filtered)."""
    px = np.ascontiguousarray(pixels, dtype=np.uint8)
    if px.ndim == 2:
        color_type, channels = 0, 1
        px = px[:, :, None]
    elif px.ndim == 3 and px.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"cannot write an array of shape {pixels.shape} as PNG")
    h, w = px.shape[:2]
    rows = px.reshape(h, w * channels)
    filtered = np.empty((h, 1 + w * channels), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the same channel of the pixel before
    filtered[:, 1:1 + channels] = rows[:, :channels]
    filtered[:, 1 + channels:] = rows[:, channels:] - rows[:, :-channels]  # uint8 wraps mod 256
    header = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)) + _chunk(b"IEND", b""))


# --------------------------------------------------------------------------- image handling
def factor_for(width: int, height: int, size: int) -> int:
    """Integer block size that brings the longer side down to at most ``size`` pixels."""
    return max(1, math.ceil(max(width, height) / int(size)))


def _reduce_blocks(a: np.ndarray, factor: int, op) -> np.ndarray:
    """``op``-reduce factor x factor blocks of ``a`` (sides multiples of factor) by adding up
    strided slices: far faster than a ufunc reduction over a short inner axis."""
    cols = a[:, 0::factor].copy()
    for k in range(1, factor):
        op(cols, a[:, k::factor], out=cols)
    rows = cols[0::factor].copy()
    for k in range(1, factor):
        op(rows, cols[k::factor], out=rows)
    return rows


def downsample(image: np.ndarray, mask: np.ndarray | None, factor: int):
    """Block means of the image (ignoring non-finite pixels) and block ORs of the mask."""
    h, w = image.shape
    hb, wb = -(-h // factor), -(-w // factor)
    if factor == 1:
        small = np.asarray(image, dtype=np.float32)
        return np.where(np.isfinite(small), small, np.nan).astype(np.float32), (
            None if mask is None else np.asarray(mask, dtype=np.int32))
    # One copy pads to whole blocks and converts to native float32 (FITS data is big-endian).
    img = np.zeros((hb * factor, wb * factor), dtype=np.float32)
    img[:h, :w] = image
    ok = np.isfinite(img)
    if ok.all():  # block areas, smaller along the padded far edges
        rows = np.minimum(factor, h - np.arange(hb) * factor)
        cols = np.minimum(factor, w - np.arange(wb) * factor)
        count = np.outer(rows, cols).astype(np.float32)
    else:
        img[~ok] = 0.0
        inside = np.zeros(img.shape, dtype=np.float32)
        inside[:h, :w] = ok[:h, :w]
        count = _reduce_blocks(inside, factor, np.add)
    total = _reduce_blocks(img, factor, np.add)
    with np.errstate(invalid="ignore", divide="ignore"):
        small = (total / count).astype(np.float32)
    small_mask = None
    if mask is not None:
        m = np.zeros((hb * factor, wb * factor), dtype=np.int32)
        m[:h, :w] = mask
        small_mask = _reduce_blocks(m, factor, np.bitwise_or)
    return small, small_mask


def stretch(image: np.ndarray, kind: str) -> np.ndarray:
    """Grey levels 0..1: ``zscale`` (IRAF's linear limits) or ``asinh`` about the background
    (median, noise from the MAD), soft within +-2 sigma, up to the 99.95th percentile."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.float32)
    finite = finite[::max(1, finite.size // STATS_SAMPLE)]  # statistics from a regular subsample
    if kind == "zscale":
        from astropy.visualization import ZScaleInterval

        lo, hi = (float(v) for v in ZScaleInterval().get_limits(finite))
        if hi <= lo:
            hi = lo + 1.0
        out = (image - lo) / (hi - lo)
    elif kind == "asinh":
        med = float(np.median(finite))
        sigma = 1.4826 * float(np.median(np.abs(finite - med))) or float(np.std(finite)) or 1.0
        z = (image - med) / sigma
        top = max(20.0, float(np.percentile((finite - med) / sigma, 99.95)))
        lo, hi = math.asinh(-4.0 / ASINH_SOFTENING), math.asinh(top / ASINH_SOFTENING)
        out = (np.arcsinh(z / ASINH_SOFTENING) - lo) / (hi - lo)
    else:
        raise ValueError(f"unknown stretch {kind!r}; use one of {', '.join(STRETCHES)}")
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


def tint_masks(rgb: np.ndarray, mask: np.ndarray, planes: dict[str, int], names) -> None:
    """Blend each named plane's colour over the pixels where its bit is set (bit order)."""
    for name in sorted(names, key=lambda n: planes.get(n, 99)):
        bit = planes.get(name)
        if bit is None:
            continue
        hit = (mask & (1 << bit)) != 0
        if hit.any():
            colour = np.array(plane_rgb(name), dtype=np.float32)
            rgb[hit] = (1.0 - MASK_ALPHA) * rgb[hit] + MASK_ALPHA * colour


def draw_rings(rgb: np.ndarray, xs, ys, colour, radius: float = SOURCE_RING_PX) -> None:
    """One-pixel rings of ``radius`` around (xs, ys) (array column/row positions)."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if xs.size == 0:
        return
    r = int(math.ceil(radius)) + 1
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    ring = np.abs(np.hypot(dx, dy) - radius) < 0.6
    ox, oy = dx[ring], dy[ring]
    cx = np.rint(xs).astype(np.int64)[:, None] + ox[None, :]
    cy = np.rint(ys).astype(np.int64)[:, None] + oy[None, :]
    h, w = rgb.shape[:2]
    ok = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    rgb[cy[ok], cx[ok]] = colour


def render_png(image: np.ndarray, mask: np.ndarray | None = None, *, kind: str = "asinh",
               mask_names=(), planes: dict[str, int] | None = None, sources=None,
               size: int = DEFAULT_SIZE) -> bytes:
    """The preview of one image: ``image``/``mask`` are full-resolution parent-pixel arrays,
    ``sources`` a SourceList (x, y, flux in parent pixels / nJy) or None."""
    h, w = image.shape
    f = factor_for(w, h, size)
    small, small_mask = downsample(image, mask if mask_names else None, f)
    grey = stretch(small, kind)
    sh = small.shape[0]
    if not mask_names and sources is None:
        return encode_png(np.flipud(np.rint(grey * 255.0).astype(np.uint8)))
    rgb = np.repeat((grey * 255.0)[:, :, None], 3, axis=2)
    if mask_names and small_mask is not None:
        tint_masks(rgb, small_mask, planes or MASK_PLANES, mask_names)
    rgb = np.flipud(rgb)
    out = np.rint(np.clip(rgb, 0, 255)).astype(np.uint8)
    if sources is not None and len(sources):
        # Parent pixel (x, y) is the centre of block ((x + 0.5) / f - 0.5); rows are flipped.
        px = (np.asarray(sources.x) + 0.5) / f - 0.5
        py = sh - 1 - ((np.asarray(sources.y) + 0.5) / f - 0.5)
        flux = np.asarray(sources.flux)
        for sign, colour in (("positive", flux >= 0), ("negative", flux < 0)):
            draw_rings(out, px[colour], py[colour], SOURCE_RGB[sign])
    return encode_png(out)
