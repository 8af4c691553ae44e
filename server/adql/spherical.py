"""Exact spherical geometry on the unit sphere, in numpy.

Every shape is handled as unit vectors; polygon edges are great-circle (minor) arcs. Angles in
and out of the public helpers are degrees unless a name says ``_rad``.

Polygon convention: whatever order the vertices come in, a polygon is the *smaller* of the two
regions its boundary separates (area <= 2 pi sr). DALI asks for counter-clockwise vertices, but
the text ("seen from the origin") and its own example disagree on what that means, and real
s_region values come in both orders; taking the smaller region makes both mean the same thing.
A polygon larger than a hemisphere can therefore not be expressed (STC-S/DALI users do not
write such polygons in practice). Internally vertices are stored so that the interior lies on
the left of every edge seen from outside the sphere, i.e. ``p . (v_i x v_i+1) > 0`` near an edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

D2R = np.pi / 180.0
R2D = 180.0 / np.pi
TWO_PI = 2.0 * np.pi
SR_TO_DEG2 = R2D * R2D


def radec_to_xyz(ra, dec) -> np.ndarray:
    ra = np.asarray(ra, dtype=float) * D2R
    dec = np.asarray(dec, dtype=float) * D2R
    c = np.cos(dec)
    return np.stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)], axis=-1)


def xyz_to_radec(v) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=float)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    ra = np.arctan2(y, x) * R2D % 360.0
    dec = np.arctan2(z, np.hypot(x, y)) * R2D
    return ra, dec


def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / n


def distance(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance in degrees: Vincenty's atan2 form, with the differences of products
    rewritten through sin/cos(dec2 - dec1) and 1 - cos(dra) = 2 sin^2(dra/2) so that neither
    tiny nor near-180 deg separations lose precision."""
    ra1, dec1, ra2, dec2 = (np.asarray(a, dtype=float) * D2R for a in (ra1, dec1, ra2, dec2))
    dra = ra2 - ra1
    s1, c1, c2 = np.sin(dec1), np.cos(dec1), np.cos(dec2)
    h = 2 * np.sin(dra / 2) ** 2                        # 1 - cos(dra), without cancellation
    num = np.hypot(c2 * np.sin(dra), np.sin(dec2 - dec1) + s1 * c2 * h)
    return np.arctan2(num, np.cos(dec2 - dec1) - c1 * c2 * h) * R2D


def angle_between(a, b) -> np.ndarray:
    """Angle (radians) between unit vectors, stable at 0 and pi."""
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


def in_circle(ra, dec, cra, cdec, r) -> np.ndarray:
    """The same haversine test as the SQL macro ``adql_in_circle`` (no prefilter needed here)."""
    h = hav_distance(ra, dec, cra, cdec)
    return h <= np.sin(np.minimum(np.asarray(r, dtype=float), 180.0) * D2R / 2) ** 2


def hav_distance(ra1, dec1, ra2, dec2):
    """haversine of the distance, i.e. sin^2(d/2)."""
    sd = np.sin((np.asarray(dec1, dtype=float) - dec2) * (D2R / 2))
    sr = np.sin((np.asarray(ra1, dtype=float) - ra2) * (D2R / 2))
    c1 = np.cos(np.asarray(dec1, dtype=float) * D2R)
    return sd * sd + c1 * np.cos(np.asarray(dec2, dtype=float) * D2R) * sr * sr


def box_vertices(ra, dec, width, height) -> np.ndarray:
    """Corners (flat ra/dec list, counter-clockwise) of an ADQL/STC BOX.

    The arms of the cross run along the meridian and the great circle perpendicular to it at
    the centre; the sides are great circles perpendicular to the arms at their ends. In the
    gnomonic projection about the centre great circles are straight lines, so the corners are
    exactly (+-tan(w/2), +-tan(h/2)) there.
    """
    c = radec_to_xyz(ra, dec)
    a, d = ra * D2R, dec * D2R
    east = np.array([-np.sin(a), np.cos(a), 0.0])
    north = np.array([-np.sin(d) * np.cos(a), -np.sin(d) * np.sin(a), np.cos(d)])
    tx, ty = np.tan(width * D2R / 2), np.tan(height * D2R / 2)
    pts = [c + sx * tx * east + sy * ty * north for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    r, de = xyz_to_radec(_unit(np.array(pts)))
    return np.column_stack([r, de]).ravel()


# --------------------------------------------------------------------------------------------
# polygons


@dataclass(frozen=True)
class Polygon:
    ra: np.ndarray        # vertices, normalised order (interior on the left seen from outside)
    dec: np.ndarray
    v: np.ndarray         # (n, 3) unit vectors
    n: np.ndarray         # (n, 3) unit edge poles v_i x v_i+1
    len: np.ndarray       # (n,) edge lengths, radians
    area: float           # steradians
    convex: bool
    hemisphere: bool      # all vertices strictly within the hemisphere around `centre`
    centre: np.ndarray    # area centroid, unit vector
    cra: float            # ... and its ra, dec
    cdec: float

    @property
    def flat(self) -> list[float]:
        return [x for pair in zip(self.ra.tolist(), self.dec.tolist(), strict=False) for x in pair]


def _turning(v, poles):
    """Signed turning angle at each vertex (positive = towards the left); axis -2 = vertices."""
    t_in = _unit(np.cross(np.roll(poles, 1, axis=-2), v))
    t_out = _unit(np.cross(poles, v))
    return np.arctan2(np.sum(v * np.cross(t_in, t_out), axis=-1), np.sum(t_in * t_out, axis=-1))


def polygon_batch(coords) -> tuple[list[Polygon | None], np.ndarray]:
    """Validate and normalise M polygons of n vertices at once; coords (M, n, 2) ra/dec.

    Returns the polygons (None where invalid) and the valid mask. Repeated consecutive vertices
    make a row invalid here; ``make_polygon`` removes them first.
    """
    a = polygon_arrays(coords)
    valid = a["valid"]
    lf, cv, hm, cr, cd = (a[k].tolist() for k in ("area", "convex", "hemi", "cra", "cdec"))
    out = [Polygon(a["ra"][k], a["dec"][k], a["v"][k], a["n"][k], a["len"][k], lf[k], cv[k],
                   hm[k], a["centre"][k], cr[k], cd[k]) if valid[k] else None
           for k in range(len(valid))]
    return out, valid


def polygon_arrays(coords) -> dict[str, np.ndarray]:
    """``polygon_batch`` as arrays: ra, dec (normalised order), v, n, len, area, convex, hemi,
    centre, cra, cdec, valid."""
    c = np.asarray(coords, dtype=float)
    m, n = c.shape[:2]
    valid = np.all(np.isfinite(c), axis=(1, 2)) & np.all(np.abs(c[..., 1]) <= 90, axis=1)
    valid &= n >= 3
    ra = np.where(valid[:, None], c[..., 0] % 360.0, 0.0)
    dec = np.where(valid[:, None], c[..., 1], 0.0)
    v = radec_to_xyz(ra, dec)
    with np.errstate(invalid="ignore", divide="ignore"):
        poles = np.cross(v, np.roll(v, -1, axis=1))
        valid &= np.all(np.linalg.norm(poles, axis=-1) >= 1e-15, axis=1)
        turns = _turning(v, _unit(poles))
        left = TWO_PI - np.sum(turns, axis=1)
        valid &= np.isfinite(left)
        flip = valid & (left > TWO_PI)      # the given order encloses the larger region
        if np.any(flip):
            v[flip], ra[flip], dec[flip] = v[flip, ::-1], ra[flip, ::-1], dec[flip, ::-1]
            turns[flip] = -turns[flip, ::-1]     # walking backwards turns the other way
            left[flip] = 4 * np.pi - left[flip]
        w = np.roll(v, -1, axis=1)
        poles = _unit(np.cross(v, w))
        lengths = angle_between(v, w)
        valid &= left >= 1e-20
        if n >= 4:
            i, j = np.triu_indices(n, k=2)
            keep = ~((i == 0) & (j == n - 1))     # first and last edges are neighbours
            i, j = i[keep], j[keep]
            valid &= ~np.any(arcs_cross(v[:, i], w[:, i], v[:, j], w[:, j]), axis=1)
        centre = np.sum(poles * lengths[..., None], axis=1)   # integral of x dA
        bad = np.linalg.norm(centre, axis=-1) <= 0
        centre[bad] = np.sum(v[bad], axis=1)
        centre = _unit(centre)
        convex = np.all(turns >= 0, axis=1)
        hemi = np.all(np.einsum("mnk,mk->mn", v, centre) > 1e-12, axis=1)
        cra, cdec = xyz_to_radec(centre)
    return dict(ra=ra, dec=dec, v=v, n=poles, len=lengths, area=left, convex=convex, hemi=hemi,
                centre=centre, cra=cra, cdec=cdec, valid=valid)


def make_polygon(flat) -> Polygon | None:
    """Validate and normalise a flat vertex list; None when it is not a simple polygon."""
    a = np.asarray(flat, dtype=float).ravel()
    if a.size < 6 or a.size % 2 or not np.all(np.isfinite(a)):
        return None
    ra, dec = a[0::2] % 360.0, a[1::2]
    if np.any(np.abs(dec) > 90.0):
        return None
    v = radec_to_xyz(ra, dec)
    # drop repeated consecutive vertices (including an explicit closing vertex)
    keep = np.ones(len(v), dtype=bool)
    keep[1:] = angle_between(v[1:], v[:-1]) > 1e-15
    v, ra, dec = v[keep], ra[keep], dec[keep]
    if len(v) > 1 and angle_between(v[0], v[-1]) <= 1e-15:
        ra, dec = ra[:-1], dec[:-1]
    if len(ra) < 3:
        return None
    return polygon_batch(np.column_stack([ra, dec])[None])[0][0]


def _sign(a, b, c):
    """Orientation of three points: sign of a . (b x c)."""
    return np.sign(np.sum(a * np.cross(b, c), axis=-1))


def arcs_cross(a, b, c, d) -> np.ndarray:
    """True where minor arcs ab and cd cross at a point interior to both (broadcasting)."""
    s1 = _sign(a, b, c)
    return ((_sign(a, b, d) == -s1) & (_sign(c, d, b) == s1) & (_sign(c, d, a) == -s1)
            & (s1 != 0))


def _winding(poly: Polygon, p: np.ndarray) -> np.ndarray:
    """Winding number of the boundary around each point p (N, 3), as an integer."""
    v, w = poly.v, np.roll(poly.v, -1, axis=0)
    pv, pw = p @ v.T, p @ w.T                                   # (N, n)
    num = p @ np.cross(v, w).T
    den = np.sum(v * w, axis=-1)[None, :] - pv * pw
    return np.rint(np.sum(np.arctan2(num, den), axis=1) / TWO_PI).astype(np.int64)


def polygon_contains_xyz(poly: Polygon, p: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Exact point-in-polygon for unit vectors p (N, 3)."""
    p = np.asarray(p, dtype=float).reshape(-1, 3)
    if len(p) > chunk:
        return np.concatenate([polygon_contains_xyz(poly, p[i:i + chunk])
                               for i in range(0, len(p), chunk)])
    if poly.convex:
        return np.all(p @ poly.n.T >= 0.0, axis=1)
    wn = _winding(poly, p)
    inside = wn == 1
    if not poly.hemisphere:
        # the region may hold antipodal pairs: winding 0 means "p and -p on the same side"
        amb = np.flatnonzero(wn == 0)
        if amb.size:
            inside[amb] = _parity_inside(poly, p[amb])
    return inside


def _parity_inside(poly: Polygon, p: np.ndarray) -> np.ndarray:
    """Fallback for polygons not contained in a hemisphere: count edge crossings on a path
    from each point to a reference point just inside the first edge."""
    v, w = poly.v, np.roll(poly.v, -1, axis=0)
    mid = _unit(v[0] + w[0])
    step = min(1e-7, 1e-3 * float(poly.len.min()))
    ref = _unit(mid + step * poly.n[0])
    # two hops so that every hop is a well-defined minor arc
    via = _unit(p + ref)
    bad = (p @ ref) < -0.5
    if np.any(bad):
        q = p[bad] - (p[bad] @ ref)[:, None] * ref
        alt = np.cross(ref, [1.0, 0.0, 0.0] if abs(ref[0]) < 0.9 else [0.0, 1.0, 0.0])
        small = np.linalg.norm(q, axis=-1) < 1e-8
        q[small] = alt
        via[bad] = _unit(q)
    crossings = np.zeros(len(p), dtype=np.int64)
    for a, b in ((p, via), (via, np.broadcast_to(ref, p.shape))):
        crossings += np.sum(arcs_cross(a[:, None, :], b[:, None, :], v[None], w[None]), axis=1)
    return crossings % 2 == 0


def point_arc_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, pole: np.ndarray) -> np.ndarray:
    """Distance (radians) from points p (N, 3) to the minor arc a-b with unit pole a x b."""
    s = p @ pole
    q = p - s[:, None] * pole
    on_arc = (np.cross(a, q) @ pole >= 0) & (np.cross(q, b) @ pole >= 0) & (
        np.linalg.norm(q, axis=-1) > 0)
    d_line = np.abs(np.arcsin(np.clip(s, -1.0, 1.0)))
    d_end = np.minimum(angle_between(p, a[None]), angle_between(p, b[None]))
    return np.where(on_arc, d_line, d_end)


def polygon_edge_distance(poly: Polygon, p: np.ndarray) -> np.ndarray:
    """Smallest distance (radians) from each point to the polygon's boundary."""
    p = np.asarray(p, dtype=float).reshape(-1, 3)
    w = np.roll(poly.v, -1, axis=0)
    out = np.full(len(p), np.inf)
    for i in range(len(poly.v)):
        out = np.minimum(out, point_arc_distance(p, poly.v[i], w[i], poly.n[i]))
    return out


def polygons_edges_cross(a: Polygon, b: Polygon) -> bool:
    aw, bw = np.roll(a.v, -1, axis=0), np.roll(b.v, -1, axis=0)
    return bool(np.any(arcs_cross(a.v[:, None], aw[:, None], b.v[None], bw[None])))


def _stack(polys: list[Polygon]):
    v = np.stack([p.v for p in polys])
    return v, np.roll(v, -1, axis=1), np.stack([p.n for p in polys])


def polygons_contain_point(polys: list[Polygon], c: np.ndarray) -> np.ndarray:
    """For M polygons of the same vertex count: does each contain the unit vector c?"""
    v, w, poles = _stack(polys)
    out = np.all(poles @ c >= 0.0, axis=1)
    convex = np.array([p.convex for p in polys])
    hemi = np.array([p.hemisphere for p in polys])
    rest = ~convex & hemi
    if np.any(rest):
        num = np.cross(v[rest], w[rest]) @ c
        den = np.sum(v[rest] * w[rest], axis=-1) - (v[rest] @ c) * (w[rest] @ c)
        out[rest] = np.rint(np.sum(np.arctan2(num, den), axis=1) / TWO_PI) == 1
    for k in np.flatnonzero(~convex & ~hemi):
        out[k] = polygon_contains_xyz(polys[k], c)[0]
    return out


def polygons_edge_distance(polys: list[Polygon], c: np.ndarray) -> np.ndarray:
    """For M polygons of the same vertex count: distance (radians) from c to the boundary."""
    v, w, poles = _stack(polys)
    s = poles @ c
    q = c - s[..., None] * poles
    on_arc = (np.sum(np.cross(v, q) * poles, axis=-1) >= 0) & (
        np.sum(np.cross(q, w) * poles, axis=-1) >= 0) & (np.linalg.norm(q, axis=-1) > 0)
    d = np.where(on_arc, np.abs(np.arcsin(np.clip(s, -1.0, 1.0))),
                 np.minimum(angle_between(v, c), angle_between(w, c)))
    return d.min(axis=1)
