"""The client's Exposure against real FITS files served by a real diavo server.

Every accessor the difference-image tutorial calls is checked against the file's own cards (read
independently with astropy) or against the server's catalog (DiaSource ra/dec and x/y), so the
pixel conventions (FITS 1-based, LSST 0-based, cut-out XY0) are tested, not assumed.
"""
from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.wcs import WCS

from diavo.client.exposure import Exposure
from diavo.client.geom import (
    Angle,
    Box2I,
    Extent2I,
    Point2D,
    Point2I,
    SpherePoint,
    arcminutes,
    arcseconds,
    degrees,
    radians,
)
from diavo.shared.ids import image_id
from diavo.shared.masks import MASK_COLORS, MASK_PLANES

VISIT, DETECTOR = 2024110800246, 2  # the tutorial's image; in the small demo archive
RA, DEC = 53.125, -27.740  # the tutorial's position, on that image


def _get(url: str, **params) -> bytes:
    r = requests.get(url, params=params, timeout=60)
    r.raise_for_status()
    return r.content


@pytest.fixture(scope="module")
def full_bytes(small_server) -> bytes:
    return _get(f"{small_server.url}/images/{VISIT}/{DETECTOR}.fits")


@pytest.fixture(scope="module")
def cut_bytes(small_server) -> bytes:
    return _get(f"{small_server.url}/soda/sync", ID=image_id(VISIT, DETECTOR), CIRCLE=f"{RA} {DEC} 0.01")


@pytest.fixture(scope="module")
def full(full_bytes) -> Exposure:
    return Exposure.from_fits(full_bytes)


@pytest.fixture(scope="module")
def cut(cut_bytes) -> Exposure:
    return Exposure.from_fits(cut_bytes)


@pytest.fixture(scope="module")
def hdus(full_bytes):
    """The file's headers, read by astropy alone: the reference the client must agree with."""
    with fits.open(io.BytesIO(full_bytes)) as hdul:
        return {hdu.name: hdu.header.copy() for hdu in hdul}


@pytest.fixture(scope="module")
def dia_sources(small_server):
    text = _get(f"{small_server.url}/tap/sync", LANG="ADQL",
                QUERY=f"SELECT diaSourceId, ra, dec, x, y FROM dp1.DiaSource WHERE visit = {VISIT} "
                      f"AND detector = {DETECTOR}")
    return parse_single_table(io.BytesIO(text)).to_table()


# -- reading ----------------------------------------------------------------------------------------
def test_from_bytes_path_and_file_object_agree(full, cut_bytes, tmp_path):
    path = tmp_path / "cut.fits"
    path.write_bytes(cut_bytes)
    by_path = Exposure.from_fits(path)
    by_str = Exposure.from_fits(str(path))
    with open(path, "rb") as fh:
        by_file = Exposure.from_fits(fh)
    for other in (by_str, by_file):
        assert other.getBBox() == by_path.getBBox()
        assert np.array_equal(other.image.array, by_path.image.array)
    assert repr(full).startswith(f"<diavo Exposure (visit {VISIT}, detector {DETECTOR})")


def test_a_fits_file_without_the_planes_is_refused():
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 3), dtype=np.float32))]).writeto(buf)
    with pytest.raises(ValueError, match="IMAGE, MASK, VARIANCE"):
        Exposure.from_fits(buf.getvalue())


def test_the_client_modules_import_no_server_code():
    code = ("import sys, diavo.client.exposure, diavo.client.display, diavo.client.geom; "
            "bad = sorted(m for m in sys.modules if m.startswith('diavo.server') or m == 'matplotlib'); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_file_with_the_pipelines_card_names_reads_too():
    """Rubin's own files name some visit cards differently and carry no diavo PSF cards."""
    primary = fits.PrimaryHDU()
    for key, value in {"DATE-AVG": "2024-11-09T06:13:26.029", "TIMESYS": "TAI", "EXPTIME": 30.0,
                       "BORE-AIRMASS": 1.038, "AIRPRESS": 74135.0, "AIRTEMP": 14.375, "HUMIDITY": 17.05,
                       "BORE-AZ": 120.0, "BORE-ALT": 74.0, "EXPID": 2024110800246, "DETECTOR": 2}.items():
        primary.header["HIERARCH " + key if len(key) > 8 else key] = value
    planes = [fits.ImageHDU(np.zeros((4, 5), dtype=dt), name=n)
              for n, dt in (("IMAGE", ">f4"), ("MASK", ">i4"), ("VARIANCE", ">f4"))]
    planes[1].header["MP_BAD"] = 0
    for hdu in planes:
        hdu.header["LTV1"], hdu.header["LTV2"] = -10, -20
    buf = io.BytesIO()
    fits.HDUList([primary, *planes]).writeto(buf)
    exp = Exposure.from_fits(buf.getvalue())
    info = exp.getInfo().getVisitInfo()
    assert (info.getBoresightAirmass(), info.getWeather().getAirPressure(), info.id) == (1.038, 74135.0, 2024110800246)
    assert info.getBoresightAzAlt().getLatitude().asDegrees() == pytest.approx(74.0)
    assert info.getBoresightRaDec() is None and math.isnan(info.getBoresightParAngle().asRadians())
    assert exp.getPsf() is None and exp.getWcs() is None and exp.getFilter() is None
    assert exp.getBBox() == Box2I(Point2I(10, 20), Extent2I(5, 4))
    assert exp.getMask().getMaskPlaneDict() == {"BAD": 0}


# -- planes -----------------------------------------------------------------------------------------
def test_planes_shapes_types_and_units(full, full_bytes):
    for plane in (full.getImage(), full.getVariance(), full.getMask()):
        assert plane.array.shape == (4000, 4072)  # (height, width): NAXIS2, NAXIS1
        assert plane.array.dtype.isnative
    assert full.getImage().array.dtype == np.float32
    assert full.getMask().array.dtype == np.int32
    assert full.image.unit == "nJy" and full.variance.unit == "nJy**2"
    assert (full.getVariance().array > 0).all()
    with fits.open(io.BytesIO(full_bytes)) as hdul:
        assert np.array_equal(full.getImage().array, hdul["IMAGE"].data)
        assert np.array_equal(full.getMask().array, hdul["MASK"].data)
        assert np.array_equal(full.getVariance().array, hdul["VARIANCE"].data)
    assert full.image is full.getImage() and full.maskedImage.getMask() is full.mask
    assert full.getWidth() == 4072 and full.getHeight() == 4000 and full.getXY0() == Point2I(0, 0)


def test_mask_planes_interpretation_and_colours(full, hdus):
    mask = full.getMask()
    planes = mask.getMaskPlaneDict()
    assert len(planes) == 22 and set(planes) == set(MASK_PLANES)
    assert list(planes) == sorted(planes)  # listed by name, as the pipelines print them
    assert planes == {k[3:]: v for k, v in hdus["MASK"].items() if k.startswith("MP_")}
    assert mask.getMaskPlaneColor("DETECTED") == "blue" and mask.getMaskPlaneColor("EDGE") == "yellow"
    assert {n: mask.getMaskPlaneColor(n) for n in planes} == MASK_COLORS
    value = mask.getPlaneBitMask(["EDGE", "DETECTED", "CR"])
    assert value == (1 << planes["EDGE"]) | (1 << planes["DETECTED"]) | (1 << planes["CR"])
    assert mask.interpret(value) == "CR,DETECTED,EDGE"
    assert mask.interpret(0) == ""
    edge = mask.plane_array("EDGE")
    assert edge[0].all() and edge[:, -1].all() and not edge[2000, 2000]
    for v in np.unique(mask.array)[:10]:  # every value present decodes to its bits
        names = mask.interpret(v).split(",") if v else []
        assert sum(1 << planes[n] for n in names) == v
    with pytest.raises(KeyError, match="no mask plane 'NOPE'"):
        mask.getPlaneBitMask("NOPE")


def test_metadata(full, hdus):
    md = full.getMetadata()
    d = md.toDict()
    assert d["BUNIT"] == "nJy" and md["BUNIT"] == "nJy" and md.get("BUNIT") == "nJy"
    assert [k for k in d if "UNIT" in k] == [k for k in hdus["PRIMARY"] if "UNIT" in k]
    assert "LSST ISR UNITS" in d and "COMMENT" not in d
    assert d["VISIT"] == VISIT and md.getScalar("DETECTOR") == DETECTOR
    assert md.get("NO SUCH KEY") is None and "NO SUCH KEY" not in md
    assert full.data_id == {"instrument": "LSSTComCam", "detector": DETECTOR, "visit": VISIT, "band": "r",
                            "day_obs": 20241108, "physical_filter": "r_03"}


# -- visit info -------------------------------------------------------------------------------------
def test_visit_info_and_weather(full, hdus):
    p = hdus["PRIMARY"]
    info = full.getInfo().getVisitInfo()
    assert info.id == VISIT == info.getId()
    assert info.getBoresightAirmass() == p["AIRMASS"]
    par = info.getBoresightParAngle()
    assert isinstance(par, Angle) and par.asRadians() == p["BORE-PA-RAD"]
    assert par.asDegrees() == pytest.approx(p["BORE-PA"], abs=1e-9)
    assert str(par) == f"{p['BORE-PA-RAD']:.6g} rad"
    assert info.getExposureTime() == p["EXPTIME"] == 30.0
    date = info.getDate()
    assert date.toString(date.TAI).startswith(p["DATE-AVG"])  # the middle of the exposure, TAI
    assert str(date).startswith('DateTime("2024-11-09T') and str(date).endswith('", TAI)')
    assert date.get() == pytest.approx(p["MJD-AVG"], abs=1e-8)
    assert date.toString(date.UTC).endswith("Z") and date.toAstropy().scale == "tai"
    weather = info.getWeather()
    assert weather.getAirPressure() == p["PRESSURE"]
    assert weather.getAirTemperature() == p["AIRTEMP"]
    assert weather.getHumidity() == p["HUMIDITY"]
    assert all(math.isfinite(v) for v in (weather.airPressure, weather.airTemperature, weather.humidity))
    bore = info.getBoresightRaDec()
    assert (bore.getRa().asDegrees(), bore.getDec().asDegrees()) == pytest.approx((p["BORE-RA"], p["BORE-DEC"]))
    assert info.getBoresightRotAngle().asDegrees() == pytest.approx(p["BORE-ROTANG"])
    assert info.getInstrumentLabel() == "LSSTComCam"
    det = full.getInfo().getDetector()
    assert det.getId() == DETECTOR and det.getName() == "R22_S02"
    assert det.getBBox() == Box2I(Point2I(0, 0), Extent2I(4072, 4000))
    flt = full.getFilter()
    assert (flt.bandLabel, flt.physicalLabel) == ("r", "r_03")
    assert full.visitInfo is info and full.getInfo().hasPsf() and full.hasWcs()


# -- WCS ---------------------------------------------------------------------------------------------
def test_wcs_round_trips_and_uses_zero_based_pixels(full, hdus):
    wcs = full.getWcs()
    coord = SpherePoint(RA * degrees, DEC * degrees)
    xy = wcs.skyToPixel(coord)
    assert full.getBBox().contains(xy)
    back = wcs.pixelToSky(xy)
    assert back.separation(coord).asDegrees() < 1e-9
    rng = np.random.default_rng(1)
    for x, y in rng.uniform(-100, 4100, size=(20, 2)):
        sky = wcs.pixelToSky(x, y)
        p = wcs.skyToPixel(sky)
        assert (p.getX(), p.getY()) == pytest.approx((x, y), abs=1e-7)
        assert wcs.pixelToSky(p).separation(sky).asDegrees() < 1e-9
    # LSST pixel (x, y) is FITS pixel (x + 1, y + 1) of the file's own WCS, read by astropy alone.
    ref = WCS(hdus["IMAGE"])
    ra, dec = ref.all_pix2world([[1.0, 1.0], [4072.0, 4000.0]], 1).T
    assert wcs.pixelToSky(0, 0).separation(SpherePoint(ra[0], dec[0], degrees)).asDegrees() < 1e-12
    assert wcs.pixelToSky(Point2D(4071, 3999)).separation(SpherePoint(ra[1], dec[1], degrees)).asDegrees() < 1e-12
    assert wcs.getPixelScale().asArcseconds() == pytest.approx(0.2, rel=1e-3)
    assert wcs.getPixelScale(Point2D(2036, 2000)).asArcseconds() == pytest.approx(0.2, rel=1e-3)
    assert wcs.getPixelOrigin() == Point2D(hdus["IMAGE"]["CRPIX1"] - 1, hdus["IMAGE"]["CRPIX2"] - 1)
    assert wcs.getSkyOrigin().getRa().asDegrees() == hdus["IMAGE"]["CRVAL1"]
    assert wcs.wcs.has_celestial and full.wcs is wcs
    xs, ys = wcs.skyToPixelArray(np.array([RA]), np.array([DEC]), degrees=True)
    assert (xs[0], ys[0]) == pytest.approx((xy.getX(), xy.getY()), abs=1e-9)
    ras, decs = wcs.pixelToSkyArray([xy.getX()], [xy.getY()])  # radians by default
    assert (ras[0], decs[0]) == pytest.approx((math.radians(RA), math.radians(DEC)), abs=1e-11)
    pts = wcs.pixelToSky([Point2D(0, 0), Point2D(10, 10)])
    assert len(pts) == 2 and tuple(wcs.skyToPixel(pts)[1]) == pytest.approx((10, 10), abs=1e-7)


def test_wcs_agrees_with_the_catalog_pixel_positions(full, dia_sources):
    """DiaSource x, y are zero-based parent pixels computed by the server from ra, dec."""
    assert len(dia_sources) > 10
    x, y = full.getWcs().skyToPixelArray(dia_sources["ra"], dia_sources["dec"], degrees=True)
    assert np.max(np.abs(x - dia_sources["x"])) < 1e-4
    assert np.max(np.abs(y - dia_sources["y"])) < 1e-4
    assert full.getBBox().contains(np.asarray(dia_sources["x"]), np.asarray(dia_sources["y"])).all()


# -- bounding box -----------------------------------------------------------------------------------
def test_bbox(full):
    bbox = full.getBBox()
    assert repr(bbox) == "Box2I(corner=Point2I(0, 0), dimensions=Extent2I(4072, 4000))"
    assert (bbox.beginX, bbox.beginY, bbox.endX, bbox.endY) == (0, 0, 4072, 4000)
    assert (bbox.getMinX(), bbox.getMaxX(), bbox.getMinY(), bbox.getMaxY()) == (0, 4071, 0, 3999)
    assert bbox.area == bbox.getArea() == 4072 * 4000 and (bbox.width, bbox.height) == (4072, 4000)
    assert bbox.contains(100, 100) is True and bbox.contains(10000, 10000) is False
    assert bbox.contains(Point2I(4071, 3999)) and not bbox.contains(Point2I(4072, 0))
    assert bbox.contains(-0.5, 0) and not bbox.contains(-0.51, 0) and not bbox.contains(4071.5, 0)
    assert [tuple(c) for c in bbox.getCorners()] == [(0, 0), (4071, 0), (4071, 3999), (0, 3999)]
    far = full.getWcs().skyToPixel(SpherePoint(63.0 * degrees, -38.0 * degrees))
    assert bbox.contains(far.getX(), far.getY()) is False
    wcs = full.getWcs()
    corners = [Point2D(bbox.beginX, bbox.beginY), Point2D(bbox.beginX, bbox.endY),
               Point2D(bbox.endX, bbox.endY), Point2D(bbox.endX, bbox.beginY)]
    sky = [wcs.pixelToSky(c) for c in corners]
    centre = wcs.pixelToSky(bbox.getCenter())
    diag = sky[0].separation(sky[2]).asDegrees()
    assert diag == pytest.approx(math.hypot(4072, 4000) * 0.2 / 3600, rel=1e-3)
    assert all(s.separation(centre).asDegrees() == pytest.approx(diag / 2, rel=1e-3) for s in sky)
    area = bbox.area * wcs.getPixelScale().asArcminutes() ** 2
    assert area == pytest.approx(4072 * 4000 * (0.2 / 60) ** 2, rel=1e-3)


# -- cut-outs ---------------------------------------------------------------------------------------
def test_cutout_keeps_parent_coordinates(full, cut, hdus):
    box = cut.getBBox()
    assert box.getMinX() > 0 and box.getMinY() > 0 and full.getBBox().contains(box)
    assert cut.getXY0() == box.getMin() == cut.mask.getXY0() == cut.variance.getXY0()
    for a, b in ((cut.image, full.image), (cut.mask, full.mask), (cut.variance, full.variance)):
        assert np.array_equal(a.array, b.array[box.slices()])
    coord = SpherePoint(RA, DEC, degrees)
    p_full, p_cut = full.getWcs().skyToPixel(coord), cut.getWcs().skyToPixel(coord)
    assert (p_cut.getX(), p_cut.getY()) == pytest.approx((p_full.getX(), p_full.getY()), abs=1e-9)
    assert box.contains(p_cut)
    for corner in box.getCorners():
        assert cut.getWcs().pixelToSky(corner).separation(full.getWcs().pixelToSky(corner)).asDegrees() < 1e-10
    assert cut.getPsf().computeShape(p_cut).getIxx() == full.getPsf().computeShape(p_full).getIxx()
    assert cut.getWcs().getPixelOrigin() == full.getWcs().getPixelOrigin()
    # the astropy WCS of a cut-out speaks the cut-out's own array indices
    local = cut.getWcs().wcs.world_to_pixel_values(RA, DEC)
    assert (local[0] + box.getMinX(), local[1] + box.getMinY()) == pytest.approx(tuple(p_full), abs=1e-9)
    assert cut.getMetadata()["LTV1"] == -box.getMinX()
    assert cut.getInfo().getVisitInfo().id == VISIT


def test_local_subset_and_cutout_match_the_served_cutout(full, cut):
    sub = full.subset(cut.getBBox())
    assert sub.getBBox() == cut.getBBox()
    assert np.array_equal(sub.image.array, cut.image.array)
    p = SpherePoint(RA, DEC, degrees)
    assert tuple(sub.getWcs().skyToPixel(p)) == pytest.approx(tuple(cut.getWcs().skyToPixel(p)), abs=1e-9)
    small = full.getCutout(p, Extent2I(51, 41))
    assert (small.width, small.height) == (51, 41)
    centre = full.getWcs().skyToPixel(p)
    assert small.getBBox().getCenter().getX() == pytest.approx(centre.getX(), abs=1.0)
    with pytest.raises(ValueError):
        full.subset(Box2I(Point2I(4000, 3900), Extent2I(200, 200)))


# -- PSF ---------------------------------------------------------------------------------------------
def test_psf_shape_and_image(full, hdus):
    p = hdus["PRIMARY"]
    psf = full.getPsf()
    xy = Point2D(100, 100)
    shape = psf.computeShape(xy)
    u, v = (100 - p["PSFWIDTH"] / 2) / p["PSFWIDTH"], (100 - p["PSFHEIGH"] / 2) / p["PSFHEIGH"]
    expect = {t: p[f"PSF{t}0"] + p[f"PSF{t}1"] * u + p[f"PSF{t}2"] * v for t in ("IXX", "IYY", "IXY")}
    assert (shape.getIxx(), shape.getIyy(), shape.getIxy()) == pytest.approx(
        (expect["IXX"], expect["IYY"], expect["IXY"]), rel=1e-12)
    sigma = shape.getDeterminantRadius()
    assert sigma == pytest.approx((expect["IXX"] * expect["IYY"] - expect["IXY"] ** 2) ** 0.25)
    fwhm = sigma * 2.0 * math.sqrt(2.0 * math.log(2.0))
    assert shape.fwhm == pytest.approx(fwhm) and 3.5 < fwhm < 5.5  # "about 4.5 pixels"
    img = psf.computeImage(xy)
    assert img.array.sum() == pytest.approx(1.0, abs=1e-12)
    assert img.getBBox().contains(xy) and img.getBBox().getCenter() == Point2D(100, 100)
    assert np.unravel_index(img.array.argmax(), img.array.shape) == (img.height // 2, img.width // 2)
    # the image's second moments are the shape's
    yy, xx = np.mgrid[img.getY0():img.getY0() + img.height, img.getX0():img.getX0() + img.width]
    w = img.array
    assert (w * (xx - 100) ** 2).sum() == pytest.approx(shape.getIxx(), rel=0.01)
    assert (w * (yy - 100) ** 2).sum() == pytest.approx(shape.getIyy(), rel=0.01)
    assert (w * (xx - 100) * (yy - 100)).sum() == pytest.approx(shape.getIxy(), abs=0.01)
    off = psf.computeImage(100.3, 99.8)  # the sub-pixel offset stays in the profile
    cx = (off.array * (xx - 100)).sum()
    assert cx == pytest.approx(0.3, abs=0.01)
    assert img.convertF().array.dtype == np.float32
    kern = psf.computeKernelImage(xy)
    assert kern.getBBox().getCenter() == Point2D(0, 0)
    assert psf.computeShape().getIxx() == pytest.approx(p["PSFIXX0"])  # the average position


# -- value types --------------------------------------------------------------------------------------
def test_angles_and_sky_points():
    a = 53.125 * degrees
    assert isinstance(a, Angle) and a.asDegrees() == pytest.approx(53.125)
    assert Angle(1.0, radians).asDegrees() == pytest.approx(180 / math.pi)
    assert (30 * arcminutes).asDegrees() == pytest.approx(0.5) and (1 * degrees).asArcseconds() == pytest.approx(3600)
    assert np.float64(2.0) * degrees == 2.0 * degrees
    assert float(1.5 * radians) == 1.5 and (90 * degrees + 90 * degrees).asDegrees() == pytest.approx(180)
    p = SpherePoint(53.125 * degrees, -27.74 * degrees)
    assert p == SpherePoint(53.125, -27.74, degrees)
    assert str(p) == "(53.1250000000, -27.7400000000)"
    assert p.getRa().asDegrees() == pytest.approx(53.125) and p.getDec() == p[1]
    q = SpherePoint(53.125, -27.74 + 1 / 3600, degrees)
    assert p.separation(q).asArcseconds() == pytest.approx(1.0, rel=1e-9)
    assert SpherePoint(p.to_skycoord()).separation(p).asArcseconds() < 1e-9
    assert SpherePoint(-10, 0, degrees).getRa().asDegrees() == pytest.approx(350)
    with pytest.raises(TypeError):
        SpherePoint(53.1, -27.7)
    with pytest.raises(ValueError):
        SpherePoint(0, 91, degrees)
    assert (1 * arcseconds).to_astropy().unit.to_string() == "deg"


def test_points_and_boxes():
    assert str(Point2D(1905.3, 2040.7)) == "(1905.3, 2040.7)"
    assert Point2D((1, 2)) == Point2D(1, 2) and Point2D(1, 2).getY() == 2.0
    box = Box2I(Point2I(10, 20), Point2I(19, 29))  # inclusive maximum
    assert box == Box2I(Point2I(10, 20), Extent2I(10, 10))
    assert box.clippedTo(Box2I(Point2I(15, 25), Extent2I(100, 100))) == Box2I(Point2I(15, 25), Extent2I(5, 5))
    assert not box.overlaps(Box2I(Point2I(0, 0), Extent2I(10, 10)))
    assert box.contains(np.array([10.0, 9.0]), np.array([20.0, 20.0])).tolist() == [True, False]
