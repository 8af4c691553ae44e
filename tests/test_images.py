"""Synthetic difference images: PSF model, deterministic pixels, cut-out consistency, FITS."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from diavo.server.archive.images.fitsio import exposure_bytes, exposure_hdulist, read_exposure
from diavo.server.archive.images.spec import ImageSpec
from diavo.server.archive.images.synth import (
    EDGE_WIDTH,
    SAT_LEVEL,
    TILE,
    SourceList,
    _bad_column,
    render,
)
from diavo.shared.masks import MASK_PLANES, planes_from_header
from diavo.shared.psf import GaussianPsfModel

BIT = {name: 1 << bit for name, bit in MASK_PLANES.items()}

# Hand-placed sources (x, y, flux nJy) the tests look at; random ones keep clear of them.
NAMED = {
    "pos": (1500.3, 1200.7, 3.0e4),
    "neg": (2500.6, 2200.2, -2.5e4),
    "sat": (3000.0, 800.0, 3.0e6),
    "tile_corner": (255.6, 256.4, 8.0e3),  # stamp spans four tiles
    "tile_edge_neg": (767.5, 511.5, -6.0e3),
    "faint": (2000.2, 3000.8, 60.0),  # far below detection
    "left_edge": (3.2, 1000.0, 5.0e3),
    "corner": (4070.0, 3998.0, 1.0e4),
}


def make_spec(seed: int = 123) -> ImageSpec:
    psf = GaussianPsfModel.random(np.random.default_rng(7), 4072, 4000)
    return ImageSpec(
        visit=2024110800247, detector=4, band="r", physical_filter="r_03", day_obs=20241108,
        boresight_ra=53.2, boresight_dec=-28.0, rotation_deg=30.0, obs_start_mjd_tai=60623.2593,
        exp_time=30.0, airmass=1.038, par_angle_rad=1.78496, altitude_deg=74.4,
        azimuth_deg=121.0, air_pressure_pa=74135.0, air_temperature_c=14.375,
        humidity_pct=17.05, psf=psf, var_level=300.0, var_grad_x=0.12, var_grad_y=-0.08,
        seed=seed,
    )


def make_sources(n_random: int = 150) -> SourceList:
    rng = np.random.default_rng(99)
    named = np.array(list(NAMED.values()))
    x = rng.uniform(0, 4072, 4 * n_random)
    y = rng.uniform(0, 4000, 4 * n_random)
    far = np.min(np.hypot(x[:, None] - named[:, 0], y[:, None] - named[:, 1]), axis=1) > 60
    x, y = x[far][:n_random], y[far][:n_random]
    flux = rng.choice([-1.0, 1.0], n_random) * 10 ** rng.uniform(2.5, 4.5, n_random)
    xs = np.concatenate([named[:, 0], x])
    ys = np.concatenate([named[:, 1], y])
    fs = np.concatenate([named[:, 2], flux])
    ids = rng.permutation(len(xs)).astype(np.int64) * 7 + 1000  # unsorted on purpose
    return SourceList(xs, ys, fs, ids)


@pytest.fixture(scope="module")
def spec():
    return make_spec()


@pytest.fixture(scope="module")
def sources():
    return make_sources()


@pytest.fixture(scope="module")
def full(spec, sources):
    return render(spec, sources)


@pytest.fixture(scope="module")
def clean(spec, sources):
    return render(spec, sources, noise=False)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_planes_equal_slice(part, whole):
    h, w = part.image.shape
    sl = (slice(part.y0 - whole.y0, part.y0 - whole.y0 + h), slice(part.x0 - whole.x0, part.x0 - whole.x0 + w))
    for name in ("image", "mask", "variance"):
        assert same_bits(getattr(part, name), np.ascontiguousarray(getattr(whole, name)[sl])), name


def aperture_sum(arr, x0, y0, x, y, r):
    """Sum of arr (element [0, 0] at parent pixel (x0, y0)) over pixel centres within r of (x, y)."""
    lo_x, lo_y = max(int(x - r) - 1 - x0, 0), max(int(y - r) - 1 - y0, 0)
    cut = arr[lo_y: int(y + r) + 2 - y0, lo_x: int(x + r) + 2 - x0]
    yy, xx = np.mgrid[0: cut.shape[0], 0: cut.shape[1]]
    sel = np.hypot(xx + lo_x + x0 - x, yy + lo_y + y0 - y) <= r
    return float(cut[sel].astype(np.float64).sum())


# -- PSF -------------------------------------------------------------------------------------
def test_psf_kernel_normalised_and_moments(spec):
    psf = spec.psf
    for x, y in [(100.0, 100.0), (2036.37, 1999.81), (4000.5, 20.2)]:
        img, x0, y0 = psf.kernel(x, y)
        assert img.shape[0] == img.shape[1] and img.shape[0] % 2 == 1
        assert img.sum() == pytest.approx(1.0, abs=1e-12)
        yy, xx = np.mgrid[0: img.shape[0], 0: img.shape[1]]
        px, py = xx + x0, yy + y0
        cx, cy = (img * px).sum(), (img * py).sum()
        assert cx == pytest.approx(x, abs=1e-3) and cy == pytest.approx(y, abs=1e-3)
        mxx = (img * (px - cx) ** 2).sum()
        myy = (img * (py - cy) ** 2).sum()
        mxy = (img * (px - cx) * (py - cy)).sum()
        ixx, iyy, ixy = psf.moments(x, y)
        assert mxx == pytest.approx(ixx, rel=0.02)
        assert myy == pytest.approx(iyy, rel=0.02)
        assert mxy == pytest.approx(ixy, abs=0.02 * np.sqrt(ixx * iyy))
        assert psf.determinant_radius(x, y) == pytest.approx((ixx * iyy - ixy**2) ** 0.25)
        assert 1.5 < psf.determinant_radius(x, y) < 2.4


def test_psf_moments_vectorised_and_linear(spec):
    psf = spec.psf
    xs, ys = np.array([0.0, 2036.0, 4071.0]), np.array([0.0, 2000.0, 3999.0])
    ixx, iyy, ixy = psf.moments(xs, ys)
    assert ixx.shape == (3,)
    assert ixx[1] == pytest.approx(psf.ixx[0], rel=1e-3)  # centre of the CCD
    assert psf.moments(xs[2], ys[2])[0] == pytest.approx(ixx[2])
    assert np.allclose(psf.determinant_radius(xs, ys), (ixx * iyy - ixy**2) ** 0.25)


def test_psf_stamp_value_is_a_density():
    off = np.arange(-20, 21, dtype=float)
    v = GaussianPsfModel.stamp_value(off[None, :], off[:, None], 3.36, 3.86, 0.12)
    assert v.sum() == pytest.approx(1.0, abs=1e-6)
    assert GaussianPsfModel.stamp_value(0.0, 0.0, 3.36, 3.86, 0.12) == pytest.approx(
        1 / (2 * np.pi * np.sqrt(3.36 * 3.86 - 0.12**2)))


def test_psf_random_is_realistic_and_serialises():
    rng = np.random.default_rng(0)
    for _ in range(50):
        psf = GaussianPsfModel.random(rng, 4072, 4000)
        r = psf.determinant_radius(np.array([0, 4071]), np.array([0, 3999]))
        assert np.all((r > 1.5) & (r < 2.45))
        ixx, iyy, ixy = psf.moments(2036, 2000)
        assert abs(ixx - iyy) / (ixx + iyy) < 0.15 and abs(ixy) / (ixx + iyy) < 0.1
        rec = {**psf.to_record(), "width": 4072, "height": 4000}
        assert set(psf.to_record()) == {f"psf_{m}{i}" for m in ("ixx", "iyy", "ixy") for i in range(3)}
        assert GaussianPsfModel.from_record(rec) == psf
        hdr = fits.Header()
        for key, value, comment in psf.header_cards():
            hdr[key] = (value, comment)
        assert hdr["PSFMODEL"] == "GAUSS2D-LIN"
        assert GaussianPsfModel.from_header(hdr) == psf


def test_spec_record_round_trip(spec):
    assert ImageSpec.from_record(spec.to_record()) == spec


# -- pixels: determinism and cut-outs ---------------------------------------------------------
@pytest.mark.parametrize(
    "region",
    [
        (1000, 1000, 1200, 1200),  # interior
        (200, 200, 300, 320),  # crosses tile borders at 256
        (240, 240, 272, 270),  # the tile_corner source, four tiles
        (750, 500, 790, 530),  # the tile_edge_neg source
        (2980, 780, 3021, 821),  # saturated core
        (1500, 1200, 1501, 1201),  # a single pixel on a source
        (-50, -30, 100, 90),  # clipped at the origin, EDGE
        (4000, 3900, 5000, 4100),  # clipped at the far corner, partial tiles
        (0, 1990, 4072, 2030),  # a full-width strip
    ],
)
def test_region_equals_full_slice(spec, sources, full, region):
    part = render(spec, sources, region)
    assert (part.x0, part.y0) == (max(region[0], 0), max(region[1], 0))
    assert part.image.shape == (min(region[3], 4000) - part.y0, min(region[2], 4072) - part.x0)
    assert part.image.dtype == np.float32 and part.variance.dtype == np.float32
    assert part.mask.dtype == np.int32
    assert_planes_equal_slice(part, full)


def test_random_regions_equal_full_slice(spec, sources, full):
    rng = np.random.default_rng(5)
    for _ in range(10):
        x0, y0 = int(rng.integers(0, 4000)), int(rng.integers(0, 3900))
        part = render(spec, sources, (x0, y0, x0 + int(rng.integers(1, 400)), y0 + int(rng.integers(1, 400))))
        assert_planes_equal_slice(part, full)


def test_render_is_deterministic(spec, sources, full):
    again = render(spec, sources)
    for name in ("image", "mask", "variance"):
        assert same_bits(getattr(again, name), getattr(full, name))
    # Input order does not matter: sources are painted in id order.
    order = np.random.default_rng(1).permutation(len(sources))
    shuffled = SourceList(sources.x[order], sources.y[order], sources.flux[order], sources.ids[order])
    region = (200, 200, 300, 320)
    assert_planes_equal_slice(render(spec, shuffled, region), full)
    # A different seed gives different noise.
    other = render(dataclasses.replace(spec, seed=124), sources, region)
    assert not np.array_equal(other.image, full.image[200:320, 200:300])


def test_region_outside_raises(spec, sources):
    with pytest.raises(ValueError):
        render(spec, sources, (5000, 0, 5100, 100))
    with pytest.raises(ValueError):
        render(spec, sources, (10, 10, 10, 20))


def test_no_sources(spec):
    p = render(spec, SourceList.empty(), (0, 0, 300, 300))
    assert not (p.mask & (BIT["DETECTED"] | BIT["DETECTED_NEGATIVE"] | BIT["SAT"])).any()


# -- pixels: statistics -------------------------------------------------------------------------
def test_variance_and_noise_statistics(spec, full, clean):
    var = full.variance
    assert var.min() > 0
    assert var.mean() == pytest.approx(spec.var_level, rel=0.03)
    assert abs(float(full.image.mean())) < 2.0  # a difference image averages to ~0
    quiet = (full.mask == 0) & (clean.image == 0)
    assert quiet.mean() > 0.9
    pull = (full.image[quiet] / np.sqrt(var[quiet])).astype(np.float64)
    mad_std = 1.4826 * np.median(np.abs(pull - np.median(pull)))
    assert mad_std == pytest.approx(1.0, abs=0.02)
    assert pull.std() == pytest.approx(1.0, abs=0.02)
    assert abs(pull.mean()) < 0.01
    # The background variance follows the gradients given in the spec.
    left, right = var[1000:3000, 100:300].mean(), var[1000:3000, -300:-100].mean()
    assert right / left == pytest.approx((1 + 0.12 * 0.4509) / (1 - 0.12 * 0.4509), rel=0.01)
    # Variance rises at a bright source, by |model| times the gain.
    x, y, _ = NAMED["pos"]
    assert var[int(round(y)), int(round(x))] > 2 * spec.var_level
    # Bright sources reach tens of thousands of nJy, like a real difference image.
    assert full.image.max() > 2e4 and full.image.min() < -1e3


@pytest.mark.parametrize("name", ["pos", "neg", "sat", "tile_corner", "tile_edge_neg", "faint"])
def test_source_flux_in_aperture(spec, clean, full, name):
    x, y, flux = NAMED[name]
    r = 5 * spec.psf.determinant_radius(x, y)
    assert aperture_sum(clean.image, 0, 0, x, y, r) == pytest.approx(flux, rel=0.01, abs=1.0)
    if abs(flux) >= 2e4:  # bright enough that the noise in the aperture is < 2%
        assert aperture_sum(full.image, 0, 0, x, y, r) == pytest.approx(flux, rel=0.03)


def test_every_source_is_painted(spec, sources, clean):
    inside = (sources.x > 30) & (sources.x < 4042) & (sources.y > 30) & (sources.y < 3970)
    # Isolated ones only: a neighbour within the aperture would add its flux.
    d = np.hypot(sources.x[:, None] - sources.x, sources.y[:, None] - sources.y)
    np.fill_diagonal(d, np.inf)
    ok = inside & (d.min(axis=1) > 30)
    assert ok.sum() > 100
    for x, y, f in zip(sources.x[ok], sources.y[ok], sources.flux[ok], strict=False):
        cut = clean.image[int(y) - 15: int(y) + 16, int(x) - 15: int(x) + 16]
        assert aperture_sum(cut, int(x) - 15, int(y) - 15, x, y, 12) == pytest.approx(f, rel=0.01)


def test_painted_shape_matches_psf(spec, clean):
    x, y, flux = NAMED["pos"]
    cut = clean.image[1180:1222, 1480:1522].astype(np.float64)
    yy, xx = np.mgrid[1180:1222, 1480:1522]
    w = cut / cut.sum()
    cx, cy = (w * xx).sum(), (w * yy).sum()
    assert (cx, cy) == pytest.approx((x, y), abs=1e-3)
    ixx, iyy, ixy = spec.psf.moments(x, y)
    assert (w * (xx - cx) ** 2).sum() == pytest.approx(ixx, rel=0.02)
    assert (w * (yy - cy) ** 2).sum() == pytest.approx(iyy, rel=0.02)
    assert (w * (xx - cx) * (yy - cy)).sum() == pytest.approx(ixy, abs=0.05)


def test_mask_planes(spec, full, clean):
    m = full.mask
    edge = (m & BIT["EDGE"]) != 0
    assert edge[:EDGE_WIDTH].all() and edge[-EDGE_WIDTH:].all()
    assert edge[:, :EDGE_WIDTH].all() and edge[:, -EDGE_WIDTH:].all()
    assert not edge[EDGE_WIDTH:-EDGE_WIDTH, EDGE_WIDTH:-EDGE_WIDTH].any()

    def at(name):
        x, y, _ = NAMED[name]
        return int(m[int(round(y)), int(round(x))])

    assert at("pos") & BIT["DETECTED"] and not at("pos") & BIT["DETECTED_NEGATIVE"]
    assert at("neg") & BIT["DETECTED_NEGATIVE"] and not at("neg") & BIT["DETECTED"]
    assert at("tile_corner") & BIT["DETECTED"]
    assert at("tile_edge_neg") & BIT["DETECTED_NEGATIVE"]
    assert at("faint") == 0
    assert at("sat") & BIT["SAT"] and at("sat") & BIT["INTRP"]
    assert not at("pos") & BIT["SAT"]
    # Footprints are compact blobs around sources, not the whole image.
    det = (m & BIT["DETECTED"]) != 0
    assert 0.0001 < det.mean() < 0.02
    sat = (m & BIT["SAT"]) != 0
    assert np.all(np.abs(clean.image[sat]) >= SAT_LEVEL)
    assert np.array_equal(sat, (m & BIT["INTRP"]) != 0)
    # Cosmic rays: a few per image, each a positive spike over the noiseless model.
    cr = (m & BIT["CR"]) != 0
    assert 0 < cr.sum() < 100
    excess = (full.image[cr] - clean.image[cr]) / np.sqrt(full.variance[cr])
    assert np.all(excess > 3)
    assert not (clean.mask & BIT["CR"]).any()


def test_bad_column_from_seed(sources):
    seeds = [s for s in range(40) if _bad_column(make_spec(s)) is not None]
    assert 0 < len(seeds) < 40  # some detectors have one, some do not
    spec = make_spec(seeds[0])
    bx, y0, y1 = _bad_column(spec)
    p = render(spec, SourceList.empty(), (bx - 2, 0, bx + 3, 4000))
    bad = (p.mask & BIT["BAD"]) != 0
    assert bad[y0:y1, 2].all() and not bad[:, [0, 1, 3, 4]].any()
    assert bad.sum() == y1 - y0


# -- FITS ------------------------------------------------------------------------------------
def test_fits_round_trip_full(spec, full):
    data = exposure_bytes(spec, full)
    meta, planes, wcs = read_exposure(data)
    for name in ("image", "mask", "variance"):
        assert np.array_equal(getattr(planes, name), getattr(full, name))
    assert (planes.x0, planes.y0) == (0, 0)
    assert meta["BUNIT"] == "nJy"
    assert meta["INSTRUME"] == "LSSTComCam"
    assert meta["DETECTOR"] == 4 and meta["DET_NAME"] == "R22_S11"
    assert meta["VISIT"] == spec.visit and meta["LSST BUTLER DATAID VISIT"] == spec.visit
    assert meta["BAND"] == "r" and meta["FILTER"] == "r_03"
    assert meta["EXPTIME"] == 30.0 and meta["TIMESYS"] == "TAI"
    assert meta["MJD-AVG"] == pytest.approx(spec.obs_mid_mjd_tai)
    assert meta["DATE-BEG"].startswith("2024-11-09T06:13")
    assert meta["BORE-PA"] == pytest.approx(np.degrees(1.78496))
    assert meta["BORE-PA-RAD"] == 1.78496
    for key in ("LSST ISR UNITS", "LSST ISR OVERSCAN SERIAL UNITS", "LSST ISR READNOISE UNITS",
                "LSST ISR OVERSCAN PARALLEL UNITS"):
        assert key in meta
    assert GaussianPsfModel.from_header(meta) == spec.psf

    # WCS of the IMAGE HDU against the spec's own pixel_to_sky (0-based parent pixels).
    xs = np.array([0.0, 100.5, 2036.0, 4071.0, 3500.25])
    ys = np.array([0.0, 3999.0, 2000.0, 17.0, 1234.75])
    ra, dec = spec.pixel_to_sky(xs, ys)
    px, py = wcs.world_to_pixel_values(ra, dec)
    assert np.allclose(px, xs, atol=1e-3) and np.allclose(py, ys, atol=1e-3)


def test_fits_headers_per_hdu(spec, clean):
    part = render(spec, make_sources(), (1000, 1500, 1300, 1700))
    hdul = exposure_hdulist(spec, part, extra_cards=[("ORIGIN", "diavo", "")])
    assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "MASK", "VARIANCE"]
    assert hdul[0].data is None and hdul[0].header["ORIGIN"] == "diavo"
    assert hdul["IMAGE"].header["BUNIT"] == "nJy"
    assert u.Unit(hdul["VARIANCE"].header["BUNIT"]) == u.nJy**2
    assert u.Unit(hdul["VARIANCE"].header["BUNIT"], format="fits") == u.nJy**2
    assert planes_from_header(hdul["MASK"].header) == MASK_PLANES
    for hdu in hdul[1:]:
        assert hdu.header["INHERIT"] is True
        assert hdu.header["LTV1"] == -1000 and hdu.header["LTV2"] == -1500
        phys = WCS(hdu.header, key="A")
        assert np.allclose(phys.pixel_to_world_values(0, 0), (1000, 1500))
    assert hdul["IMAGE"].data.dtype == np.dtype(">f4") and hdul["MASK"].data.dtype == np.dtype(">i4")
    # The file is standard FITS.
    hdul.verify("exception")


def test_fits_cutout_wcs_matches_parent(spec, sources, full):
    parent = WCS(exposure_hdulist(spec, full)["IMAGE"].header)
    part = render(spec, sources, (1000, 1500, 1300, 1700))
    meta, planes, wcs = read_exposure(exposure_bytes(spec, part))
    assert (planes.x0, planes.y0) == (1000, 1500)
    assert_planes_equal_slice(planes, full)
    xs, ys = np.array([1000.0, 1150.5, 1299.0]), np.array([1500.0, 1600.25, 1699.0])
    ra_p, dec_p = parent.pixel_to_world_values(xs, ys)
    ra_c, dec_c = wcs.pixel_to_world_values(xs - 1000, ys - 1500)
    assert np.allclose(ra_c, ra_p, rtol=0, atol=1e-10) and np.allclose(dec_c, dec_p, rtol=0, atol=1e-10)
    ra_s, dec_s = spec.pixel_to_sky(xs, ys)
    px, py = wcs.world_to_pixel_values(ra_s, dec_s)
    assert np.allclose(px + 1000, xs, atol=1e-3) and np.allclose(py + 1500, ys, atol=1e-3)


def test_tile_size_is_a_power_of_two():
    # The grid is part of the data format: changing it changes every image.
    assert TILE == 256
