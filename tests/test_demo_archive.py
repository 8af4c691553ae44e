"""Facts about the demo archive, checked on a real small build (DuckDB file, FITS bytes)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from diavo.server.archive import store
from diavo.server.archive.demo.build import build_demo
from diavo.server.archive.export import export_parquet
from diavo.server.archive.images.access import ImageNotFound, ImageStore
from diavo.server.archive.images.spec import ImageSpec

SEED_RA, SEED_DEC = 53.125, -27.740
SEED_T1_TAI = 60623.0  # 2024-11-09T00:00:00 TAI
SEED_T2_TAI = 60624.0
TAI_MINUS_UTC = 37.0 / 86400


def unit(ra, dec):
    ra, dec = np.deg2rad(ra), np.deg2rad(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def parse_stcs(region: str):
    parts = region.split()
    assert parts[:2] == ["POLYGON", "ICRS"], region
    v = np.array([float(p) for p in parts[2:]]).reshape(-1, 2)
    return v[:, 0], v[:, 1]


def inside_polygon(region: str, ra, dec) -> np.ndarray:
    """Exact spherical test for a convex polygon wound as DALI requires.

    DALI 1.1 wants vertices counter-clockwise as seen from the origin toward the sky; seen that
    way, each edge's normal v_i x v_(i+1) points away from the polygon's inside.
    """
    vra, vdec = parse_stcs(region)
    verts = unit(vra, vdec)
    p = unit(np.atleast_1d(ra), np.atleast_1d(dec))
    ok = np.ones(p.shape[0], dtype=bool)
    for i in range(len(verts)):
        n = np.cross(verts[i], verts[(i + 1) % len(verts)])
        ok &= p @ n < 0
    return ok


def specs(con) -> list[ImageSpec]:
    cur = con.execute("SELECT * FROM diavo.image ORDER BY visit, detector")
    names = [d[0] for d in cur.description]
    return [ImageSpec.from_record(dict(zip(names, r, strict=False))) for r in cur.fetchall()]


def seed_query(con) -> list[tuple[int, int]]:
    """The tutorial's Butler query, asked of ObsCore: r band, timespan overlap, footprint contains."""
    rows = con.execute(
        'SELECT lsst_visit, lsst_detector, s_region FROM ivoa."ObsCore" '
        "WHERE lsst_band = 'r' AND t_max > ? AND t_min < ? ORDER BY t_min, lsst_detector",
        [SEED_T1_TAI - TAI_MINUS_UTC, SEED_T2_TAI - TAI_MINUS_UTC]).fetchall()
    return [(v, d) for v, d, reg in rows if inside_polygon(reg, SEED_RA, SEED_DEC)[0]]


def test_counts_are_dp1_shaped(small_archive):
    root, info = small_archive
    assert 200 <= info["images"] <= 600
    assert 10_000 <= info["diasources"] <= 100_000
    con = store.connect(root)
    n_obscore, n_sub, n_lvl = con.execute(
        "SELECT count(*), count(DISTINCT dataproduct_subtype), min(calib_level) FROM ivoa.\"ObsCore\"").fetchone()
    assert n_obscore == info["images"] and n_sub == 1 and n_lvl == 3
    row = con.execute("SELECT dataproduct_type, dataproduct_subtype, instrument_name, facility_name, "
                      "obs_collection, access_format, s_xel1, s_xel2 FROM ivoa.\"ObsCore\" LIMIT 1").fetchone()
    assert row == ("image", "lsst.difference_image", "LSSTComCam", "Rubin:Simonyi", "LSST.DP1",
                   "application/x-votable+xml;content=datalink", 4072, 4000)
    visits = [v for (v,) in con.execute("SELECT visit FROM dp1.Visit").fetchall()]
    assert all(20241024 <= v // 100000 <= 20241211 for v in visits)
    assert con.execute("SELECT count(*) FROM dp1.DiaSource s LEFT JOIN dp1.Visit v USING (visit) "
                       "WHERE v.visit IS NULL").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM dp1.DiaSource s LEFT JOIN dp1.DiaObject o USING (diaObjectId) "
                       "WHERE o.diaObjectId IS NULL").fetchone()[0] == 0
    n_obj, total = con.execute("SELECT count(*), sum(nDiaSources) FROM dp1.DiaObject").fetchone()
    assert total == info["diasources"] and n_obj == info["diaobjects"]


def test_seed_query_matches_dp1(small_archive):
    con = store.connect(small_archive[0])
    hits = seed_query(con)
    assert 10 <= len(hits) <= 24, hits  # DP1 answers 16
    assert hits[0] == (2024110800246, 2)  # the tutorial's first image


def test_sources_lie_in_their_image_and_follow_its_wcs(small_archive):
    con = store.connect(small_archive[0])
    by_image = {(s.visit, s.detector): s for s in specs(con)}
    src = con.execute("SELECT visit, detector, ra, dec, x, y FROM dp1.DiaSource").fetchnumpy()
    assert len(src["x"]) > 0
    worst = 0.0
    for key, spec in by_image.items():
        sel = (src["visit"] == key[0]) & (src["detector"] == key[1])
        if not sel.any():
            continue
        x, y = src["x"][sel], src["y"][sel]
        assert np.all((x >= 0) & (x <= spec.width - 1) & (y >= 0) & (y <= spec.height - 1))
        px, py = spec.astropy_wcs().all_world2pix(src["ra"][sel], src["dec"][sel], 0)
        worst = max(worst, float(np.max(np.hypot(px - x, py - y))))
    assert worst < 0.01, worst


def test_wcs_of_served_fits_matches_catalog(small_archive):
    root = small_archive[0]
    images = ImageStore(root)
    con = store.connect(root)
    visit, detector = con.execute("SELECT visit, detector FROM dp1.DiaSource GROUP BY ALL ORDER BY count(*) DESC LIMIT 1").fetchone()
    src = con.execute("SELECT ra, dec, x, y FROM dp1.DiaSource WHERE visit=? AND detector=?", [visit, detector]).fetchnumpy()
    with fits.open(io.BytesIO(images.fits_bytes(visit, detector, region=(0, 0, 64, 64)))) as hdul:
        wcs = WCS(hdul["IMAGE"].header)
        assert hdul[0].header["LTV1"] == 0
    px, py = wcs.all_world2pix(src["ra"], src["dec"], 0)
    assert np.max(np.hypot(px - src["x"], py - src["y"])) < 0.01


def test_s_region_contains_inner_corners_and_centre(small_archive):
    con = store.connect(small_archive[0])
    regions = dict(((v, d), r) for v, d, r in con.execute(
        'SELECT lsst_visit, lsst_detector, s_region FROM ivoa."ObsCore"').fetchall())
    for spec in specs(con):
        region = regions[(spec.visit, spec.detector)]
        xs = np.array([1, spec.width - 2, spec.width - 2, 1, (spec.width - 1) / 2])
        ys = np.array([1, 1, spec.height - 2, spec.height - 2, (spec.height - 1) / 2])
        ra, dec = spec.pixel_to_sky(xs, ys)
        assert inside_polygon(region, ra, dec).all(), (spec.visit, spec.detector)
        # And a point well outside the CCD is outside the footprint.
        ra_out, dec_out = spec.pixel_to_sky(np.array([-300.0]), np.array([spec.height / 2]))
        assert not inside_polygon(region, ra_out, dec_out)[0]


def test_image_noise_agrees_with_variance_and_regions_are_exact(small_archive):
    root = small_archive[0]
    images = ImageStore(root)
    visit, detector = 2024110800246, 4
    spec, full = images.planes(visit, detector)
    assert full.image.shape == (spec.height, spec.width)
    assert 250 < float(full.variance.mean()) < 400  # r band, like the tutorial's 309
    quiet = (full.mask == 0)
    pull = full.image[quiet] / np.sqrt(full.variance[quiet])
    robust_std = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert abs(robust_std - 1.0) < 0.02
    for region in [(0, 0, 200, 200), (1000, 1500, 1200, 1700), (3950, 3870, 4072, 4000)]:
        _, part = images.planes(visit, detector, region)
        x0, y0, x1, y1 = region
        for plane in ("image", "mask", "variance"):
            assert np.array_equal(getattr(part, plane), getattr(full, plane)[y0:y1, x0:x1]), (region, plane)
    with pytest.raises(ImageNotFound):
        images.planes(visit, 99)


def test_sources_are_painted_at_their_positions(small_archive):
    root = small_archive[0]
    images = ImageStore(root)
    con = store.connect(root)
    visit, detector = 2024110800246, 4
    src = con.execute("SELECT x, y, psfFlux FROM dp1.DiaSource WHERE visit=? AND detector=? "
                      "AND x BETWEEN 40 AND 4030 AND y BETWEEN 40 AND 3960 ORDER BY abs(psfFlux) DESC LIMIT 5",
                      [visit, detector]).fetchall()
    assert src
    for x, y, flux in src:
        xi, yi = int(round(x)), int(round(y))
        _, p = images.planes(visit, detector, (xi - 15, yi - 15, xi + 16, yi + 16))
        measured = float(p.image.sum())
        noise = float(np.sqrt(p.variance.sum()))
        assert abs(measured - flux) < 5 * noise + 0.02 * abs(flux), (x, y, flux, measured)
        bit = 1 << (5 if flux > 0 else 6)  # DETECTED / DETECTED_NEGATIVE
        assert p.mask[15, 15] & bit


def test_two_builds_give_identical_catalogs(small_archive, tmp_path):
    root = small_archive[0]
    again = tmp_path / "again"
    build_demo(again, scale="small", seed=42, progress=False)
    a = export_parquet(root, tmp_path / "a")
    b = export_parquet(again, tmp_path / "b")
    assert set(a) == {"ivoa.ObsCore", "dp1.DiaSource", "dp1.DiaObject", "dp1.Visit"}
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    other = tmp_path / "other"
    build_demo(other, scale="small", seed=7, progress=False)
    c = export_parquet(other, tmp_path / "c")
    assert c["dp1.DiaSource"].read_bytes() != a["dp1.DiaSource"].read_bytes()


def test_export_round_trips(small_archive, tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    root = small_archive[0]
    out = export_parquet(root, tmp_path / "pq")
    con = store.connect(root)
    for name, path in out.items():
        schema, table = name.split(".")
        exported = pq.read_table(path)
        n = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
        assert exported.num_rows == n
        # DuckDB reads the file and finds the very same rows.
        cols = ", ".join(f'"{c}"' for c in exported.column_names)
        diff = duckdb.connect().execute(
            f"ATTACH '{root / store.CATALOG}' AS cat (READ_ONLY); "
            f"SELECT count(*) FROM (SELECT {cols} FROM '{path}' EXCEPT SELECT {cols} FROM cat.\"{schema}\".\"{table}\")"
        ).fetchone()[0]
        assert diff == 0, name
    src = pq.read_table(out["dp1.DiaSource"], columns=["ra", "dec", "psfFlux"])
    assert src.schema.field("psfFlux").metadata[b"unit"] == b"nJy"
    hpx = store.healpix_index(src["ra"].to_numpy(), src["dec"].to_numpy())
    assert np.all(np.diff(hpx) >= 0)  # HEALPix-ordered


def test_diaobject_statistics_summarise_their_sources(small_archive):
    con = store.connect(small_archive[0])
    obj_id, n = con.execute("SELECT diaObjectId, nDiaSources FROM dp1.DiaObject ORDER BY nDiaSources DESC, diaObjectId LIMIT 1").fetchone()
    assert n >= 5
    src = con.execute("SELECT band, psfFlux, psfFluxErr, midpointMjdTai, ra, dec FROM dp1.DiaSource WHERE diaObjectId = ?",
                      [obj_id]).fetchnumpy()
    assert len(src["band"]) == n
    band = src["band"][0]
    sel = src["band"] == band
    f = src["psfFlux"][sel].astype(float)
    e = src["psfFluxErr"][sel].astype(float)
    t = src["midpointMjdTai"][sel]
    row = con.execute(
        f"SELECT {band}_psfFluxMean, {band}_psfFluxMeanErr, {band}_psfFluxNdata, {band}_psfFluxMin, {band}_psfFluxMax, "
        f"{band}_psfFluxPercentile50, {band}_psfFluxSigma, {band}_psfFluxChi2, {band}_psfFluxLinearSlope, ra, dec "
        "FROM dp1.DiaObject WHERE diaObjectId = ?", [obj_id]).fetchone()
    w = 1 / e**2
    mean = np.sum(f * w) / np.sum(w)
    assert row[0] == pytest.approx(mean, rel=1e-6)
    assert row[1] == pytest.approx(np.sqrt(1 / np.sum(w)), rel=1e-6)
    assert row[2] == sel.sum()
    assert (row[3], row[4]) == pytest.approx((f.min(), f.max()), rel=1e-6)
    assert row[5] == pytest.approx(np.percentile(f, 50), rel=1e-6)
    assert row[6] == pytest.approx(np.std(f, ddof=1), rel=1e-6)
    assert row[7] == pytest.approx(np.sum(((f - mean) / e) ** 2), rel=1e-6)
    assert row[8] == pytest.approx(np.polyfit(t, f, 1)[0], rel=1e-4)
    assert row[9] == pytest.approx(np.mean(src["ra"]), abs=1e-5)
    assert row[10] == pytest.approx(np.mean(src["dec"]), abs=1e-5)


def test_image_sources_lookup_equals_full_scan(small_archive):
    """The HEALPix-narrowed lookup the pixel path uses misses no DiaSource of any image."""
    root = small_archive[0]
    images = ImageStore(root)
    con = store.connect(root)
    full = con.execute("SELECT visit, detector, list(diaSourceId ORDER BY diaSourceId) FROM dp1.DiaSource GROUP BY ALL").fetchall()
    assert len(full) > 300
    for visit, detector, ids in full:
        assert list(images.sources(visit, detector).ids) == ids, (visit, detector)


def test_stored_unit_vectors_match_positions(small_archive):
    """The hidden _x/_y/_z columns the cone fast path reads agree with (ra, dec)."""
    from astropy.coordinates import SkyCoord

    con = store.connect(small_archive[0])
    for table in ("DiaSource", "DiaObject"):
        t = con.execute(f'SELECT ra, dec, _x, _y, _z FROM dp1."{table}" USING SAMPLE 2000 ROWS (reservoir, 1)').fetchnumpy()
        ref = SkyCoord(t["ra"], t["dec"], unit="deg").cartesian
        err = np.abs(np.stack([t["_x"] - ref.x.value, t["_y"] - ref.y.value, t["_z"] - ref.z.value]))
        assert err.max() < 1e-12, table
