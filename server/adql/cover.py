"""The HEALPix cover of a constant shape, and the cap that encloses it: what the planner puts
on a spatial predicate so storages can skip rows, row groups and whole partitions.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from diavo.shared.healpix import cone_cells

from . import spherical as sph
from .geometry import polygon_of

HEALPIX_MAX_DEPTH = 29


@lru_cache(maxsize=1024)
def enclosing_cap(kind: str, params: tuple) -> tuple[tuple[float, float, float], float] | None:
    """A cap (centre unit vector, radius in degrees) holding the whole constant shape, or None.

    kind "point": (ra, dec); "circle": (ra, dec, r); "polygon": flat vertices. A polygon's cap
    is centred on its area centroid with the largest vertex distance as radius; it is returned
    only when that radius is below 90 degrees: a cap that small is convex, so it holds every
    edge and therefore the smaller region they bound, which is the polygon. Invalid shapes give
    None (their exact test is NULL anyway, so the caller must not add a filter).
    """
    params = tuple(float(x) for x in params)
    if not all(math.isfinite(x) for x in params):
        return None
    if kind in ("point", "circle"):
        ra, dec = params[0], params[1]
        r = params[2] if kind == "circle" else 0.0
        if abs(dec) > 90 or r < 0:
            return None
        x, y, z = (float(c) for c in sph.radec_to_xyz(ra, dec))
        return (x, y, z), min(r, 180.0)
    if kind == "polygon":
        p = polygon_of(params)
        if p is None:
            return None
        r = float(np.max(sph.angle_between(p.v, p.centre[None]))) * sph.R2D
        if r >= 90.0:
            return None
        cx, cy, cz = (float(c) for c in p.centre)
        return (cx, cy, cz), r
    return None


# ------------------------------------------------------------------------------------------
# HEALPix cover


def _cell_size_deg(depth: int) -> float:
    return math.degrees(math.sqrt(4 * math.pi / (12 * 4 ** depth)))


def _coarse_depth(size_deg: float, depth: int) -> int:
    """About six cells across the shape; never deeper than the stored depth."""
    d = int(math.floor(math.log2(_cell_size_deg(0) * 6 / max(size_deg, 1e-9))))
    return max(0, min(depth, d))


def healpix_ranges(kind: str, params, depth: int = 16, max_ranges: int = 64
                   ) -> list[tuple[int, int]]:
    """Inclusive ranges of nested HEALPix indices at ``depth`` whose union covers the shape.

    kind "circle": params (ra, dec, r); kind "polygon": flat vertex list. The cover is a
    superset: cdshealpix's coverage at a coarser depth, widened (radius padded by 1e-7 deg, the
    boundary cells of a polygon grown by their neighbours), so that rounding in either library
    cannot drop a point. When more than ``max_ranges`` ranges remain the smallest gaps are
    filled, which only ever grows the cover.
    """
    full = [(0, 12 * 4 ** depth - 1)]
    params = tuple(float(x) for x in params)
    if kind == "circle":
        ra, dec, r = params
        if not (math.isfinite(ra) and math.isfinite(dec) and math.isfinite(r)) or r < 0 \
                or abs(dec) > 90:
            raise ValueError(f"bad circle {params}")
        if r >= 90:
            return full
        d = _coarse_depth(2 * r, depth)
        pad = 1e-7 + r * 1e-9
        ipix, dd = cone_cells(ra % 360, dec, r + pad, d)
        cells = [(ipix.astype(np.int64), dd.astype(np.int64))]
    elif kind == "polygon":
        import astropy.units as u
        from astropy.coordinates import Latitude, Longitude
        from cdshealpix import nested

        p = polygon_of(params)
        if p is None:
            raise ValueError("bad polygon")
        size = 2 * float(np.max(sph.angle_between(p.v, p.centre[None]))) * sph.R2D
        if size >= 90 or not p.hemisphere:
            return full
        # search two levels finer than for a circle: the safety ring of neighbours around
        # the boundary cells then costs little area
        d = min(depth, _coarse_depth(size, depth) + 2)
        ipix, dd, fully = nested.polygon_search(Longitude(p.ra * u.deg), Latitude(p.dec * u.deg),
                                                d, flat=True)
        ipix = ipix.astype(np.int64)
        vert = nested.lonlat_to_healpix(Longitude(p.ra * u.deg), Latitude(p.dec * u.deg), d)
        edge = np.concatenate([ipix[~fully.astype(bool)], vert.astype(np.int64)])
        if edge.size:
            nb = nested.neighbours(edge.astype(np.uint64), d).astype(np.int64).ravel()
            ipix = np.concatenate([ipix, nb[nb >= 0]])
        ipix = np.unique(ipix)
        cells = [(ipix, np.full(ipix.shape, d, dtype=np.int64))]
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    ipix, dd = cells[0]
    shift = 2 * (depth - dd)
    if np.any(shift < 0):                       # cells deeper than requested: coarsen
        ipix = np.where(shift < 0, ipix >> np.maximum(-shift, 0), ipix)
        shift = np.maximum(shift, 0)
    lo = ipix << shift
    hi = ((ipix + 1) << shift) - 1
    return merge_ranges(lo, hi, max_ranges)


def merge_ranges(lo, hi, max_ranges: int) -> list[tuple[int, int]]:
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    if lo.size == 0:
        return []
    o = np.argsort(lo, kind="stable")
    lo, hi = lo[o], np.maximum.accumulate(hi[o])
    start = np.concatenate([[True], lo[1:] > hi[:-1] + 1])
    idx = np.flatnonzero(start)
    lo = lo[idx]
    hi = np.concatenate([hi[idx[1:] - 1], hi[-1:]])
    if len(lo) > max_ranges > 0:
        gaps = lo[1:] - hi[:-1]
        keep = np.sort(np.argsort(gaps, kind="stable")[len(lo) - max_ranges:])  # largest gaps
        lo = np.concatenate([lo[:1], lo[keep + 1]])
        hi = np.concatenate([hi[keep], hi[-1:]])
    return [(int(a), int(b)) for a, b in zip(lo, hi, strict=False)]


def healpix_filter_sql(ranges, column: str = "_healpix") -> str:
    """A WHERE fragment for the ranges; DuckDB pushes the OR of BETWEENs into its zone maps."""
    if not ranges:
        return "FALSE"
    return "(" + " OR ".join(f"{column} BETWEEN {a} AND {b}" for a, b in ranges) + ")"
