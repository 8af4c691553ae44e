"""ADQL spherical geometry, checked against astropy and independent reference computations,
through DuckDB SQL on read-only connections."""
from __future__ import annotations

import math

import numpy as np
import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("cdshealpix")
import astropy.units as u  # noqa: E402
from astropy.coordinates import Latitude, Longitude, SkyCoord  # noqa: E402

from diavo.server.adql import cover  # noqa: E402
from diavo.server.adql import geometry as G  # noqa: E402
from diavo.server.adql import spherical as S  # noqa: E402
from diavo.server.engine import duckdb_functions  # noqa: E402

READ_CONFIG = {"enable_external_access": False}


# ------------------------------------------------------------------------------------------
# helpers and independent references


def random_in_cap(rng, ra, dec, r, n):
    """Uniform random points in a cap (via astropy offsets)."""
    rho = np.degrees(np.arccos(1 - rng.random(n) * (1 - np.cos(np.radians(r)))))
    pa = rng.random(n) * 360
    c = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(pa * u.deg, rho * u.deg)
    return c.ra.deg, c.dec.deg


def gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane coordinates about (ra0, dec0); great circles map to straight lines."""
    ra, dec, ra0, dec0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    x = np.cos(dec) * np.sin(ra - ra0) / cosc
    y = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return x, y, cosc


def reference_in_polygon(ra, dec, vra, vdec, ra0, dec0):
    """Planar crossing-number test in the gnomonic projection about (ra0, dec0)."""
    x, y, cosc = gnomonic(ra, dec, ra0, dec0)
    vx, vy, vc = gnomonic(np.asarray(vra), np.asarray(vdec), ra0, dec0)
    assert np.all(vc > 0)
    inside = np.zeros(len(x), dtype=bool)
    n = len(vx)
    for i in range(n):
        x1, y1, x2, y2 = vx[i], vy[i], vx[(i + 1) % n], vy[(i + 1) % n]
        cond = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (x < xc)
    return inside & (cosc > 0)


def star_polygon(rng, ra0, dec0, radius, n, convex):
    """Vertices at sorted position angles around a centre (convex: equal radii on a circle;
    otherwise random radii giving a star-shaped, non-convex polygon). Counter-clockwise in
    (ra, dec) on the sky as seen from outside when the angles run the right way."""
    pa = np.sort(rng.random(n) * 360)
    rho = np.full(n, radius) if convex else radius * rng.uniform(0.25, 1.0, n)
    c = SkyCoord(ra0 * u.deg, dec0 * u.deg).directional_offset_by(pa * u.deg, rho * u.deg)
    return c.ra.deg, c.dec.deg


def flat(vra, vdec):
    return np.column_stack([vra, vdec]).ravel().tolist()


def sql_list(values):
    return "[" + ", ".join(repr(float(v)) for v in values) + "]::DOUBLE[]"


@pytest.fixture(scope="module")
def ro_con(tmp_path_factory):
    """A real DuckDB file with random points, reopened READ-ONLY, functions registered."""
    rng = np.random.default_rng(42)
    parts = [random_in_cap(rng, ra, dec, r, 40_000) for ra, dec, r in
             [(53.1, -28.1, 3.0), (0.0, 1.0, 3.0), (120.0, 89.0, 3.0), (200.0, -88.5, 3.0)]]
    parts.append((rng.random(40_000) * 360, np.degrees(np.arcsin(rng.uniform(-1, 1, 40_000)))))
    ra = np.concatenate([p[0] for p in parts])
    dec = np.concatenate([p[1] for p in parts])
    path = tmp_path_factory.mktemp("geo") / "points.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE pts (id INTEGER, ra DOUBLE, dec DOUBLE)")
    import pyarrow as pa
    tbl = pa.table({"id": np.arange(len(ra), dtype=np.int32), "ra": ra, "dec": dec})
    con.register("src", tbl)
    con.execute("INSERT INTO pts SELECT * FROM src")
    con.close()
    ro = duckdb.connect(str(path), read_only=True, config=READ_CONFIG)
    duckdb_functions.register(ro)
    yield ro, ra, dec
    ro.close()


def ids(con, where):
    got = con.execute(f"SELECT id FROM pts WHERE {where}").fetchnumpy()["id"]
    return np.sort(got)


# ------------------------------------------------------------------------------------------
# distance


def test_distance_matches_astropy_everywhere(ro_con):
    con, _, _ = ro_con
    rng = np.random.default_rng(1)
    n = 3000
    ra1 = rng.random(n) * 360
    dec1 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # mixtures: random, tiny separations, antipodes, poles, across RA = 0/360
    ra2 = rng.random(n) * 360
    dec2 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 6
    ra2[:k], dec2[:k] = ra1[:k] + rng.normal(0, 1e-7, k), dec1[:k] + rng.normal(0, 1e-7, k)
    ra2[k:2 * k] = (ra1[k:2 * k] + 180 + rng.normal(0, 1e-6, k)) % 360
    dec2[k:2 * k] = -dec1[k:2 * k] + rng.normal(0, 1e-6, k)
    dec1[2 * k:3 * k] = 90 - rng.random(k) * 1e-3
    dec2[2 * k:3 * k] = 90 - rng.random(k) * 1e-3
    ra1[3 * k:4 * k] = rng.random(k) * 0.01
    ra2[3 * k:4 * k] = 360 - rng.random(k) * 0.01
    dec2[3 * k:4 * k] = dec1[3 * k:4 * k] + rng.normal(0, 0.01, k)
    dec1[4 * k:5 * k], dec2[4 * k:5 * k] = 90.0, -90.0
    ra2, dec2 = ra2 % 360, np.clip(dec2, -90, 90)
    truth = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg

    assert np.max(np.abs(S.distance(ra1, dec1, ra2, dec2) - truth)) <= 1e-9
    import pyarrow as pa
    con.register("pairs", pa.table({"ra1": ra1, "dec1": dec1, "ra2": ra2, "dec2": dec2}))
    got = con.execute("SELECT adql_distance(ra1, dec1, ra2, dec2) AS d FROM pairs").fetchnumpy()["d"]
    con.unregister("pairs")
    assert np.max(np.abs(got - truth)) <= 1e-9
    # relative precision at tiny separations
    assert con.execute("SELECT adql_distance(10, 10, 10, 10.000001)").fetchall()[0][0] == \
        pytest.approx(1e-6, rel=1e-9)
    assert con.execute("SELECT adql_distance(0, 0, 180, 0)").fetchall()[0][0] == pytest.approx(180.0)
    assert con.execute("SELECT adql_distance(NULL, 0, 180, 0)").fetchall()[0][0] is None


# ------------------------------------------------------------------------------------------
# point in circle / polygon, through SQL on the read-only connection


@pytest.mark.parametrize("cra,cdec,r", [(53.1, -28.1, 0.05), (53.1, -28.1, 1.7), (0.01, 1.0, 2.0),
                                        (359.5, 0.0, 1.0), (120.0, 89.0, 2.5), (10.0, 88.0, 2.5),
                                        (200.0, -88.5, 2.0), (33.0, 10.0, 120.0),
                                        (0.0, 0.0, 180.0)])
def test_in_circle_equals_astropy(ro_con, cra, cdec, r):
    con, ra, dec = ro_con
    sep = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(cra * u.deg, cdec * u.deg)).deg
    near = np.abs(sep - r) < 1e-9
    want = np.flatnonzero(sep <= r)
    got = ids(con, f"adql_in_circle(ra, dec, {cra}, {cdec}, {r})")
    assert np.array_equal(np.setdiff1d(got, np.flatnonzero(near)),
                          np.setdiff1d(want, np.flatnonzero(near)))
    # CONTAINS(POINT, CIRCLE) takes the same path
    got2 = ids(con, f"adql_contains(list_value(1.0, ra, dec), {sql_list([2, cra, cdec, r])}) = 1")
    assert np.array_equal(got, got2)
    assert len(want) > 0


POLYGON_CASES = [
    # centre ra, dec, radius, vertices, convex
    (53.1, -28.1, 0.2, 4, True),
    (53.1, -28.1, 2.0, 7, True),
    (53.1, -28.1, 2.5, 12, False),
    (0.0, 1.0, 2.0, 5, True),        # across RA = 0/360
    (0.2, 1.0, 2.5, 15, False),
    (120.0, 89.0, 2.5, 6, True),     # around the north pole
    (120.0, 89.0, 2.5, 14, False),
    (200.0, -88.5, 2.5, 10, False),  # around the south pole
]


@pytest.mark.parametrize("case", range(len(POLYGON_CASES)))
@pytest.mark.parametrize("reverse", [False, True])
def test_in_polygon_equals_gnomonic_reference(ro_con, case, reverse):
    con, ra, dec = ro_con
    ra0, dec0, radius, n, convex = POLYGON_CASES[case]
    rng = np.random.default_rng(100 + case)
    vra, vdec = star_polygon(rng, ra0, dec0, radius, n, convex)
    if reverse:            # clockwise input means the same (smaller) region
        vra, vdec = vra[::-1], vdec[::-1]
    want = np.flatnonzero(reference_in_polygon(ra, dec, vra, vdec, ra0, dec0))
    got = ids(con, f"adql_in_polygon(ra, dec, {sql_list(flat(vra, vdec))})")
    assert len(want) > 100
    assert np.array_equal(got, want)
    got2 = ids(con, f"adql_contains(list_value(1.0, ra, dec), {sql_list([3, *flat(vra, vdec)])}) = 1")
    assert np.array_equal(got2, want)


def test_in_polygon_large_and_exotic():
    rng = np.random.default_rng(7)
    ra = rng.random(20000) * 360
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    p = xyz = S.radec_to_xyz(ra, dec)
    # octant: x, y, z > 0
    octant = S.make_polygon([0, 0, 90, 0, 0, 90])
    assert np.array_equal(S.polygon_contains_xyz(octant, xyz), np.all(p > 0, axis=1))
    # a non-convex C-shaped band that holds antipodal pairs (not inside any hemisphere):
    # the band |dec| < 5 from ra 0 to 270 (edges along dec = +-5 are small circles, so use
    # many vertices and test only points well away from the edges)
    lon = np.linspace(0, 270, 28)
    band = [*np.column_stack([lon, np.full_like(lon, -5.0)]).ravel(),
            *np.column_stack([lon[::-1], np.full_like(lon, 5.0)]).ravel()]
    poly = S.make_polygon(band)
    assert poly is not None and not poly.hemisphere
    safe = (np.abs(np.abs(dec) - 5) > 0.2) & (np.abs(ra - 0) > 0.2) & (np.abs(ra - 270) > 0.2) \
        & (np.abs(ra - 360) > 0.2)
    truth = (np.abs(dec) < 5) & (ra < 270)
    got = S.polygon_contains_xyz(poly, xyz)
    assert np.array_equal(got[safe], truth[safe])


def test_in_polygon_nulls_and_invalid(ro_con):
    con, _, _ = ro_con
    q = lambda s: con.execute(s).fetchall()[0][0]  # noqa: E731
    assert q("SELECT adql_in_polygon(NULL, 0, [0, 0, 1, 0, 0, 1]::DOUBLE[])") is None
    assert q("SELECT adql_in_polygon(0.2, 0.2, NULL)") is None
    assert q("SELECT adql_in_polygon(0.2, 0.2, [0, 0, 1, 0]::DOUBLE[])") is None
    # a bow tie is not a simple polygon
    assert q("SELECT adql_in_polygon(0.5, 0.1, [0, 0, 1, 1, 1, 0, 0, 1]::DOUBLE[])") is None
    assert q("SELECT adql_in_polygon(0.2, 0.2, [0, 0, 1, 0, 0, 1]::DOUBLE[])") is True
    assert q("SELECT adql_in_polygon(0.2, 0.2, [0, 0, 0, 1, 1, 0]::DOUBLE[])") is True


# ------------------------------------------------------------------------------------------
# contains / intersects / area / centroid


def _q(con, sql):
    return con.execute(sql).fetchall()[0][0]


SQUARE = [3, 10, 10, 12, 10, 12, 12, 10, 12]          # 2 x 2 deg around (11, 11)
SMALL_SQ = [3, 10.8, 10.8, 11.2, 10.8, 11.2, 11.2, 10.8, 11.2]
WRAP_SQ = [3, 359, -1, 1, -1, 1, 1, 359, 1]           # across RA = 0


@pytest.mark.parametrize("a,b,contains,intersects", [
    ([1, 11, 11], SQUARE, 1, 1),
    ([1, 13, 11], SQUARE, 0, 0),
    ([1, 0.5, 0.2], WRAP_SQ, 1, 1),
    ([1, 359.5, -0.2], WRAP_SQ, 1, 1),
    ([1, 358.5, 0.0], WRAP_SQ, 0, 0),
    ([1, 11, 11], [2, 11, 11.5, 0.6], 1, 1),
    ([2, 11, 11, 0.5], [2, 11, 11.2, 0.8], 1, 1),
    ([2, 11, 11, 0.5], [2, 11, 11.2, 0.6], 0, 1),
    ([2, 11, 11, 0.5], [2, 11, 13, 1.0], 0, 0),
    ([2, 11, 11, 0.5], SQUARE, 1, 1),
    ([2, 11, 11, 1.5], SQUARE, 0, 1),                  # centre inside, overflows
    ([2, 13.2, 11, 1.25], SQUARE, 0, 1),               # centre outside, an edge within r
    ([2, 13.2, 11, 1.0], SQUARE, 0, 0),
    (SMALL_SQ, [2, 11, 11, 0.5], 1, 1),
    (SQUARE, [2, 11, 11, 0.5], 0, 1),
    (SQUARE, [2, 11, 11, 2.0], 1, 1),
    (SQUARE, [2, 11, 11, 175.0], 1, 1),
    (SQUARE, [2, 191, -11, 178.0], 0, 0),              # big circle with the square in its hole
    (SQUARE, [2, 191, -11, 178.8], 0, 1),              # ... whose hole is now too small
    (SMALL_SQ, SQUARE, 1, 1),
    (SQUARE, SMALL_SQ, 0, 1),
    ([3, 11, 9, 11.5, 9, 11.5, 13, 11, 13], SQUARE, 0, 1),   # a cross: no vertex inside
    ([3, 20, 20, 21, 20, 21, 21], SQUARE, 0, 0),
    ([1, 11, 11], [1, 11, 11], 1, 1),
    ([1, 0, 11], [1, 360, 11], 1, 1),
    ([1, 11, 11], [1, 11, 11.001], 0, 0),
])
def test_contains_intersects(ro_con, a, b, contains, intersects):
    con, _, _ = ro_con
    assert _q(con, f"SELECT adql_contains({sql_list(a)}, {sql_list(b)})") == contains
    assert _q(con, f"SELECT adql_intersects({sql_list(a)}, {sql_list(b)})") == intersects
    assert _q(con, f"SELECT adql_intersects({sql_list(b)}, {sql_list(a)})") == intersects


def test_contains_null_and_garbage(ro_con):
    con, _, _ = ro_con
    assert _q(con, f"SELECT adql_contains(NULL, {sql_list(SQUARE)})") is None
    assert _q(con, f"SELECT adql_contains(NULL::DOUBLE[], {sql_list([2, 1, 2, 3])})") is None
    assert _q(con, f"SELECT adql_intersects({sql_list([2, 1, 2, 3])}, NULL)") is None
    assert _q(con, f"SELECT adql_contains({sql_list([1, 11, 11])}, NULL)") is None
    assert _q(con, f"SELECT adql_contains({sql_list([1, 11, 11])}, {sql_list([7, 1, 2])})") is None
    assert _q(con, f"SELECT adql_intersects({sql_list([1, 11, 95])}, {sql_list(SQUARE)})") is None


def test_area_and_centroid(ro_con):
    con, _, _ = ro_con
    octant = 4 * math.pi / 8 * (180 / math.pi) ** 2
    assert octant == pytest.approx(5156.62, abs=0.01)
    assert _q(con, f"SELECT adql_area({sql_list([3, 0, 0, 90, 0, 0, 90])})") == \
        pytest.approx(octant, rel=1e-12)
    assert _q(con, f"SELECT adql_area({sql_list([3, 0, 0, 0, 90, 90, 0])})") == \
        pytest.approx(octant, rel=1e-12)                   # winding does not matter
    r = 0.7
    assert _q(con, f"SELECT adql_area({sql_list([2, 10, 20, r])})") == \
        pytest.approx(2 * math.pi * (1 - math.cos(math.radians(r))) * (180 / math.pi) ** 2,
                      rel=1e-12)
    assert _q(con, f"SELECT adql_area({sql_list([1, 10, 20])})") == 0.0
    # a CCD-sized polygon: planar shoelace in the tangent plane vs spherical excess
    vra = np.array([53.27, 53.07, 52.92, 53.12])
    vdec = np.array([-27.68, -27.82, -27.65, -27.51])
    x, y, _ = gnomonic(vra, vdec, vra.mean(), vdec.mean())
    planar = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) * (180 / math.pi) ** 2
    got = _q(con, f"SELECT adql_area(adql_region('POLYGON ICRS {' '.join(map(str, flat(vra, vdec)))}'))")
    assert got == pytest.approx(planar, rel=1e-4)
    # centroid of the octant lies on the diagonal
    c = con.execute(f"SELECT adql_centroid({sql_list([3, 0, 0, 90, 0, 0, 90])})").fetchall()[0][0]
    assert c[0] == 1 and c[1] == pytest.approx(45.0) and \
        c[2] == pytest.approx(math.degrees(math.asin(1 / math.sqrt(3))))
    c = con.execute(f"SELECT adql_centroid({sql_list(WRAP_SQ)})").fetchall()[0][0]
    assert min(c[1], 360 - c[1]) < 1e-9 and abs(c[2]) < 1e-9
    assert con.execute(f"SELECT adql_coord1({sql_list([1, 10.5, -20])}), "
                   f"adql_coord2({sql_list([1, 10.5, -20])})").fetchall()[0] == (10.5, -20.0)
    assert _q(con, "SELECT adql_area(NULL)") is None


# ------------------------------------------------------------------------------------------
# region text


@pytest.mark.parametrize("text,want", [
    ("POLYGON ICRS 10 10 10.2 10 10.2 10.2 10.0 10.2", [3, 10, 10, 10.2, 10, 10.2, 10.2, 10, 10.2]),
    ("Polygon 10 10 10.2 10 10.2 10.2 10.0 10.2", [3, 10, 10, 10.2, 10, 10.2, 10.2, 10, 10.2]),
    ("10 10 10.2 10 10.2 10.2 10.0 10.2", [3, 10, 10, 10.2, 10, 10.2, 10.2, 10, 10.2]),
    # clockwise input comes back in DALI's (counter-clockwise) order
    ("10 10 10.0 10.2 10.2 10.2 10.2 10", [3, 10.2, 10, 10.2, 10.2, 10.0, 10.2, 10, 10]),
    ("CIRCLE ICRS 12.5 -30 0.25", [2, 12.5, -30, 0.25]),
    ("circle icrs geocenter 12.5 -30 0.25", [2, 12.5, -30, 0.25]),
    ("CIRCLE -12.5 -30 0.25", [2, 347.5, -30, 0.25]),
    ("12.5 -30 0.25", [2, 12.5, -30, 0.25]),
    ("POSITION ICRS 1 2", [1, 1, 2]),
    ("POINT 1 2", [1, 1, 2]),
    ("1.5e1 2", [1, 15, 2]),
])
def test_region_parsing(ro_con, text, want):
    con, _, _ = ro_con
    got = con.execute("SELECT adql_region(?)", [text]).fetchall()[0][0]
    assert got == pytest.approx(want, abs=1e-12)


def test_region_box_and_dali_roundtrip(ro_con):
    con, _, _ = ro_con
    box = con.execute("SELECT adql_region('BOX ICRS 25.4 -20 10 10')").fetchall()[0][0]
    assert box[0] == 3 and len(box) == 9
    # the arms: distance from the centre to each side's midpoint is half the size
    v = np.array(box[1:]).reshape(4, 2)
    mids = [S.xyz_to_radec(S.radec_to_xyz(*v[i]) + S.radec_to_xyz(*v[(i + 1) % 4]))
            for i in range(4)]
    for m in mids:
        assert S.distance(25.4, -20, *m) == pytest.approx(5.0, abs=1e-9)
    assert _q(con, f"SELECT adql_area({sql_list(box)})") == pytest.approx(
        _q(con, "SELECT adql_area(adql_region('POLYGON ' || adql_dali(adql_region("
                "'BOX 25.4 -20 10 10'))))"), rel=1e-12)
    s = "53.12 -27.51 52.92 -27.65 53.07 -27.82 53.27 -27.68"
    assert _q(con, f"SELECT adql_dali(adql_region('{s}'))") == s
    assert _q(con, f"SELECT adql_dali({sql_list([1, 10, 20])})") == "10.0 20.0"
    assert _q(con, f"SELECT adql_dali({sql_list([2, 10, 20, 0.5])})") == "10.0 20.0 0.5"


@pytest.mark.parametrize("text", [
    "", "garbage", "POLYGON", "POLYGON ICRS 1 2 3 4", "POLYGON ICRS 1 2 3 4 5", "CIRCLE 1 2",
    "CIRCLE ICRS 1 2 -3", "CIRCLE ICRS 1 2 181", "CIRCLE GALACTIC 1 2 3", "POINT 1 95",
    "POLYGON ICRS 1 2 3 4 5 six", "UNION (CIRCLE 1 2 3)", "1 2 3 4", "POLYGON ICRS 0 0 1 1 1 0 0 1",
    "POLYGON 1 1 1 1 1 1", "BOX 1 2 0 1", "POINT nan 1", "CIRCLE ICRS ICRS 1 2 3", None,
])
def test_region_garbage_is_null(ro_con, text):
    con, _, _ = ro_con
    assert con.execute("SELECT adql_region(?::VARCHAR)", [text]).fetchall()[0][0] is None


# ------------------------------------------------------------------------------------------
# HEALPix cover


def _in_ranges(hp, ranges):
    lo = np.array([a for a, _ in ranges], dtype=np.int64)
    hi = np.array([b for _, b in ranges], dtype=np.int64)
    k = np.searchsorted(lo, hp, side="right") - 1
    return (k >= 0) & (hp <= hi[np.maximum(k, 0)])


def _hp16(ra, dec):
    from cdshealpix.nested import lonlat_to_healpix
    return lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg), 16).astype(np.int64)


PIX16_DEG2 = 4 * math.pi / (12 * 4 ** 16) * (180 / math.pi) ** 2


def _check_cover(ranges, ra, dec, shape_area):
    assert len(ranges) <= 64
    assert all(a <= b for a, b in ranges)
    assert all(ranges[i][1] < ranges[i + 1][0] for i in range(len(ranges) - 1))
    hp = _hp16(ra, dec)
    assert np.all(_in_ranges(hp, ranges))
    covered = sum(b - a + 1 for a, b in ranges) * PIX16_DEG2
    if shape_area > 0.01:
        assert covered < 10 * shape_area


def test_healpix_ranges_circles_superset():
    rng = np.random.default_rng(3)
    centres = [(rng.random() * 360, np.degrees(np.arcsin(rng.uniform(-1, 1)))) for _ in range(30)]
    centres += [(0.0, 0.0), (359.99, 12.0), (0.01, -40.0), (45.0, 90.0), (0.0, -89.99),
                (300.0, 89.9), (53.1, -28.1)]
    for _i, (ra, dec) in enumerate(centres):
        r = float(10 ** rng.uniform(-3.5, 0.7))
        ranges = cover.healpix_ranges("circle", (ra, dec, r))
        pra, pdec = random_in_cap(rng, ra, dec, r, 4000)
        # and points right at the edge
        pa = rng.random(2000) * 360
        e = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(
            pa * u.deg, (r * (1 - 1e-12)) * u.deg)
        pra, pdec = np.concatenate([pra, e.ra.deg]), np.concatenate([pdec, e.dec.deg])
        keep = S.in_circle(pra, pdec, ra, dec, r)
        _check_cover(ranges, pra[keep], pdec[keep], 2 * math.pi * (1 - math.cos(math.radians(r)))
                     * (180 / math.pi) ** 2)


def test_healpix_ranges_polygons_superset():
    rng = np.random.default_rng(4)
    cases = [(rng.random() * 360, np.degrees(np.arcsin(rng.uniform(-0.95, 0.95))),
              float(10 ** rng.uniform(-2, 0.5)), int(rng.integers(3, 12)), bool(rng.random() < .5))
             for _ in range(25)]
    cases += [(0.0, 0.0, 1.0, 5, True), (359.9, 30.0, 0.5, 8, False), (10.0, 89.5, 2.0, 6, True),
              (10.0, -89.0, 3.0, 9, False), (53.1, -28.1, 0.12, 4, True)]
    for ra0, dec0, radius, n, convex in cases:
        vra, vdec = star_polygon(rng, ra0, dec0, radius, n, convex)
        poly = S.make_polygon(flat(vra, vdec))
        if poly is None:          # a random star can come out degenerate; skip it
            continue
        ranges = cover.healpix_ranges("polygon", flat(vra, vdec))
        pra, pdec = random_in_cap(rng, ra0, dec0, radius * 1.01, 20000)
        # points hugging the edges, nudged 1e-10 rad inwards
        t = rng.random(3000)
        k = rng.integers(0, len(poly.v), 3000)
        w = np.roll(poly.v, -1, axis=0)
        e = S._unit(poly.v[k] * (1 - t)[:, None] + w[k] * t[:, None] + 1e-10 * poly.n[k])
        era, edec = S.xyz_to_radec(e)
        pra, pdec = np.concatenate([pra, era]), np.concatenate([pdec, edec])
        keep = S.polygon_contains_xyz(poly, S.radec_to_xyz(pra, pdec))
        assert keep.sum() > 100
        _check_cover(ranges, pra[keep], pdec[keep], poly.area * S.SR_TO_DEG2)


def test_merge_ranges_only_grows():
    lo = np.array([0, 10, 30, 31, 100, 200])
    hi = np.array([5, 20, 30, 40, 150, 201])
    assert cover.merge_ranges(lo, hi, 64) == [(0, 5), (10, 20), (30, 40), (100, 150), (200, 201)]
    assert cover.merge_ranges(lo, hi, 3) == [(0, 40), (100, 150), (200, 201)]
    assert cover.merge_ranges(lo, hi, 1) == [(0, 201)]


def test_pruned_cone_equals_brute_force(tmp_path):
    """1M points ordered by _healpix: the HEALPix range filter never changes a result."""
    import pyarrow as pa
    rng = np.random.default_rng(5)
    parts = [random_in_cap(rng, ra, dec, r, n) for ra, dec, r, n in
             [(53.1, -28.1, 2.0, 600_000), (0.0, 0.0, 2.0, 200_000), (75.0, 89.0, 2.0, 200_000)]]
    ra = np.concatenate([p[0] for p in parts])
    dec = np.concatenate([p[1] for p in parts])
    path = tmp_path / "cone.duckdb"
    con = duckdb.connect(str(path))
    con.register("src", pa.table({"ra": ra, "dec": dec, "_healpix": _hp16(ra, dec)}))
    con.execute("CREATE TABLE t AS SELECT * FROM src ORDER BY _healpix")
    con.close()
    con = duckdb.connect(str(path), read_only=True, config=READ_CONFIG)
    duckdb_functions.register(con)
    centres = [(53.1, -28.1), (0.0, 0.0), (75.0, 89.0)]
    for i in range(50):
        cra, cdec = centres[i % 3]
        ra_c, dec_c = random_in_cap(rng, cra, cdec, 1.5, 1)
        r = float(10 ** rng.uniform(-2, 0))
        ra_c, dec_c = float(ra_c[0]), float(dec_c[0])
        cone = f"adql_in_circle(ra, dec, {ra_c!r}, {dec_c!r}, {r!r})"
        where = cover.healpix_filter_sql(cover.healpix_ranges("circle", (ra_c, dec_c, r)))
        pruned = con.execute(f"SELECT count(*) FROM t WHERE {where} AND {cone}").fetchall()[0][0]
        brute = con.execute(f"SELECT count(*) FROM t WHERE {cone}").fetchall()[0][0]
        assert pruned == brute and brute > 0
    # a polygon as well
    vra, vdec = star_polygon(rng, 0.0, 0.0, 0.8, 9, False)
    poly = sql_list(flat(vra, vdec))
    where = cover.healpix_filter_sql(cover.healpix_ranges("polygon", flat(vra, vdec)))
    pruned = con.execute(f"SELECT count(*) FROM t WHERE {where} AND adql_in_polygon(ra, dec, {poly})"
                         ).fetchall()[0][0]
    brute = con.execute(f"SELECT count(*) FROM t WHERE adql_in_polygon(ra, dec, {poly})"
                        ).fetchall()[0][0]
    assert pruned == brute > 0
    con.close()


def test_register_is_idempotent_on_read_only(ro_con):
    con, _, _ = ro_con
    duckdb_functions.register(con)
    assert _q(con, "SELECT adql_in_circle(10, 10, 10, 10.5, 0.6)") is True


def test_polygon_column_against_circle_batched_equals_scalar(ro_con):
    """The batched path (a column of s_region polygons vs one circle) agrees with the
    row-by-row shapes, for INTERSECTS and CONTAINS, convex and not, in both windings."""
    import pyarrow as pa
    con, _, _ = ro_con
    rng = np.random.default_rng(9)
    texts = []
    for i in range(400):
        ra0, dec0 = random_in_cap(rng, 0.0, 0.0, 3.0, 1)
        vra, vdec = star_polygon(rng, float(ra0[0]), float(dec0[0]), rng.uniform(0.05, 1.0),
                                 int(rng.integers(3, 7)), bool(i % 2))
        if i % 3 == 0:
            vra, vdec = vra[::-1], vdec[::-1]
        texts.append("POLYGON ICRS " + " ".join(f"{x:.6f}" for x in flat(vra, vdec)))
    texts += ["garbage", None]
    con.register("regions", pa.table({"id": np.arange(len(texts)), "s": texts}))
    for circle in ([2.0, 0.3, -0.2, 1.0], [2.0, 359.0, 1.0, 2.5], [2.0, 0.0, 0.0, 100.0]):
        got = con.execute(
            f"SELECT adql_intersects(adql_region(s), {sql_list(circle)}) AS i, "
            f"adql_contains(adql_region(s), {sql_list(circle)}) AS c, "
            f"adql_intersects({sql_list(circle)}, adql_region(s)) AS j FROM regions ORDER BY id"
        ).fetchnumpy()
        sc = G.shape(circle)
        want_i = [None if G.shape(G.parse_region(t)) is None else
                  int(G.intersects(G.shape(G.parse_region(t)), sc)) for t in texts]
        want_c = [None if G.shape(G.parse_region(t)) is None else
                  int(G.contains(G.shape(G.parse_region(t)), sc)) for t in texts]
        as_list = lambda a: [None if np.ma.is_masked(x) else int(x) for x in a]  # noqa: E731
        assert as_list(got["i"]) == want_i
        assert as_list(got["j"]) == want_i
        assert as_list(got["c"]) == want_c
        assert 0 < sum(x or 0 for x in want_i) < len(texts) - 2 or circle[3] == 100.0
    con.unregister("regions")
