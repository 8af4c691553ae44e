"""ADQL geometry on the sphere, engine-independent: validated shapes, CONTAINS/INTERSECTS/AREA,
STC-S and DALI conversion, and the batched footprint test.

Geometry values are tagged tuples: point ``(1, ra, dec)``, circle ``(2, ra, dec, r)``, polygon
``(3, ra1, dec1, ra2, dec2, ...)``; all angles in degrees. Engines that compute geometry in
Python (DuckDB's UDFs, engine.duckdb_functions) call these; the HEALPix cover of a shape is in
cover.py.

Choices: a polygon is the smaller region its boundary encloses, whatever its winding (see
``spherical``); self-intersecting polygons, polygons with antipodal neighbouring vertices and
fewer than three distinct vertices are invalid (NULL). Boundaries are inclusive, with no
tolerance beyond floating point (a few 1e-16 rad) except point equality (1e-10 deg).
Frames other than ICRS (FK5/J2000 accepted as ICRS, UNKNOWNFrame) are refused in STC-S text.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

from . import spherical as sph

POINT, CIRCLE, POLYGON = 1.0, 2.0, 3.0
POINT_EQ_DEG = 1e-10


class Shape:
    """A validated geometry: kind, (ra, dec) of the point/centre/centroid, radius, polygon."""
    __slots__ = ("kind", "ra", "dec", "r", "poly", "_xyz")

    def __init__(self, kind, ra, dec, r=None, poly=None):
        self.kind, self.ra, self.dec, self.r, self.poly = kind, ra, dec, r, poly
        self._xyz = poly.centre if poly is not None else None

    @property
    def xyz(self) -> np.ndarray:
        if self._xyz is None:
            self._xyz = sph.radec_to_xyz(self.ra, self.dec)
        return self._xyz


@lru_cache(maxsize=4096)
def _shape(g: tuple) -> Shape | None:
    """A tagged geometry tuple as a validated Shape, or None."""
    if not g or not all(math.isfinite(x) for x in g):
        return None
    kind = g[0]
    if kind == POINT and len(g) == 3 and abs(g[2]) <= 90:
        return Shape(POINT, g[1] % 360.0, g[2])
    if kind == CIRCLE and len(g) == 4 and abs(g[2]) <= 90 and g[3] >= 0:
        return Shape(CIRCLE, g[1] % 360.0, g[2], min(g[3], 180.0))
    if kind == POLYGON and len(g) >= 7 and len(g) % 2 == 1:
        return _polygon_shape(sph.make_polygon(g[1:]))
    return None


def shape(g) -> Shape | None:
    return None if g is None else _shape(tuple(float(x) for x in g))


def _polygon_shape(p) -> Shape | None:
    return None if p is None else Shape(POLYGON, p.cra, p.cdec, poly=p)


def shapes(rows: list[tuple]) -> list[Shape | None]:
    """Many tagged tuples at once: polygons are validated in batches of equal vertex count."""
    out: list = [None] * len(rows)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(rows):
        if len(g) >= 7 and len(g) % 2 == 1 and g[0] == POLYGON:
            groups.setdefault(len(g), []).append(i)
        else:
            out[i] = _shape(g)
    for _length, idx in groups.items():
        coords = np.array([rows[i][1:] for i in idx], dtype=float).reshape(len(idx), -1, 2)
        polys, valid = sph.polygon_batch(coords)
        for k, i in enumerate(idx):
            # rows with repeated vertices are retried one by one (make_polygon drops repeats)
            out[i] = _polygon_shape(polys[k]) if valid[k] else _shape(rows[i])
    return out


@lru_cache(maxsize=1024)
def polygon_of(flat: tuple):
    return sph.make_polygon(flat)


def contains(a: Shape, b: Shape) -> bool:
    """True if a lies inside b."""
    if b.kind == POINT:
        return (a.kind == POINT or (a.kind == CIRCLE and a.r == 0)) and \
            bool(sph.distance(a.ra, a.dec, b.ra, b.dec) <= POINT_EQ_DEG)
    if a.kind == POINT:
        if b.kind == CIRCLE:
            return bool(sph.in_circle(a.ra, a.dec, b.ra, b.dec, b.r))
        return bool(sph.polygon_contains_xyz(b.poly, a.xyz)[0])
    if a.kind == CIRCLE:
        if b.kind == CIRCLE:
            return sph.distance(a.ra, a.dec, b.ra, b.dec) + a.r <= b.r
        return bool(sph.polygon_contains_xyz(b.poly, a.xyz)[0]) and \
            sph.polygon_edge_distance(b.poly, a.xyz)[0] * sph.R2D >= a.r
    pa_ = a.poly
    if b.kind == CIRCLE:
        if not np.all(sph.in_circle(pa_.ra, pa_.dec, b.ra, b.dec, b.r)):
            return False
        if b.r < 90:                  # a cap smaller than a hemisphere is convex
            return True
        anti = -b.xyz
        return not sph.polygon_contains_xyz(pa_, anti)[0] and \
            sph.polygon_edge_distance(pa_, anti)[0] * sph.R2D >= 180.0 - b.r
    return bool(np.all(sph.polygon_contains_xyz(b.poly, pa_.v))) and \
        not sph.polygons_edges_cross(pa_, b.poly)


def intersects(a: Shape, b: Shape) -> bool:
    if a.kind == POINT and b.kind == POINT:
        return contains(a, b)
    if b.kind == POINT:
        a, b = b, a
    if a.kind == POINT:
        return contains(a, b)
    if a.kind == CIRCLE and b.kind == CIRCLE:
        return sph.distance(a.ra, a.dec, b.ra, b.dec) <= a.r + b.r
    if b.kind == CIRCLE:
        a, b = b, a
    if a.kind == CIRCLE:
        return bool(sph.polygon_contains_xyz(b.poly, a.xyz)[0]) or \
            sph.polygon_edge_distance(b.poly, a.xyz)[0] * sph.R2D <= a.r
    return bool(np.any(sph.polygon_contains_xyz(b.poly, a.poly.v))) or \
        bool(np.any(sph.polygon_contains_xyz(a.poly, b.poly.v))) or \
        sph.polygons_edges_cross(a.poly, b.poly)


def area(s: Shape) -> float:
    if s.kind == POINT:
        return 0.0
    if s.kind == CIRCLE:
        return 4 * math.pi * math.sin(math.radians(s.r) / 2) ** 2 * sph.SR_TO_DEG2
    return s.poly.area * sph.SR_TO_DEG2


# ------------------------------------------------------------------------------------------
# text

_FRAMES = {"ICRS", "FK5", "J2000", "UNKNOWNFRAME"}
_REFPOS = {"BARYCENTER", "GEOCENTER", "HELIOCENTER", "TOPOCENTER", "UNKNOWNREFPOS", "LSR",
           "LSRK", "LSRD", "EMBARYCENTER", "RELOCATABLE"}
_FLAVORS = {"SPHERICAL2", "UNITSPHERE"}
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_ARITY = {"POLYGON": None, "CIRCLE": 3, "POSITION": 2, "POINT": 2, "BOX": 4}


def _region_tuple(text) -> tuple | None:
    """STC-S or DALI text -> tagged tuple, not yet validated as a shape."""
    if not isinstance(text, str):
        return None
    tok = text.replace(",", " ").split()
    if not tok:
        return None
    if _NUMBER.match(tok[0]):
        kind, rest = None, tok
    else:
        kind = tok[0].upper()
        if kind not in _ARITY:
            return None
        rest = tok[1:]
        stage = 0
        while rest and not _NUMBER.match(rest[0]):
            word = rest[0].upper()
            for i, allowed in enumerate((_FRAMES, _REFPOS, _FLAVORS)):
                if i >= stage and word in allowed:
                    stage = i + 1
                    break
            else:
                return None
            rest = rest[1:]
    if "_" in text:             # float() would accept 1_000
        return None
    try:
        nums = [float(t) for t in rest]
    except ValueError:
        return None
    if not all(math.isfinite(x) for x in nums):
        return None
    if kind is None:
        kind = {2: "POINT", 3: "CIRCLE"}.get(len(nums), "POLYGON")
    want = _ARITY[kind]
    if want is not None and len(nums) != want:
        return None
    if kind in ("POINT", "POSITION"):
        return (POINT, *nums)
    if kind == "CIRCLE":
        return (CIRCLE, *nums) if 0 < nums[2] <= 180 else None
    if kind == "BOX":
        ra, dec, w, h = nums
        if not (0 < w < 180 and 0 < h < 180 and abs(dec) <= 90):
            return None
        return (POLYGON, *sph.box_vertices(ra, dec, w, h).tolist())
    return (POLYGON, *nums)


def _tagged(g: tuple | None, s: Shape | None) -> list[float] | None:
    if s is None or g is None:
        return None
    if s.kind == POLYGON:
        return [POLYGON, *s.poly.flat]
    return [g[0], s.ra, *g[2:]]


def parse_region(text) -> list[float] | None:
    """STC-S (POLYGON/CIRCLE/POSITION/POINT/BOX, optional frame, refpos, flavor) or a DALI
    value (2 numbers: point, 3: circle, an even number >= 6: polygon) as a tagged list, with a
    polygon's vertices in DALI (counter-clockwise) order; None when not a valid region."""
    g = _region_tuple(text)
    return None if g is None else _tagged(g, _shape(g))


def parse_regions(texts) -> list[list[float] | None]:
    tuples = [_region_tuple(t) for t in texts]
    return [_tagged(g, s) for g, s in zip(tuples, _tuple_shapes(tuples), strict=True)]


def region_shapes(texts) -> list[Shape | None]:
    """Many STC-S or DALI regions as Shapes at once (None where a text is not a region)."""
    return _tuple_shapes([_region_tuple(t) for t in texts])


def _tuple_shapes(tuples: list[tuple | None]) -> list[Shape | None]:
    ok = [i for i, g in enumerate(tuples) if g is not None]
    out: list = [None] * len(tuples)
    for i, s in zip(ok, shapes([g for g in tuples if g is not None]), strict=True):
        out[i] = s
    return out


def _num(x: float) -> str:
    return repr(float(x))


def dali(g) -> str | None:
    return shape_dali(shape(g))


def shape_dali(s: Shape | None) -> str | None:
    if s is None:
        return None
    if s.kind == POINT:
        return f"{_num(s.ra)} {_num(s.dec)}"
    if s.kind == CIRCLE:
        return f"{_num(s.ra)} {_num(s.dec)} {_num(s.r)}"
    return " ".join(_num(x) for x in s.poly.flat)


def polygons_vs_circle(col: list[Shape], circle: Shape, want_intersects: bool) -> np.ndarray:
    """INTERSECTS(polygon, circle), or CONTAINS(polygon, circle) i.e. polygon inside circle,
    for a column of polygons against one circle, batched by vertex count."""
    out = np.zeros(len(col), dtype=bool)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(col):
        groups.setdefault(len(s.poly.v), []).append(i)
    for idx in groups.values():
        polys = [col[i].poly for i in idx]
        if want_intersects:
            res = sph.polygons_contain_point(polys, circle.xyz) | (
                sph.polygons_edge_distance(polys, circle.xyz) * sph.R2D <= circle.r)
        elif circle.r < 90:
            ra = np.stack([p.ra for p in polys])
            dec = np.stack([p.dec for p in polys])
            res = np.all(sph.in_circle(ra, dec, circle.ra, circle.dec, circle.r), axis=1)
        else:
            res = np.array([contains(col[i], circle) for i in idx])
        out[np.asarray(idx)] = res
    return out


def centroid_point(s):
    return None if s is None else [POINT, s.ra, s.dec]



#: Footprints kept parsed by adql_region_select (about 1 kB each): enough for every image of a
#: DP1-sized ObsCore table, so repeated searches of one archive parse nothing.
REGION_CACHE_SIZE = 20_000


class RegionShapes:
    """STC-S text -> validated Shape, parsed in batches and kept in a bounded LRU map.

    A value is the Shape the row-wise SQL path builds for that text (``adql_region`` parses and
    normalises it, the pair UDFs validate the normalised list again; validating the parsed text
    once gives the same vertices in the same order, hence the same Shape). Safe for the several
    threads DuckDB may call a UDF from: the map is only touched under a lock.
    """

    def __init__(self, size: int = REGION_CACHE_SIZE) -> None:
        import threading
        from collections import OrderedDict

        self._size = size
        self._map: OrderedDict[str, Shape | None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: list) -> list:
        out: list = [None] * len(texts)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                if t is None:
                    continue
                if t in self._map:
                    self._map.move_to_end(t)
                    out[i] = self._map[t]
                else:
                    missing.setdefault(t, []).append(i)
        if not missing:
            return out
        keys = list(missing)
        tuples = [_region_tuple(k) for k in keys]
        ok = [k for k, g in enumerate(tuples) if g is not None]
        parsed: list = [None] * len(keys)
        for k, sh in zip(ok, shapes([g for g in tuples if g is not None]), strict=False):
            parsed[k] = sh
        with self._lock:
            for key, sh in zip(keys, parsed, strict=False):
                self._map[key] = sh
                for i in missing[key]:
                    out[i] = sh
            while len(self._map) > self._size:
                self._map.popitem(last=False)
        return out


def region_select(regions: list[Shape | None], g: Shape, mode: int) -> np.ndarray:
    """Which regions pass the test against the constant shape g (mode as adql_region_select).

    Row by row this is ``intersects``/``contains``; polygon regions are tested in batches of equal
    vertex count with the same formulas, vectorised over the batch."""
    n = len(regions)
    out = np.zeros(n, dtype=bool)
    func = intersects if mode in (0, 1) else contains
    groups: dict[int, list[int]] = {}
    for i, sa in enumerate(regions):
        if sa is None:
            continue
        if sa.kind == POLYGON:
            groups.setdefault(len(sa.poly.v), []).append(i)
        elif mode in (1, 3):
            out[i] = func(sa, g)
        else:
            out[i] = func(g, sa)
    for idx in groups.values():
        out[np.asarray(idx)] = _polygons_select([r for i in idx if (r := regions[i]) is not None], g, mode)
    return out


def _polygons_select(shapes_: list[Shape], g: Shape, mode: int) -> np.ndarray:
    """``region_select`` for polygons of one vertex count, each formula that of the row-wise
    ``intersects``/``contains`` for that pair of kinds."""
    meets = mode in (0, 1)
    polys = [s.poly for s in shapes_]
    if g.kind == POINT:
        inside = sph.polygons_contain_point(polys, g.xyz)      # the point inside the polygon
        if meets or mode == 2:
            return inside
        return np.array([contains(s, g) for s in shapes_])
    if g.kind == CIRCLE:
        if meets or mode == 3:
            return polygons_vs_circle(shapes_, g, meets)
        return sph.polygons_contain_point(polys, g.xyz) & (
            sph.polygons_edge_distance(polys, g.xyz) * sph.R2D >= g.r)   # circle inside polygon
    q = g.poly
    v = np.stack([p.v for p in polys])                          # (M, n, 3)
    m, k = v.shape[0], v.shape[1]
    w = np.roll(v, -1, axis=1)
    qw = np.roll(q.v, -1, axis=0)
    cross = np.any(sph.arcs_cross(v[:, :, None], w[:, :, None], q.v[None, None], qw[None, None]),
                   axis=(1, 2))
    if meets or mode == 3:
        in_q = sph.polygon_contains_xyz(q, v.reshape(-1, 3)).reshape(m, k)   # vertices in g
        if mode == 3:
            return np.all(in_q, axis=1) & ~cross
    q_in = np.stack([sph.polygons_contain_point(polys, c) for c in q.v], axis=1)  # g's vertices
    if mode == 2:
        return np.all(q_in, axis=1) & ~cross
    return np.any(in_q, axis=1) | np.any(q_in, axis=1) | cross
