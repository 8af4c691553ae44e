#!/usr/bin/env python3
"""Rubin's "difference images" notebook (DP1 tutorial 202.3), run against a diavo server.

Each step makes the same calls the notebook makes on the Rubin Science Platform, through
``diavo.client`` instead of ``lsst.daf.butler`` / ``lsst.afw``, prints what it finds and checks
it. Any check that does not hold stops the run with exit status 1 (any other error: 2), so the
script doubles as an end-to-end test; CI runs it on the small demo archive.

    diavo demo build ./demo && diavo serve ./demo --port 8000 &
    python examples/difference_images.py http://127.0.0.1:8000 --out difference_image.png

The URL may also come from DIAVO_URL (and a bearer token from DIAVO_TOKEN).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
from astropy.time import Time

from diavo.client import Archive, Timespan, get_tap_service
from diavo.client.geom import Point2D, SpherePoint, degrees

#: Where the notebook looks: a transient in the ECDFS field, r band, the first night of ComCam.
RA, DEC, BAND = 53.125, -27.740, "r"
SEARCH_BEGIN = Time("2024-11-09T00:00:00.0", format="isot", scale="tai")
SEARCH_END = Time(60624.0, format="mjd", scale="tai")
WHERE = ("band.name = :band AND visit.timespan OVERLAPS :timespan AND "
         "visit_detector_region.region OVERLAPS POINT(:ra, :dec)")
#: An LSSTComCam CCD, in pixels.
CCD_WIDTH, CCD_HEIGHT = 4072, 4000
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class CheckFailed(AssertionError):
    """A fact the tutorial shows did not hold for this server's data."""


def check(condition: bool, fact: str) -> None:
    if not condition:
        raise CheckFailed(fact)
    print(f"  ok: {fact}")


def section(title: str) -> None:
    print(f"\n== {title} ==")


# -- the walk-through, one function per part of the notebook ----------------------------------------
def find_images(archive: Archive):
    section("Which images? The dataset type and a Butler-style query")
    dtype = archive.get_dataset_type("difference_image")
    print(f"  {dtype!r}")
    print(f"  required to name one image: {dtype.dimensions.required!r}")
    check(set(dtype.dimensions.required) == {"instrument", "detector", "visit"},
          "instrument, detector and visit identify a difference image")
    check(dtype.storageClass == "ExposureF", "the dataset is an exposure")

    timespan = Timespan(SEARCH_BEGIN, SEARCH_END)
    refs = archive.query_datasets("difference_image", where=WHERE,
                                  bind={"band": BAND, "timespan": timespan, "ra": RA, "dec": DEC},
                                  order_by=["visit.timespan.begin"])
    print(f"  {len(refs)} images cover ({RA}, {DEC}) in band {BAND} between "
          f"{SEARCH_BEGIN.isot} and {SEARCH_END.isot} TAI")
    check(len(refs) >= 3, "the query finds at least three images")
    begins = [ref.timespan.begin_mjd for ref in refs]
    check(all(a <= b for a, b in zip(begins, begins[1:], strict=False)), "references come back ordered by start time")
    check(all(ref.dataId["band"] == BAND for ref in refs), f"every image is in band {BAND}")
    check(all(ref.timespan.overlaps(timespan) for ref in refs), "every image overlaps the time window")
    for i in (1, 2):
        print(f"  reference {i}: {refs[i].dataId!r}")
    data_id = refs[2].dataId
    print(f"  visit and detector of reference 2: {data_id.get('visit')} {data_id.get('detector')}")
    return refs


def same_images_by_sia_and_tap(archive: Archive, refs) -> None:
    section("The same images found through SIA 2.0 and through TAP on ivoa.ObsCore")
    wanted = {ref.id for ref in refs}
    sia_rows = archive.sia.search(pos=(RA, DEC, 1e-4), time=(SEARCH_BEGIN, SEARCH_END), calib_level=3,
                                  lsst_band=BAND)
    from_sia = archive.refs(sia_rows)
    print(f"  SIA: {len(from_sia)} rows, e.g. lsst_visit {from_sia[0].dataId['visit']} "
          f"lsst_detector {from_sia[0].dataId['detector']}")
    check({r.id for r in from_sia if r.datasetType == "difference_image"} == wanted,
          "SIA finds the same difference images, and its rows turn into references")
    adql = ("SELECT lsst_visit, lsst_detector, lsst_band, obs_publisher_did, t_min, t_max FROM ivoa.ObsCore "
            "WHERE calib_level = 3 AND dataproduct_subtype = 'lsst.difference_image' "
            f"AND lsst_band = '{BAND}' AND CONTAINS(POINT('ICRS', {RA}, {DEC}), s_region) = 1 "
            f"AND t_min < {float(SEARCH_END.tai.mjd)!r} AND t_max > {float(SEARCH_BEGIN.tai.mjd)!r} ORDER BY t_min")
    from_tap = archive.refs(archive.tap.search(adql))
    print(f"  TAP: {len(from_tap)} rows")
    check([r.id for r in from_tap] == [r.id for r in refs],
          "an ADQL query on ObsCore gives the same references in the same order")


def three_ways(archive: Archive, ref):
    section("Fetching one image three ways: by reference, by data ID, by visit and detector")
    print(f"  {ref.dataId!r}")
    exposure = archive.get(ref)
    print(f"  {exposure!r}")
    by_data_id = archive.get("difference_image", dataId=ref.dataId)
    check(_same_pixels(exposure, by_data_id), "get(ref) and get(type, dataId=...) give the same pixels")
    del by_data_id
    by_numbers = archive.get("difference_image", visit=ref.dataId.get("visit"),
                             detector=ref.dataId.get("detector"))
    check(_same_pixels(exposure, by_numbers), "get(type, visit=..., detector=...) gives the same pixels")
    return exposure


def _same_pixels(a, b) -> bool:
    return (a.getBBox() == b.getBBox()
            and all(np.array_equal(p, q, equal_nan=p.dtype.kind == "f") for p, q in (
                (a.image.array, b.image.array), (a.mask.array, b.mask.array),
                (a.variance.array, b.variance.array))))


def pixel_planes(exposure) -> None:
    section("Pixel planes: image, variance, mask")
    image, variance, mask = exposure.getImage(), exposure.getVariance(), exposure.getMask()
    for name, plane in (("image", image), ("variance", variance)):
        a = plane.array
        print(f"  {name:8s} {a.shape} {a.dtype}: min {a.min():.6g}  mean {a.mean():.6g}  max {a.max():.6g}"
              f"  [{plane.unit}]")
    for name, plane in (("image", image), ("variance", variance), ("mask", mask)):
        check(plane.array.shape == (CCD_HEIGHT, CCD_WIDTH),
              f"the {name} array is {CCD_HEIGHT} rows x {CCD_WIDTH} columns")
    check(image.unit == "nJy", "image pixels are in nJy")
    check(variance.unit == "nJy**2", "variance pixels are in nJy^2")
    check(bool((variance.array > 0).all()), "variance is positive everywhere")
    check(image.array.min() < 0 < image.array.max(), "a difference image has pixels of both signs")

    planes = mask.getMaskPlaneDict()
    print("  mask planes and their display colours:")
    print("   ", ", ".join(f"{name}: {mask.getMaskPlaneColor(name)}" for name in planes))
    check(len(planes) == 22, "the mask defines 22 planes")
    values, counts = np.unique(mask.array, return_counts=True)
    for value, count in list(zip(values, counts, strict=False))[:6]:
        print(f"    mask value {value:>6d} on {count:>9d} pixels: {mask.interpret(value) or '(none)'}")
    check(all(sum(1 << planes[n] for n in mask.interpret(v).split(",") if n) == v for v in values),
          "every mask value decodes into plane names")


def metadata_and_visit(exposure) -> None:
    section("Header metadata")
    md = exposure.getMetadata().toDict()
    print("  keys mentioning UNIT:", ", ".join(k for k in md if "UNIT" in k))
    check(md.get("BUNIT") == "nJy", "BUNIT is nJy")

    section("Visit information and weather")
    info = exposure.getInfo().getVisitInfo()
    print(f"  airmass {info.getBoresightAirmass()}, parallactic angle {info.getBoresightParAngle()}")
    print(f"  mid-exposure {info.getDate()}, exposure time {info.getExposureTime()} s")
    weather = info.getWeather()
    print(f"  air pressure {weather.getAirPressure()} Pa, temperature {weather.getAirTemperature()} C, "
          f"humidity {weather.getHumidity()} %")
    check(info.getBoresightAirmass() >= 1.0, "the airmass is at least 1")
    check(info.getExposureTime() > 0, "the exposure time is positive")
    check(math.isfinite(info.getBoresightParAngle().asDegrees()), "the parallactic angle is known")
    check(abs(info.getDate().toAstropy() - Time(info.getDate().get(), format="mjd", scale="tai")).sec < 1e-3,
          "the date reads the same as ISO text and as MJD")
    check(weather.getAirPressure() > 0 and math.isfinite(weather.getAirTemperature())
          and 0 <= weather.getHumidity() <= 100, "pressure, temperature and humidity are recorded")
    check(info.id == exposure.data_id["visit"], "the visit info carries the visit id")


def sky_coordinates(exposure) -> None:
    section("World coordinates")
    wcs = exposure.getWcs()
    print(f"  {wcs}")
    target = SpherePoint(RA * degrees, DEC * degrees)
    xy = wcs.skyToPixel(target)
    back = wcs.pixelToSky(xy)
    print(f"  {target} -> pixel {xy} -> {back}")
    sep = back.separation(target).asDegrees()
    check(sep < 1e-6, f"sky -> pixel -> sky returns to the same place ({sep:.1e} deg apart)")
    check(exposure.getBBox().contains(xy), "the searched position is on the image")
    p = Point2D(round(xy.getX(), 1), round(xy.getY(), 1))
    again = wcs.skyToPixel(wcs.pixelToSky(p))
    check(math.hypot(again.getX() - p.getX(), again.getY() - p.getY()) < 1e-6,
          "pixel -> sky -> pixel returns to the same pixel")

    section("Bounding box and corners")
    bbox = exposure.getBBox()
    print(f"  {bbox!r}")
    check((bbox.width, bbox.height) == (CCD_WIDTH, CCD_HEIGHT), f"the image is {CCD_WIDTH} x {CCD_HEIGHT} pixels")
    corners = [Point2D(bbox.beginX, bbox.beginY), Point2D(bbox.beginX, bbox.endY),
               Point2D(bbox.endX, bbox.endY), Point2D(bbox.endX, bbox.beginY)]
    sky = [wcs.pixelToSky(c) for c in corners]
    for corner, s in zip(corners, sky, strict=False):
        print(f"  corner {corner} is at {s}")
    scale = wcs.getPixelScale()
    diagonal = sky[0].separation(sky[2]).asArcseconds() / scale.asArcseconds()
    check(abs(diagonal / math.hypot(bbox.width, bbox.height) - 1) < 0.01,
          "the corners' sky separation matches the size in pixels times the pixel scale")
    area = bbox.area * scale.asArcminutes() ** 2
    print(f"  {bbox.area} pixels of {scale.asArcseconds():.4f} arcsec: {area:.2f} square arcminutes")
    check(bbox.contains(100, 100) and not bbox.contains(10000, 10000), "box membership of pixel positions")
    far = wcs.skyToPixel(SpherePoint(63.0 * degrees, -38.0 * degrees))
    check(not bbox.contains(far.getX(), far.getY()), "a position ten degrees away is off the image")


def point_spread_function(exposure) -> None:
    section("Point-spread function")
    psf = exposure.getPsf()
    where = Point2D(100, 100)
    stamp = psf.computeImage(where)
    print(f"  PSF image at {where}: {stamp.getBBox()!r}, sum {stamp.array.sum():.6f}")
    check(abs(stamp.array.sum() - 1.0) < 1e-6, "the PSF image is normalised")
    shape = psf.computeShape(where)
    sigma = shape.getDeterminantRadius()
    fwhm = sigma * FWHM_PER_SIGMA
    print(f"  sigma {sigma:.4f} px, FWHM {fwhm:.4f} px; ixx {shape.getIxx():.4f} iyy {shape.getIyy():.4f} "
          f"ixy {shape.getIxy():.4f}")
    check(3.5 < fwhm < 5.5, "the PSF FWHM is about 4.5 pixels")


def dia_sources(archive: Archive, exposure, token: str | None):
    section("DiaSources detected on this image")
    visit = exposure.getInfo().getVisitInfo().id
    detector = exposure.getInfo().getDetector().getId()
    print(f"  visit {visit}, detector {detector}")
    table = archive.dia_sources(visit, detector, columns=["diaSourceId", "x", "y"])
    print(f"  {len(table)} DiaSources (async TAP query)")
    check(len(table) > 0, "the image has DiaSources")

    # The notebook's own way: a pyvo TAP service and an async job, written out by hand.
    service = get_tap_service("tap", url=archive.endpoints.base, token=token)
    job = service.submit_job(f"SELECT diaSourceId, x, y FROM dp1.DiaSource "
                             f"WHERE visit = {visit} AND detector = {detector}")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR"])
    print(f"  job phase: {job.phase}")
    if job.phase == "ERROR":
        job.raise_if_error()
    by_hand = job.fetch_result().to_table()
    job.delete()
    check(sorted(by_hand["diaSourceId"]) == sorted(table["diaSourceId"]),
          "the hand-written TAP job returns the same DiaSources")
    inside = exposure.getBBox().contains(np.asarray(table["x"], dtype=float), np.asarray(table["y"], dtype=float))
    check(bool(inside.all()), "every DiaSource of the image lies inside its bounding box")
    return table


def cutout(archive: Archive, ref, exposure):
    section("A cut-out around the searched position (SODA)")
    cut = archive.cutout(ref, RA, DEC, 0.02)
    box = cut.getBBox()
    print(f"  {box!r}")
    check(exposure.getBBox().contains(box), "the cut-out lies within the full image")
    check(np.array_equal(cut.image.array, exposure.image.array[box.slices()]),
          "the cut-out's pixels are the full image's pixels at the same place")
    target = SpherePoint(RA, DEC, degrees)
    a, b = cut.getWcs().skyToPixel(target), exposure.getWcs().skyToPixel(target)
    check(math.hypot(a.getX() - b.getX(), a.getY() - b.getY()) < 1e-6,
          "the searched position has the same (parent) pixel coordinates in both")
    return cut


def draw(exposure, cut, sources, out: Path) -> None:
    section("Pictures")
    try:
        from diavo.client import display
        fig = display(exposure, mask_transparency=100, sources=sources, out=out)
    except ImportError as exc:
        print(f"  skipped: {exc}")
        return
    print(f"  wrote {out} (mask hidden, DiaSources ringed)")
    check(out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the picture is a PNG file")
    del fig
    cut_out = out.with_name(out.stem + "-cutout" + out.suffix)
    display(cut, mask_transparency=50, sources=sources, out=cut_out)
    print(f"  wrote {cut_out} (cut-out, mask planes half transparent)")


def run(url: str, token: str | None, out: Path, cache_dir: str | None) -> None:
    archive = Archive(url, token=token, cache_dir=cache_dir)
    print(f"service: {archive.endpoints.base}  (TAP {archive.endpoints.tap})")
    refs = find_images(archive)
    same_images_by_sia_and_tap(archive, refs)
    exposure = three_ways(archive, refs[0])
    pixel_planes(exposure)
    metadata_and_visit(exposure)
    sky_coordinates(exposure)
    point_spread_function(exposure)
    sources = dia_sources(archive, exposure, token)
    cut = cutout(archive, refs[0], exposure)
    draw(exposure, cut, sources, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("DIAVO_URL", "http://127.0.0.1:8000"),
                        help="base URL of the diavo service (default: $DIAVO_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", default=os.environ.get("DIAVO_TOKEN"), help="bearer token (default: $DIAVO_TOKEN)")
    parser.add_argument("--out", type=Path, default=Path("difference_image.png"), help="PNG file to write")
    parser.add_argument("--cache-dir", help="keep downloaded images in this directory")
    args = parser.parse_args(argv)
    try:
        run(args.url, args.token, args.out, args.cache_dir)
    except CheckFailed as exc:
        print(f"\nFAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an unreachable service, a refused request...: still a failure
        print(f"\nERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
