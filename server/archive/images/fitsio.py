"""LSST-style multi-extension FITS for a difference image (or a cut-out of one).

Layout as the Rubin pipelines write an ExposureF: an empty primary HDU with the metadata, then
IMAGE (float32, nJy), MASK (int32, ``MP_*`` plane cards) and VARIANCE (float32, nJy**2). Every
pixel HDU carries the sky WCS of its own pixel grid, and the LSST cut-out convention (LTV1/LTV2 and
an 'A' PHYSICAL WCS) records where its pixel (0, 0) sits in the parent CCD.
"""
from __future__ import annotations

import io
import math
import os
from typing import TYPE_CHECKING

import numpy as np

from diavo.shared.camera import FACILITY, INSTRUMENT, detector_layout
from diavo.shared.masks import plane_cards

from .spec import ImageSpec
from .synth import Planes

if TYPE_CHECKING:
    from astropy.io import fits


# astropy.io.fits, astropy.time and astropy.wcs cost ~0.7 s and ~30 MiB to import; the server
# imports this module at start (its routes name the image types), so they are imported by the
# first image request instead.
def _fits():
    from astropy.io import fits

    return fits


def _time():
    from astropy.time import Time

    return Time


def _wcs():
    from astropy.wcs import WCS

    return WCS


VARIANCE_UNIT = "nJy**2"  # astropy.units parses this in both the generic and FITS formats


def _isot(mjd_tai: float) -> str:
    return _time()(mjd_tai, format="mjd", scale="tai").isot


def _xy0_cards(x0: int, y0: int) -> list[tuple[str, object, str]]:
    """LTV and the 'A' PHYSICAL WCS: how afw recovers a cut-out's xy0 from a file."""
    return [
        ("LTV1", -int(x0), "parent pixel of x=0 is -LTV1"),
        ("LTV2", -int(y0), "parent pixel of y=0 is -LTV2"),
        ("WCSNAMEA", "PHYSICAL", "parent-CCD pixel frame"),
        ("CTYPE1A", "LINEAR", ""), ("CTYPE2A", "LINEAR", ""),
        ("CRPIX1A", 1.0, ""), ("CRPIX2A", 1.0, ""),
        ("CRVAL1A", float(x0), "parent x of this HDU's first pixel"),
        ("CRVAL2A", float(y0), "parent y of this HDU's first pixel"),
        ("CD1_1A", 1.0, ""), ("CD2_2A", 1.0, ""),
    ]


def primary_cards(spec: ImageSpec, x0: int = 0, y0: int = 0) -> list[tuple[str, object, str]]:
    """The exposure metadata, as the tutorial's ``getMetadata()`` / ``getVisitInfo()`` show it."""
    lay = detector_layout(spec.detector)
    mid = spec.obs_mid_mjd_tai
    end = spec.obs_start_mjd_tai + spec.exp_time / 86400.0
    cards = [
        ("BUNIT", "nJy", "pixel flux unit"),
        ("INSTRUME", INSTRUMENT, ""),
        ("TELESCOP", FACILITY, ""),
        ("DETECTOR", int(spec.detector), "detector id"),
        ("DET_NAME", lay.name, "raft_sensor name"),
        ("VISIT", int(spec.visit), "visit id"),
        ("HIERARCH LSST BUTLER DATAID VISIT", int(spec.visit), ""),
        ("HIERARCH LSST BUTLER DATAID DETECTOR", int(spec.detector), ""),
        ("DAY_OBS", int(spec.day_obs), "observing day, YYYYMMDD"),
        ("BAND", spec.band, ""),
        ("FILTER", spec.physical_filter, "physical filter"),
        ("TIMESYS", "TAI", ""),
        ("DATE-BEG", _isot(spec.obs_start_mjd_tai), "start of exposure"),
        ("DATE-AVG", _isot(mid), "middle of exposure"),
        ("DATE-END", _isot(end), "end of exposure"),
        ("MJD-BEG", float(spec.obs_start_mjd_tai), "[d] start of exposure, TAI"),
        ("MJD-AVG", float(mid), "[d] middle of exposure, TAI"),
        ("MJD-END", float(end), "[d] end of exposure, TAI"),
        ("EXPTIME", float(spec.exp_time), "[s] exposure time"),
        ("AIRMASS", float(spec.airmass), "boresight airmass"),
        ("BORE-RA", float(spec.boresight_ra), "[deg] boresight RA"),
        ("BORE-DEC", float(spec.boresight_dec), "[deg] boresight Dec"),
        ("HIERARCH BORE-ROTANG", float(spec.rotation_deg), "[deg] sky rotation angle"),
        ("BORE-PA", math.degrees(spec.par_angle_rad), "[deg] boresight parallactic angle"),
        ("HIERARCH BORE-PA-RAD", float(spec.par_angle_rad), "[rad] parallactic angle"),
        ("ALTITUDE", float(spec.altitude_deg), "[deg] boresight altitude"),
        ("AZIMUTH", float(spec.azimuth_deg), "[deg] boresight azimuth"),
        ("PRESSURE", float(spec.air_pressure_pa), "[Pa] air pressure"),
        ("AIRTEMP", float(spec.air_temperature_c), "[C] air temperature"),
        ("HUMIDITY", float(spec.humidity_pct), "[%] relative humidity"),
        ("HIERARCH LSST ISR UNITS", "electron", ""),
        ("HIERARCH LSST ISR OVERSCAN SERIAL UNITS", "adu", ""),
        ("HIERARCH LSST ISR READNOISE UNITS", "electron", ""),
        ("HIERARCH LSST ISR OVERSCAN PARALLEL UNITS", "adu", ""),
    ]
    cards += spec.psf.header_cards()
    cards += _xy0_cards(x0, y0)
    return cards


def _header(cards) -> fits.Header:
    hdr = _fits().Header()
    for key, value, comment in cards:
        if len(key) > 8 and not key.startswith("HIERARCH "):
            key = "HIERARCH " + key  # e.g. MP_DETECTED_NEGATIVE, as afw writes it
        hdr.append((key, value, comment), end=True)
    return hdr


def _pixel_hdu(data: np.ndarray, name: str, dtype: str, spec: ImageSpec, x0: int, y0: int, extra=()):
    # Big-endian up front: astropy writes such data without its own byteswap round trip.
    arr = np.ascontiguousarray(data, dtype=np.dtype(dtype).newbyteorder(">"))
    hdr = _header(
        [("EXTNAME", name, ""), ("EXTTYPE", name, ""), ("INHERIT", True, "use the primary header")]
        + list(extra)
        + spec.wcs_cards(x0, y0)
        + _xy0_cards(x0, y0)
    )
    return _fits().ImageHDU(data=arr, header=hdr, name=name)


def exposure_hdulist(spec: ImageSpec, planes: Planes, extra_cards=()) -> fits.HDUList:
    """Primary + IMAGE + MASK + VARIANCE for ``planes`` (a whole CCD or a cut-out)."""
    x0, y0 = int(planes.x0), int(planes.y0)
    primary = _fits().PrimaryHDU(header=_header(primary_cards(spec, x0, y0) + list(extra_cards)))
    image = _pixel_hdu(planes.image, "IMAGE", "f4", spec, x0, y0, [("BUNIT", "nJy", "")])
    mask = _pixel_hdu(planes.mask, "MASK", "i4", spec, x0, y0, plane_cards())
    variance = _pixel_hdu(planes.variance, "VARIANCE", "f4", spec, x0, y0, [("BUNIT", VARIANCE_UNIT, "")])
    return _fits().HDUList([primary, image, mask, variance])


def exposure_bytes(spec: ImageSpec, planes: Planes, extra_cards=()) -> bytes:
    buf = io.BytesIO()
    exposure_hdulist(spec, planes, extra_cards).writeto(buf, output_verify="silentfix")
    return buf.getvalue()


def read_exposure(source):
    """(primary header as dict, Planes, astropy WCS of the IMAGE HDU) from a path or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, os.PathLike):
        source = os.fspath(source)
    with _fits().open(source, memmap=False) as hdul:
        meta = dict(hdul[0].header)
        img_hdr = hdul["IMAGE"].header
        x0, y0 = -int(img_hdr.get("LTV1", 0)), -int(img_hdr.get("LTV2", 0))
        planes = Planes(
            image=hdul["IMAGE"].data.astype(np.float32),
            mask=hdul["MASK"].data.astype(np.int32),
            variance=hdul["VARIANCE"].data.astype(np.float32),
            x0=x0,
            y0=y0,
        )
        wcs = _wcs()(img_hdr)
    return meta, planes, wcs


def exposure_headers(spec: ImageSpec, width: int, height: int, x0: int = 0, y0: int = 0,
                     extra_cards=()) -> list[fits.Header]:
    """The four headers ``exposure_bytes`` writes for a ``width`` x ``height`` (sub-)image at
    parent pixel (x0, y0), built without any pixels: for detached headers and exact file sizes."""
    one = np.zeros((1, 1), dtype=np.float32)
    tiny = Planes(image=one, mask=one.astype(np.int32), variance=one, x0=x0, y0=y0)
    headers = []
    for hdu in exposure_hdulist(spec, tiny, extra_cards):
        hdr = hdu.header.copy()
        if hdr.get("NAXIS", 0) == 2:
            hdr["NAXIS1"], hdr["NAXIS2"] = int(width), int(height)
        headers.append(hdr)
    return headers


def padded(nbytes: int) -> int:
    """Bytes a FITS header or data unit of ``nbytes`` occupies (2880-byte blocks)."""
    return -(-int(nbytes) // 2880) * 2880


def pixel_views(buf) -> dict[str, np.ndarray]:
    """Zero-copy numpy views (big-endian) of every 2-d image HDU of a FITS byte buffer, by
    EXTNAME. Reads only the header cards it needs, so a cached file costs nothing to reopen."""
    mem = memoryview(buf).cast("B")
    out: dict[str, np.ndarray] = {}
    pos, size = 0, len(mem)
    while pos + 2880 <= size:
        cards: dict[str, str] = {}
        end = False
        while not end:
            block = bytes(mem[pos:pos + 2880])
            if len(block) < 2880:
                raise ValueError("truncated FITS header")
            pos += 2880
            for i in range(0, 2880, 80):
                key = block[i:i + 8].decode("ascii", "replace").strip()
                if key == "END":
                    end = True
                    break
                if block[i + 8:i + 10] == b"= " and key not in cards:
                    cards[key] = block[i + 10:i + 80].decode("ascii", "replace").split("/")[0].strip()
        naxis = int(cards.get("NAXIS", "0"))
        if naxis == 0:
            continue
        bitpix = int(cards["BITPIX"])
        shape = tuple(int(cards[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
        dtype = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}[bitpix]
        count = int(np.prod(shape))
        name = cards.get("EXTNAME", "").strip("'").strip() or f"HDU{len(out)}"
        if naxis == 2:
            out[name] = np.frombuffer(mem, dtype=dtype, count=count, offset=pos).reshape(shape)
        pos += padded(count * abs(bitpix) // 8)
    return out


class ExposureWriter:
    """``exposure_bytes`` for any cut-out of one image, from header text built once.

    astropy spends ~40 ms building and verifying the ~200 cards of a cut-out's four headers; only
    the size and the cut-out offset change between cut-outs of one image. So the headers are
    built once (for the whole CCD) and each cut-out rewrites the value field of the few cards that
    depend on its box. The output is byte for byte what ``exposure_bytes`` writes (tested).
    """

    #: Cards whose (numeric) values depend on the cut-out box.
    VARYING = ("NAXIS1", "NAXIS2", "CRPIX1", "CRPIX2", "LTV1", "LTV2", "CRVAL1A", "CRVAL2A")
    _DTYPES = (">f4", ">i4", ">f4")  # IMAGE, MASK, VARIANCE, as exposure_hdulist writes them

    def __init__(self, spec: ImageSpec, extra_cards=()) -> None:
        self.spec = spec
        self._cards: list[list[str]] = []
        self._where: list[dict[str, int]] = []
        for hdr in exposure_headers(spec, spec.width, spec.height, 0, 0, extra_cards):
            text = hdr.tostring()
            cards = [text[i:i + 80] for i in range(0, len(text), 80)]
            where = {}
            for i, card in enumerate(cards):
                key = card[:8].strip()
                if key in self.VARYING and card[8:10] == "= ":
                    where[key] = i
            self._cards.append(cards)
            self._where.append(where)

    def _values(self, planes: Planes) -> dict[str, object]:
        x0, y0 = int(planes.x0), int(planes.y0)
        h, w = planes.image.shape
        values: dict[str, object] = {"NAXIS1": int(w), "NAXIS2": int(h)}
        for key, value, _ in self.spec.wcs_cards(x0, y0) + _xy0_cards(x0, y0):
            if key in self.VARYING:
                values[key] = value
        return values

    def bytes(self, planes: Planes) -> bytes:
        values = self._values(planes)
        fields = {key: _fits().Card(key, value).image[10:30] for key, value in values.items()}
        parts: list[bytes] = []
        data = (planes.image, planes.mask, planes.variance)
        for n, (cards, where) in enumerate(zip(self._cards, self._where, strict=False)):
            cards = list(cards)
            for key, i in where.items():
                cards[i] = cards[i][:10] + fields[key] + cards[i][30:]
            parts.append("".join(cards).encode("ascii"))
            if n:
                raw = np.ascontiguousarray(data[n - 1], dtype=self._DTYPES[n - 1]).tobytes()
                parts.append(raw)
                parts.append(b"\0" * (padded(len(raw)) - len(raw)))
        return b"".join(parts)
