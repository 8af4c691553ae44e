"""Cut-out regions: SODA's sky shapes (and a pixel box) turned into the pixel box of one image.

A gnomonic projection maps great circles to straight lines, and an image's pixel frame is an
affine map of its gnomonic plane about the boresight. So a POLYGON (great-circle edges) projects
to an exact polygon in pixels; a CIRCLE and the constant-latitude sides of a RANGE are sampled
densely enough that the sampled outline is within ``SAMPLE_TOL_RAD`` of the true one. The cut-out
box is the bounding box of the region clipped to the CCD, widened to whole pixels, so the
cut-out always covers the part of the region on the image.

A shape reaching towards the image's horizon (more than ~84 deg from its boresight) cannot be
projected safely; it takes a coarse but safe route instead: the CCD is sampled on a grid, each
grid point is tested against the region on the sphere, and the box of the points inside is
widened by one grid step.

Values are parsed the DALI way (numbers separated by blanks, degrees, ICRS); every malformed
value raises :class:`RegionError` with a message meant for the user.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

#: Largest error of a sampled outline, in radians (0.01 arcsec, 1/20 of a pixel).
SAMPLE_TOL_RAD = math.radians(0.01 / 3600.0)
#: Most samples on one outline (a circle of radius ~45 deg needs ~9000).
MAX_SAMPLES = 20_000
#: Most vertices a POLYGON may have.
MAX_POLYGON_VERTICES = 1000
#: Points whose cosine of distance from the boresight is below this are "near the horizon".
NEAR_COS = 0.1
#: Grid step (pixels) of the fallback for shapes reaching the image's horizon.
GRID_STEP = 16
#: Step (radians) between samples along a constant-latitude side of a RANGE (20 arcsec).
RANGE_STEP_RAD = math.radians(20.0 / 3600.0)

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INF = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf,
        "infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}


class RegionError(ValueError):
    """A region value the user must fix (bad syntax, out-of-range numbers, degenerate shape)."""


# --------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class Circle:
    ra: float
    dec: float
    radius: float  # degrees


@dataclass(frozen=True)
class Polygon:
    ra: tuple[float, ...]
    dec: tuple[float, ...]


@dataclass(frozen=True)
class Range:
    ra1: float
    ra2: float
    dec1: float
    dec2: float


@dataclass(frozen=True)
class PixelBox:
    """Zero-based, inclusive parent-CCD pixel indices (the frame of DiaSource x/y)."""

    xmin: int
    xmax: int
    ymin: int
    ymax: int


Region = Circle | Polygon | Range | PixelBox


# -------------------------------------------------------------------------------- parsing
def _numbers(text: str, what: str, allow_inf: bool = False) -> list[float]:
    out = []
    for token in str(text).split():
        low = token.lower()
        if allow_inf and low in _INF:
            out.append(_INF[low])
        elif _NUMBER.match(token):
            out.append(float(token))
        else:
            raise RegionError(f"{what}: {token[:40]!r} is not a number")
    return out


def _check_ra(values, what: str) -> None:
    for v in values:
        if not 0.0 <= v <= 360.0:
            raise RegionError(f"{what}: longitude {v:g} is outside [0, 360] degrees")


def _check_dec(values, what: str) -> None:
    for v in values:
        if not -90.0 <= v <= 90.0:
            raise RegionError(f"{what}: latitude {v:g} is outside [-90, 90] degrees")


def parse_circle(text: str, what: str = "CIRCLE") -> Circle:
    v = _numbers(text, what)
    if len(v) != 3:
        raise RegionError(f"{what} needs 3 numbers (ra dec radius, degrees), got {len(v)}")
    _check_ra(v[:1], what)
    _check_dec(v[1:2], what)
    if not 0.0 < v[2] <= 180.0:
        raise RegionError(f"{what}: radius {v[2]:g} must be > 0 and <= 180 degrees")
    return Circle(*v)


def parse_polygon(text: str, what: str = "POLYGON") -> Polygon:
    v = _numbers(text, what)
    if len(v) % 2 or len(v) < 6:
        raise RegionError(f"{what} needs at least 3 (ra, dec) pairs, got {len(v)} numbers")
    if len(v) > 2 * MAX_POLYGON_VERTICES:
        raise RegionError(f"{what} has {len(v) // 2} vertices; at most {MAX_POLYGON_VERTICES} are allowed")
    ra, dec = tuple(v[0::2]), tuple(v[1::2])
    _check_ra(ra, what)
    _check_dec(dec, what)
    poly = Polygon(ra, dec)
    _polygon_frame(poly, what)  # validates size and shape
    return poly


def parse_range(text: str, what: str = "POS RANGE") -> Range:
    v = _numbers(text, what, allow_inf=True)
    if len(v) != 4:
        raise RegionError(f"{what} needs 4 numbers (ra1 ra2 dec1 dec2), got {len(v)}")
    ra1, ra2 = (0.0 if x == -math.inf else 360.0 if x == math.inf else x for x in v[:2])
    dec1, dec2 = (-90.0 if x == -math.inf else 90.0 if x == math.inf else x for x in v[2:])
    _check_ra((ra1, ra2), what)
    _check_dec((dec1, dec2), what)
    if ra1 > ra2:
        raise RegionError(f"{what}: longitude interval {ra1:g} {ra2:g} is inverted")
    if dec1 > dec2:
        raise RegionError(f"{what}: latitude interval {dec1:g} {dec2:g} is inverted")
    return Range(ra1, ra2, dec1, dec2)


def parse_pos(text: str) -> Region:
    """SIA/SODA POS: ``CIRCLE ra dec r``, ``RANGE ra1 ra2 dec1 dec2`` or ``POLYGON ra dec ...``."""
    shape, _, rest = str(text).strip().partition(" ")
    kind = shape.upper()
    if kind == "CIRCLE":
        return parse_circle(rest, "POS CIRCLE")
    if kind == "RANGE":
        return parse_range(rest, "POS RANGE")
    if kind == "POLYGON":
        return parse_polygon(rest, "POS POLYGON")
    raise RegionError(f"POS must start with CIRCLE, RANGE or POLYGON, not {shape[:20]!r}")


def parse_pixel(text: str) -> PixelBox:
    """``xmin xmax ymin ymax``: zero-based inclusive parent-CCD pixel indices."""
    tokens = str(text).split()
    if len(tokens) != 4 or not all(re.fullmatch(r"[+-]?\d{1,9}", t) for t in tokens):
        raise RegionError("PIXEL needs 4 integers: xmin xmax ymin ymax (zero-based, inclusive)")
    xmin, xmax, ymin, ymax = (int(t) for t in tokens)
    if xmin > xmax or ymin > ymax:
        raise RegionError(f"PIXEL box {xmin} {xmax} {ymin} {ymax} is inverted")
    return PixelBox(xmin, xmax, ymin, ymax)


def parse_interval(text: str, what: str) -> tuple[float, float]:
    """A DALI interval ``lo hi`` (-Inf/+Inf for open ends)."""
    v = _numbers(text, what, allow_inf=True)
    if len(v) != 2:
        raise RegionError(f"{what} needs 2 numbers (lower upper), got {len(v)}")
    if v[0] > v[1]:
        raise RegionError(f"{what} interval {v[0]:g} {v[1]:g} is inverted")
    return v[0], v[1]


# ------------------------------------------------------------------------------ sphere bits
def _unit(ra, dec) -> np.ndarray:
    a, d = np.deg2rad(np.asarray(ra, dtype=float)), np.deg2rad(np.asarray(dec, dtype=float))
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)


def _radec(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ra = np.rad2deg(np.arctan2(v[..., 1], v[..., 0])) % 360.0
    dec = np.rad2deg(np.arcsin(np.clip(v[..., 2], -1.0, 1.0)))
    return ra, dec


def _basis(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing ``c`` to an orthonormal frame."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(c[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, c)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(c, e1)


def _polygon_frame(poly: Polygon, what: str = "POLYGON"):
    """(centre, e1, e2, 2-d vertices) of the polygon in the gnomonic plane about its centre.

    Requires every vertex within 90 deg of the vertex centroid (the polygon fits in a hemisphere)
    and a non-zero area, which also rules out antipodal or repeated consecutive vertices."""
    v = _unit(poly.ra, poly.dec)
    centre = v.sum(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-9:
        raise RegionError(f"{what} is larger than a hemisphere")
    centre /= norm
    cosc = v @ centre
    if np.any(cosc <= 1e-6):
        raise RegionError(f"{what} is larger than a hemisphere")
    e1, e2 = _basis(centre)
    xy = np.stack([(v @ e1) / cosc, (v @ e2) / cosc], axis=-1)
    x, y = xy[:, 0], xy[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    scale = np.max(np.hypot(x - x.mean(), y - y.mean())) + 1e-300
    if area < 1e-12 * scale * scale or area < 1e-20:
        raise RegionError(f"{what} has no area (collinear or repeated vertices)")
    return centre, e1, e2, xy


def _inside_polygon_2d(px: np.ndarray, py: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    inside = np.zeros(px.shape, dtype=bool)
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=False):
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xcross = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (px < xcross)
    return inside


def contains(region: Region, ra, dec) -> np.ndarray:
    """Whether sky positions lie in a sky region (boundary included)."""
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    if isinstance(region, Circle):
        c = _unit(region.ra, region.dec)
        return _unit(ra, dec) @ c >= math.cos(math.radians(region.radius)) - 1e-15
    if isinstance(region, Range):
        return (ra >= region.ra1) & (ra <= region.ra2) & (dec >= region.dec1) & (dec <= region.dec2)
    if isinstance(region, Polygon):
        centre, e1, e2, xy = _polygon_frame(region)
        p = _unit(ra, dec)
        cosc = p @ centre
        with np.errstate(divide="ignore", invalid="ignore"):
            px, py = (p @ e1) / cosc, (p @ e2) / cosc
        return (cosc > 0) & _inside_polygon_2d(px, py, xy)
    raise TypeError(f"not a sky region: {region!r}")


# ------------------------------------------------------------------------------ outlines
def _circle_outline(c: Circle) -> np.ndarray:
    """Unit vectors on the circle, dense enough for SAMPLE_TOL_RAD."""
    r = math.radians(c.radius)
    n = int(min(MAX_SAMPLES, max(64, math.ceil(math.pi * math.sqrt(r / (2 * SAMPLE_TOL_RAD))))))
    centre = _unit(c.ra, c.dec)
    e1, e2 = _basis(centre)
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return (math.cos(r) * centre[None, :]
            + math.sin(r) * (np.cos(t)[:, None] * e1[None, :] + np.sin(t)[:, None] * e2[None, :]))


def _range_outline(ra1: float, ra2: float, dec1: float, dec2: float) -> np.ndarray:
    """Meridian sides are great circles (straight once projected): their end points suffice.
    The parallels are sampled every RANGE_STEP_RAD of arc."""
    span = math.radians(ra2 - ra1) * max(math.cos(math.radians(dec1)), math.cos(math.radians(dec2)))
    n = int(min(MAX_SAMPLES, max(2, math.ceil(span / RANGE_STEP_RAD) + 1)))
    ras = np.linspace(ra1, ra2, n)
    ra = np.concatenate([ras, ras[::-1]])
    dec = np.concatenate([np.full(n, dec1), np.full(n, dec2)])
    return _unit(ra, dec)


# ------------------------------------------------------------------------------ clipping
def _clip(poly: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """One Sutherland-Hodgman pass against the line ``coord[axis] = bound``."""
    if len(poly) == 0:
        return poly
    coord = poly[:, axis]
    inside = coord <= bound if keep_below else coord >= bound
    nxt = np.roll(poly, -1, axis=0)
    nxt_inside = np.roll(inside, -1)
    cross = inside != nxt_inside
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (bound - coord) / (nxt[:, axis] - coord)
        hit = poly + t[:, None] * (nxt - poly)
    hit[:, axis] = bound
    # Per edge: the start point if inside, then the crossing point if the edge crosses.
    cand = np.stack([poly, hit], axis=1).reshape(-1, 2)
    keep = np.stack([inside, cross], axis=1).reshape(-1)
    return cand[keep]


def _clip_box(poly: np.ndarray, width: int, height: int) -> tuple[float, float, float, float] | None:
    """Bounding box of the polygon clipped to the CCD's pixel area, or None if they are disjoint."""
    lo_x, hi_x, lo_y, hi_y = -0.5, width - 0.5, -0.5, height - 0.5
    p = poly
    for axis, bound, below in ((0, lo_x, False), (0, hi_x, True), (1, lo_y, False), (1, hi_y, True)):
        p = _clip(p, axis, bound, below)
    if len(p) == 0:
        return None
    return float(p[:, 0].min()), float(p[:, 0].max()), float(p[:, 1].min()), float(p[:, 1].max())


def _to_pixels(spec, vectors: np.ndarray) -> np.ndarray | None:
    """Pixel positions of sky unit vectors, or None if any lies near the image's horizon."""
    bore = _unit(spec.boresight_ra, spec.boresight_dec)
    if np.any(vectors @ bore <= NEAR_COS):
        return None
    ra, dec = _radec(vectors)
    x, y = spec.sky_to_pixel(ra, dec)
    return np.stack([x, y], axis=-1)


def _whole_pixels(box, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Continuous (xmin, xmax, ymin, ymax) -> half-open pixel box (x0, y0, x1, y1), clipped."""
    xmin, xmax, ymin, ymax = box
    x0 = max(0, math.floor(xmin + 0.5))
    x1 = min(width, math.floor(xmax + 0.5) + 1)
    y0 = max(0, math.floor(ymin + 0.5))
    y1 = min(height, math.floor(ymax + 0.5) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


# -------------------------------------------------------------------------- the pixel box
def pixel_box(region: Region, spec) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``, half-open zero-based parent pixels, covering the part of
    ``region`` on the image described by ``spec``; None when they do not overlap."""
    W, H = int(spec.width), int(spec.height)
    if isinstance(region, PixelBox):
        return _whole_pixels((region.xmin, region.xmax, region.ymin, region.ymax), W, H)
    if isinstance(region, Range):
        return _range_box(region, spec)
    if isinstance(region, Circle):
        # A cap of radius >= 90 deg is not the inside of its projected outline: go the safe way.
        if region.radius >= 90.0:
            return _grid_box(region, spec)
        outline = _circle_outline(region)
    else:
        outline = _unit(region.ra, region.dec)
    pix = _to_pixels(spec, outline)
    if pix is None:
        return _grid_box(region, spec, outline)
    box = _clip_box(pix, W, H)
    return None if box is None else _whole_pixels(box, W, H)


def _ccd_extent(spec):
    """RA (relative to the CCD centre, wrapped to +-180) and Dec limits of the CCD, padded by
    2 arcmin; None when the CCD is too close to a pole for an RA interval to describe it."""
    W, H = spec.width, spec.height
    t = np.linspace(0.0, 1.0, 65)
    along_x, along_y = t * W - 0.5, t * H - 0.5
    left, right = np.full_like(t, -0.5), np.full_like(t, W - 0.5)
    bottom, top = np.full_like(t, -0.5), np.full_like(t, H - 0.5)
    xs = np.concatenate([left, along_x, right, along_x])
    ys = np.concatenate([along_y, bottom, along_y, top])
    ra, dec = spec.pixel_to_sky(xs, ys)
    ra_c, dec_c = spec.pixel_to_sky((W - 1) / 2, (H - 1) / 2)
    pad = 2.0 / 60.0
    dlo, dhi = float(dec.min()) - pad, float(dec.max()) + pad
    if dhi >= 89.0 or dlo <= -89.0:
        return None
    rel = (ra - ra_c + 180.0) % 360.0 - 180.0
    cosd = math.cos(math.radians(max(abs(dlo), abs(dhi))))
    return float(ra_c), float(rel.min()) - pad / cosd, float(rel.max()) + pad / cosd, dlo, dhi


def _range_box(region: Range, spec):
    W, H = int(spec.width), int(spec.height)
    ext = _ccd_extent(spec)
    if ext is None:
        return _grid_box(region, spec)
    ra_c, rlo, rhi, dlo, dhi = ext
    dec1, dec2 = max(region.dec1, dlo), min(region.dec2, dhi)
    if dec1 > dec2:
        return None
    box = None
    lo, hi = ra_c + rlo, ra_c + rhi  # the CCD's RA interval, unwrapped around its centre
    for shift in (-360.0, 0.0, 360.0):
        a, b = max(region.ra1 + shift, lo), min(region.ra2 + shift, hi)
        if a > b:
            continue
        outline = _range_outline(a, b, dec1, dec2)
        pix = _to_pixels(spec, outline)
        if pix is None:
            return _grid_box(region, spec, outline)
        box = _union(box, _clip_box(pix, W, H))
    return None if box is None else _whole_pixels(box, W, H)


def _grid_box(region: Region, spec, outline: np.ndarray | None = None):
    """Safe fallback for shapes reaching the image's horizon: the box of CCD grid points inside
    the region, widened by one grid step, joined with the outline points (vertices, samples)
    that fall on the CCD, so a corner poking into the image is not lost between grid points."""
    W, H = int(spec.width), int(spec.height)
    xs = np.append(np.arange(0, W, GRID_STEP, dtype=float), W - 1.0)
    ys = np.append(np.arange(0, H, GRID_STEP, dtype=float), H - 1.0)
    gx, gy = np.meshgrid(xs, ys)
    ra, dec = spec.pixel_to_sky(gx.ravel(), gy.ravel())
    inside = contains(region, ra, dec)
    box = None
    if inside.any():
        px, py = gx.ravel()[inside], gy.ravel()[inside]
        box = (px.min() - GRID_STEP, px.max() + GRID_STEP, py.min() - GRID_STEP, py.max() + GRID_STEP)
    if outline is not None:
        bore = _unit(spec.boresight_ra, spec.boresight_dec)
        near = outline[outline @ bore > NEAR_COS]
        if len(near):
            ora, odec = _radec(near)
            ox, oy = spec.sky_to_pixel(ora, odec)
            on = (ox >= -0.5) & (ox <= W - 0.5) & (oy >= -0.5) & (oy <= H - 0.5)
            if on.any():
                box = _union(box, (ox[on].min(), ox[on].max(), oy[on].min(), oy[on].max()))
    return None if box is None else _whole_pixels(box, W, H)
