"""ADQL geometry for DuckDB: SQL functions, STC-S/DALI conversion and HEALPix range cover.

``register(con)`` installs these functions on a connection (read-only connections too: the
macros are TEMP and the UDFs live in the connection). Geometry values are ``DOUBLE[]`` with a
leading kind tag: point ``[1, ra, dec]``, circle ``[2, ra, dec, r]``, polygon
``[3, ra1, dec1, ra2, dec2, ...]``; all angles in degrees; NULL in gives NULL out.

=======================================================  =============================
adql_distance(ra1, dec1, ra2, dec2 DOUBLE) -> DOUBLE      SQL macro (Vincenty atan2)
adql_in_circle(ra, dec, cra, cdec, r DOUBLE) -> BOOLEAN   SQL macro (box + haversine)
adql_in_polygon(ra, dec DOUBLE, poly DOUBLE[]) -> BOOLEAN UDF; poly = flat vertices, no tag
adql_contains(a, b DOUBLE[]) -> INTEGER                   macro: point/circle inline, else UDF
adql_intersects(a, b DOUBLE[]) -> INTEGER                 macro: point/circle inline, else UDF
adql_area(g DOUBLE[]) -> DOUBLE                           UDF, square degrees
adql_centroid(g DOUBLE[]) -> DOUBLE[]                     UDF, tagged point
adql_coord1(g DOUBLE[]) / adql_coord2(g) -> DOUBLE        SQL macros (point or circle centre)
adql_region(s VARCHAR) -> DOUBLE[]                        UDF, STC-S or DALI text; bad -> NULL
adql_dali(g DOUBLE[]) -> VARCHAR                          UDF, DALI text without the tag
adql_region_select(ids BIGINT[], regions VARCHAR[],       UDF, the ids whose region passes
                   g DOUBLE[], mode INTEGER) -> BIGINT[]  CONTAINS/INTERSECTS with g
=======================================================  =============================

For a translator: ``CONTAINS(POINT(ra, dec), CIRCLE(...)) = 1`` is fastest written as
``adql_in_circle(ra, dec, cra, cdec, r)`` and a polygon as ``adql_in_polygon(ra, dec, [...])``,
each ANDed with ``healpix_filter_sql(healpix_ranges(...))`` on HEALPix-ordered tables.

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
HEALPIX_MAX_DEPTH = 29

# ------------------------------------------------------------------------------------------
# SQL macros. Haversine with a bounding-box prefilter: DuckDB short-circuits AND per vector,
# so only rows in the box pay for the trigonometry; the box is widened by 1e-9 deg so it can
# never reject a row the haversine accepts.
_HALF = "0.008726646259971648"     # pi / 360
_BOX_HALF_WIDTH = ("(CASE WHEN abs(cdec) + r >= 89.999 THEN 360.0 ELSE degrees(asin(least(1.0, "
                   "sin(radians(least(r, 90.0))) / cos(radians(cdec))))) + 1e-9 END)")
MACROS = {
    "adql_in_circle": ("ra, dec, cra, cdec, r",
                       f"(abs(dec - cdec) <= r + 1e-9 "
                       f"AND abs((ra - cra + 540.0) % 360.0 - 180.0) <= {_BOX_HALF_WIDTH} "
                       f"AND sin((dec - cdec) * {_HALF}) * sin((dec - cdec) * {_HALF}) "
                       f"+ cos(radians(dec)) * cos(radians(cdec)) "
                       f"* sin((ra - cra) * {_HALF}) * sin((ra - cra) * {_HALF}) "
                       f"<= sin(radians(least(r, 180.0)) / 2) ^ 2)"),
    # Vincenty (see spherical.distance): atan2(|cross|, dot), cancellation-free terms
    "adql_distance": ("ra1, dec1, ra2, dec2",
                      "degrees(atan2(sqrt((cos(radians(dec2)) * sin(radians(ra2 - ra1))) ^ 2 "
                      "+ (sin(radians(dec2 - dec1)) + sin(radians(dec1)) * cos(radians(dec2)) "
                      "* 2 * sin(radians(ra2 - ra1) / 2) ^ 2) ^ 2), "
                      "cos(radians(dec2 - dec1)) - cos(radians(dec1)) * cos(radians(dec2)) "
                      "* 2 * sin(radians(ra2 - ra1) / 2) ^ 2))"),
    "adql_coord1": ("g", "(CASE WHEN CAST(g AS DOUBLE[])[1] IN (1, 2) "
                         "THEN CAST(g AS DOUBLE[])[2] END)"),
    "adql_coord2": ("g", "(CASE WHEN CAST(g AS DOUBLE[])[1] IN (1, 2) "
                         "THEN CAST(g AS DOUBLE[])[3] END)"),
    # point/circle pairs inline (no Python call per vector); everything else in the UDF
    "adql_contains": ("a, b",
                      "(CASE WHEN CAST(a AS DOUBLE[])[1] = 1 AND CAST(b AS DOUBLE[])[1] = 2 "
                      "AND len(CAST(a AS DOUBLE[])) = 3 AND len(CAST(b AS DOUBLE[])) = 4 THEN "
                      "CAST(adql_in_circle(CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], "
                      "CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], CAST(b AS DOUBLE[])[4]) "
                      "AS INTEGER) ELSE _adql_contains(a, b) END)"),
    "adql_intersects": ("a, b",
                        "(CASE WHEN CAST(a AS DOUBLE[])[1] = 1 AND CAST(b AS DOUBLE[])[1] = 2 "
                        "AND len(CAST(a AS DOUBLE[])) = 3 AND len(CAST(b AS DOUBLE[])) = 4 THEN "
                        "CAST(adql_in_circle(CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], "
                        "CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], CAST(b AS DOUBLE[])[4]) "
                        "AS INTEGER) "
                        "WHEN CAST(a AS DOUBLE[])[1] = 2 AND CAST(b AS DOUBLE[])[1] = 1 "
                        "AND len(CAST(a AS DOUBLE[])) = 4 AND len(CAST(b AS DOUBLE[])) = 3 THEN "
                        "CAST(adql_in_circle(CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], "
                        "CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], CAST(a AS DOUBLE[])[4]) "
                        "AS INTEGER) ELSE _adql_intersects(a, b) END)"),
}


# ------------------------------------------------------------------------------------------
# shapes


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
def _polygon(flat: tuple):
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
    ok = [i for i, g in enumerate(tuples) if g is not None]
    out: list = [None] * len(tuples)
    for i, s in zip(ok, shapes([g for g in tuples if g is not None]), strict=False):
        out[i] = _tagged(tuples[i], s)
    return out


def _num(x: float) -> str:
    return repr(float(x))


def dali(g) -> str | None:
    return _dali(shape(g))


def _dali(s: Shape | None) -> str | None:
    if s is None:
        return None
    if s.kind == POINT:
        return f"{_num(s.ra)} {_num(s.dec)}"
    if s.kind == CIRCLE:
        return f"{_num(s.ra)} {_num(s.dec)} {_num(s.r)}"
    return " ".join(_num(x) for x in s.poly.flat)


# ------------------------------------------------------------------------------------------
# DuckDB registration


def _types():
    import duckdb
    try:
        t = duckdb.sqltype
    except AttributeError:                          # duckdb < 1.4
        from duckdb.typing import DuckDBPyType as t  # type: ignore
    return t("DOUBLE"), t("DOUBLE[]"), t("BOOLEAN"), t("INTEGER"), t("VARCHAR")


def _sqltype(name: str):
    import duckdb
    try:
        return duckdb.sqltype(name)
    except AttributeError:                          # duckdb < 1.4
        from duckdb.typing import DuckDBPyType
        return DuckDBPyType(name)


def _combine(a):
    import pyarrow as pa
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _lists(a):
    """Arrow list<double> array -> (offsets, values, n); offsets index values."""
    a = _combine(a)
    off = a.offsets.to_numpy()
    vals = a.values.to_numpy(zero_copy_only=False).astype(float, copy=False)
    return off, vals, len(a)


def _constant_row(off, vals, n):
    """The single row if every row of a list column is the same, else None."""
    if n == 0:
        return None
    ln = np.diff(off)
    if not np.all(ln == ln[0]):
        return None
    block = vals[off[0]:off[0] + n * ln[0]].reshape(n, ln[0])
    if n > 1 and not np.array_equal(block[1:], np.broadcast_to(block[0], block[1:].shape),
                                    equal_nan=True):
        return None
    return tuple(block[0].tolist())


def _rows(off, vals, n):
    return [tuple(vals[off[i]:off[i + 1]].tolist()) for i in range(n)]


def _udf_in_polygon(ra, dec, poly):
    import pyarrow as pa
    ra = _combine(ra).to_numpy(zero_copy_only=False)
    dec = _combine(dec).to_numpy(zero_copy_only=False)
    off, vals, n = _lists(poly)
    const = _constant_row(off, vals, n)
    out = np.zeros(n, dtype=bool)
    valid = np.ones(n, dtype=bool)
    groups = [(const, np.arange(n))] if const is not None else _group(_rows(off, vals, n))
    for key, idx in groups:
        p = _polygon(key)
        if p is None:
            valid[idx] = False
            continue
        out[idx] = sph.polygon_contains_xyz(p, sph.radec_to_xyz(ra[idx], dec[idx]))
    return pa.array(out, mask=~valid | np.isnan(ra) | np.isnan(dec))


def _group(rows):
    g: dict = {}
    for i, r in enumerate(rows):
        g.setdefault(r, []).append(i)
    return [(k, np.asarray(v)) for k, v in g.items()]


def _pair_udf(func, symmetric):
    """A (geometry, geometry) -> INTEGER UDF: vectorised when one side is a constant shape and
    the other a column of points, row by row (cached shapes) otherwise."""
    def udf(a, b):
        import pyarrow as pa
        ao, av, n = _lists(a)
        bo, bv, _ = _lists(b)
        out = np.zeros(n, dtype=np.int32)
        valid = np.ones(n, dtype=bool)
        bconst = _constant_row(bo, bv, n)
        aconst = _constant_row(ao, av, n) if symmetric and bconst is None else None
        pts_o, pts_v, other = (ao, av, bconst) if bconst is not None else (bo, bv, aconst)
        sb = shape(other) if other is not None else None
        if other is not None and np.all(np.diff(pts_o) == 3) and np.all(pts_v[pts_o[:-1]] == POINT) \
                and n > 1:
            if sb is None:
                return pa.nulls(n, pa.int32())
            ra, dec = pts_v[pts_o[:-1] + 1], pts_v[pts_o[:-1] + 2]
            valid = np.isfinite(ra) & (np.abs(dec) <= 90)
            ra, dec = np.where(valid, ra, 0.0), np.where(valid, dec, 0.0)
            if sb.kind == CIRCLE:
                out[:] = sph.in_circle(ra, dec, sb.ra, sb.dec, sb.r)
            elif sb.kind == POLYGON:
                out[:] = sph.polygon_contains_xyz(sb.poly, sph.radec_to_xyz(ra, dec))
            else:
                out[:] = sph.distance(ra, dec, sb.ra, sb.dec) <= POINT_EQ_DEG
            return pa.array(out, mask=~valid)
        col = shapes(_rows(pts_o, pts_v, n)) if other is not None else None
        if sb is not None and col is not None and sb.kind == CIRCLE and n > 1 and \
                all(x is None or x.kind == POLYGON for x in col):
            valid = np.array([x is not None for x in col])
            out[valid] = _polygons_vs_circle([x for x in col if x is not None], sb,
                                             func is intersects)
            return pa.array(out, mask=~valid)
        if col is not None:
            sas = col if bconst is not None else [sb] * n
            sbs = [sb] * n if bconst is not None else col
        else:
            sas, sbs = shapes(_rows(ao, av, n)), shapes(_rows(bo, bv, n))
        for i, (sa, sb_) in enumerate(zip(sas, sbs, strict=False)):
            if sa is None or sb_ is None:
                valid[i] = False
            else:
                out[i] = func(sa, sb_)
        return pa.array(out, mask=~valid)
    return udf


def _polygons_vs_circle(col: list[Shape], circle: Shape, want_intersects: bool) -> np.ndarray:
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


def _map_udf(func, arrow_type):
    def udf(g):
        import pyarrow as pa
        off, vals, n = _lists(g)
        return pa.array([func(x) for x in shapes(_rows(off, vals, n))], type=arrow_type())
    return udf


def _centroid(s):
    return None if s is None else [POINT, s.ra, s.dec]


_FAST_POLYGON = r"^\s*POLYGON\s+(ICRS\s+)?[-+0-9.eE\s]+$"


def _regions_fast(arr):
    """Vectorised adql_region for the common case, a column of 'POLYGON [ICRS] numbers'
    strings: split and cast in Arrow, validate in numpy batches. None when not applicable."""
    import pyarrow as pa
    import pyarrow.compute as pc
    n = len(arr)
    if n < 64 or arr.null_count == n:
        return None
    ok = pc.match_substring_regex(arr, _FAST_POLYGON, ignore_case=True)
    if pc.sum(pc.cast(pc.fill_null(ok, True), pa.int64())).as_py() != n:
        return None
    body = pc.replace_substring_regex(arr, r"^\s*\S+\s+(?i:ICRS\s+)?", "")
    parts = pc.split_pattern_regex(pc.utf8_trim_whitespace(body), r"\s+")
    try:
        values = pc.cast(pc.list_flatten(parts), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    lengths = pc.fill_null(pc.list_value_length(parts), 0).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    valid = np.zeros(n, dtype=bool)
    out_len = np.zeros(n, dtype=np.int64)
    pieces: list[tuple[np.ndarray, np.ndarray]] = []      # (row indices, (k, len) values)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        if length < 6 or length % 2:
            continue
        coords = values[starts[idx][:, None] + np.arange(length)].reshape(len(idx), -1, 2)
        a = sph.polygon_arrays(coords)
        good = a["valid"]
        flat = np.column_stack([np.full(len(idx), POLYGON),
                                np.stack([a["ra"], a["dec"]], axis=-1).reshape(len(idx), -1)])
        pieces.append((idx[good], flat[good]))
        valid[idx[good]] = True
        out_len[idx[good]] = length + 1
        for k in np.flatnonzero(~good):       # repeated vertices etc.: the careful path
            g = parse_region(arr[int(idx[k])].as_py())
            if g is not None:
                pieces.append((idx[k:k + 1], np.asarray([g], dtype=float)))
                valid[idx[k]] = True
                out_len[idx[k]] = len(g)
    offsets = np.concatenate([[0], np.cumsum(out_len)])
    vals = np.zeros(int(offsets[-1]))
    for rows, block in pieces:
        pos = offsets[rows][:, None] + np.arange(block.shape[1])
        vals[pos] = block
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(vals),
                                    mask=pa.array(~valid))


def _udf_region(s):
    import pyarrow as pa
    arr = _combine(s)
    fast = _regions_fast(arr)
    if fast is not None:
        return fast
    return pa.array(parse_regions(arr.to_pylist()), type=pa.list_(pa.float64()))


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
            return _polygons_vs_circle(shapes_, g, meets)
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


def _region_select_udf(cache: RegionShapes):
    """adql_region_select(ids BIGINT[], regions VARCHAR[], g DOUBLE[], mode INTEGER) -> BIGINT[]:
    the ids whose STC-S region passes CONTAINS/INTERSECTS against the geometry g.

    mode: 0 INTERSECTS(g, region), 1 INTERSECTS(region, g), 2 CONTAINS(g, region),
    3 CONTAINS(region, g). The lists are a whole candidate set gathered by an aggregate, so the
    regions are parsed (once per text, then cached) and tested in one batch instead of once per
    scanned vector. A NULL or invalid region, like an invalid g, never passes.
    """
    def udf(ids, regions, g, mode):
        import pyarrow as pa
        ids, regions, g, mode = (_combine(x) for x in (ids, regions, g, mode))
        out: list[list[int] | None] = []
        for i in range(len(ids)):
            if not (ids[i].is_valid and regions[i].is_valid and g[i].is_valid and mode[i].is_valid):
                out.append(None)
                continue
            keys = ids[i].values.to_numpy(zero_copy_only=False)
            sb = shape(g[i].as_py()) if None not in g[i].as_py() else None
            if len(keys) == 0 or sb is None:
                out.append([])
                continue
            keep = region_select(cache(regions[i].values.to_pylist()), sb, mode[i].as_py())
            out.append(keys[keep].tolist())
        return pa.array(out, type=pa.list_(pa.int64()))
    return udf


def _udf_dali(g):
    import pyarrow as pa
    off, vals, n = _lists(g)
    return pa.array([_dali(x) for x in shapes(_rows(off, vals, n))], type=pa.string())


def create_udf(con, name, fn, args, ret, **kw) -> None:
    """Register a Python UDF once per database.

    DuckDB keeps Python UDFs in the database instance, shared by every connection and cursor to
    the same file, while temp macros belong to one connection; a second registration of a UDF is
    therefore a no-op rather than an error.
    """
    import duckdb

    try:
        con.create_function(name, fn, args, ret, type="arrow", null_handling="special", **kw)
    except (duckdb.CatalogException, duckdb.NotImplementedException) as exc:
        # Another connection registered it ("already exists"), or this one did ("already created").
        if "already" not in str(exc):
            raise


def register(con) -> None:
    """Install the ADQL geometry functions on a DuckDB connection (idempotent)."""
    register_udfs(con)
    register_macros(con)


def register_macros(con) -> None:
    """The SQL macros: temp objects, so every connection or cursor needs its own."""
    for name, (params, body) in MACROS.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {name}({params}) AS {body}")


def register_udfs(con) -> None:
    """The Python UDFs: DuckDB files them under the database instance but they live only as
    long as the connection that registered them, so register them on a connection that
    outlives every cursor that calls them (the engine's own)."""
    import pyarrow as pa
    DOUBLE, LIST, BOOL, INT, VARCHAR = _types()
    udfs = [
        ("adql_in_polygon", _udf_in_polygon, [DOUBLE, DOUBLE, LIST], BOOL),
        ("_adql_contains", _pair_udf(contains, False), [LIST, LIST], INT),
        ("_adql_intersects", _pair_udf(intersects, True), [LIST, LIST], INT),
        ("adql_area", _map_udf(lambda s: None if s is None else area(s), pa.float64),
         [LIST], DOUBLE),
        ("adql_centroid", _map_udf(_centroid, lambda: pa.list_(pa.float64())), [LIST], LIST),
        ("adql_region", _udf_region, [VARCHAR], LIST),
        ("adql_dali", _udf_dali, [LIST], VARCHAR),
        ("adql_region_select", _region_select_udf(RegionShapes()),
         [_sqltype("BIGINT[]"), _sqltype("VARCHAR[]"), LIST, INT], _sqltype("BIGINT[]")),
    ]
    for name, fn, args, ret in udfs:
        create_udf(con, name, fn, args, ret)


# ------------------------------------------------------------------------------------------
# enclosing caps (the s_region prefilter)


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
        p = _polygon(params)
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
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

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
        ipix, dd, _ = nested.cone_search(Longitude(ra % 360 * u.deg), Latitude(dec * u.deg),
                                         (r + pad) * u.deg, d, flat=False)
        cells = [(ipix.astype(np.int64), dd.astype(np.int64))]
    elif kind == "polygon":
        p = _polygon(params)
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
