"""A difference image as the pipelines' ``ExposureF`` presents it, read from diavo's FITS files.

The file (whole CCD, or a SODA cut-out) is an empty primary HDU holding the metadata (visit,
weather, PSF model), then IMAGE (nJy), MASK (bits named by ``MP_*`` cards) and VARIANCE (nJy^2).
Where the pixels sit on the CCD comes from the 'A' PHYSICAL WCS (LTV1/LTV2 as a fallback), so a
cut-out's bounding box, WCS and PSF all speak parent-CCD pixels, as the pipelines do.
"""
from __future__ import annotations

import io
import os
from typing import BinaryIO

import numpy as np
from astropy.io import fits

from diavo.shared.camera import CCD_HEIGHT, CCD_WIDTH

from .geom import Box2I, Extent2I, Point2I, SpherePoint
from .planes import Image, Mask, PropertyList
from .psf import Psf
from .visit import Detector, FilterLabel, VisitInfo
from .wcs import SkyWcs

FitsSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


def parent_origin(header) -> tuple[int, int]:
    """Parent pixel (x0, y0) of array element [0, 0], from the PHYSICAL WCS or LTV cards."""
    if str(header.get("WCSNAMEA", "")).strip().upper() == "PHYSICAL" and "CRVAL1A" in header:
        x0 = float(header["CRVAL1A"]) - (float(header.get("CRPIX1A", 1.0)) - 1.0) * float(header.get("CD1_1A", 1.0))
        y0 = float(header["CRVAL2A"]) - (float(header.get("CRPIX2A", 1.0)) - 1.0) * float(header.get("CD2_2A", 1.0))
        return int(round(x0)), int(round(y0))
    return -int(round(float(header.get("LTV1", 0)))), -int(round(float(header.get("LTV2", 0))))


def _native(data: np.ndarray, dtype) -> np.ndarray:
    """The plane in native byte order (FITS data is big-endian), swapped in place when astropy
    handed us its own writable copy: a whole CCD is ~200 MB, so no second copy is made."""
    arr = np.asarray(data)
    want = np.dtype(dtype)
    if not arr.dtype.isnative and arr.dtype.newbyteorder("=") == want and arr.flags.writeable:
        return arr.byteswap(inplace=True).view(want)
    return arr.astype(want, copy=False)


class ExposureInfo:
    """``exposure.getInfo()``: the non-pixel parts of an exposure."""

    def __init__(self, visit_info: VisitInfo | None, detector: Detector | None, wcs: SkyWcs | None,
                 psf: Psf | None, filter_label: FilterLabel | None) -> None:
        self.visitInfo, self.detector, self.wcs = visit_info, detector, wcs
        self.psf, self.filter = psf, filter_label

    def getVisitInfo(self) -> VisitInfo | None:
        return self.visitInfo

    def getDetector(self) -> Detector | None:
        return self.detector

    def getWcs(self) -> SkyWcs | None:
        return self.wcs

    def getPsf(self) -> Psf | None:
        return self.psf

    def getFilter(self) -> FilterLabel | None:
        return self.filter

    def hasVisitInfo(self) -> bool:
        return self.visitInfo is not None

    def hasDetector(self) -> bool:
        return self.detector is not None

    def hasWcs(self) -> bool:
        return self.wcs is not None

    def hasPsf(self) -> bool:
        return self.psf is not None

    def hasFilter(self) -> bool:
        return self.filter is not None

    @property
    def visit_info(self) -> VisitInfo | None:
        return self.visitInfo


class MaskedImage:
    """Image, mask and variance together (``exposure.getMaskedImage()``)."""

    def __init__(self, image: Image, mask: Mask, variance: Image) -> None:
        self.image, self.mask, self.variance = image, mask, variance

    def getImage(self) -> Image:
        return self.image

    def getMask(self) -> Mask:
        return self.mask

    def getVariance(self) -> Image:
        return self.variance

    def getBBox(self) -> Box2I:
        return self.image.getBBox()


class Exposure:
    """One difference image (or a cut-out): planes, metadata, visit info, WCS and PSF.

    The pipelines' getters (``getImage()``, ``getWcs()``, ``getInfo().getVisitInfo()``...) and
    properties for the same things (``image``, ``wcs``, ``visitInfo``, ``bbox``...). Positions are
    parent-CCD pixels, zero-based, pixel centres on integers: array element ``[j, i]`` is pixel
    ``(x0 + i, y0 + j)``, a cut-out's ``getBBox()`` begins at its offset, and the WCS and PSF take
    parent positions.
    """

    def __init__(self, image: Image, mask: Mask, variance: Image, metadata: PropertyList,
                 info: ExposureInfo) -> None:
        if not (image.getBBox() == mask.getBBox() == variance.getBBox()):
            raise ValueError("image, mask and variance planes differ in size or position")
        self._mi = MaskedImage(image, mask, variance)
        self._metadata = metadata
        self._info = info

    # -- reading --------------------------------------------------------------------------------
    @classmethod
    def from_fits(cls, data: FitsSource) -> Exposure:
        """Parse diavo's MEF FITS: bytes, a path, or a binary file object."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = io.BytesIO(bytes(data))
        elif isinstance(data, os.PathLike):
            data = os.fspath(data)
        with fits.open(data, memmap=False, lazy_load_hdus=False) as hdul:
            names = {hdu.name for hdu in hdul}
            missing = {"IMAGE", "MASK", "VARIANCE"} - names
            if missing:
                raise ValueError(f"not an exposure FITS file: no {', '.join(sorted(missing))} extension")
            primary = hdul[0].header
            img_hdu, msk_hdu, var_hdu = hdul["IMAGE"], hdul["MASK"], hdul["VARIANCE"]
            x0, y0 = parent_origin(img_hdu.header)
            image = Image(_native(img_hdu.data, np.float32), x0, y0,
                          img_hdu.header.get("BUNIT", primary.get("BUNIT")))
            mask = Mask(_native(msk_hdu.data, np.int32), *parent_origin(msk_hdu.header),
                        planes={key[3:]: int(msk_hdu.header[key]) for key in msk_hdu.header if key.startswith("MP_")})
            variance = Image(_native(var_hdu.data, np.float32), *parent_origin(var_hdu.header),
                             var_hdu.header.get("BUNIT"))
            info = ExposureInfo(
                visit_info=VisitInfo.from_header(primary) if {"DATE-AVG", "MJD-AVG"} & set(primary) else None,
                detector=cls._detector(primary),
                wcs=SkyWcs.from_header(img_hdu.header, x0, y0) if "CTYPE1" in img_hdu.header else None,
                psf=Psf.from_header(primary) if "PSFIXX0" in primary else None,
                filter_label=FilterLabel(str(primary.get("BAND", "")), str(primary.get("FILTER", "")))
                if "BAND" in primary or "FILTER" in primary else None,
            )
            return cls(image, mask, variance, PropertyList(primary), info)

    @staticmethod
    def _detector(primary) -> Detector | None:
        if "DETECTOR" not in primary:
            return None
        width = int(primary.get("PSFWIDTH", CCD_WIDTH))
        height = int(primary.get("PSFHEIGH", CCD_HEIGHT))
        return Detector(int(primary["DETECTOR"]), str(primary.get("DET_NAME", "")),
                        Box2I(Point2I(0, 0), Extent2I(width, height)))

    # -- the pipelines' getters -----------------------------------------------------------------
    def getImage(self) -> Image:
        return self._mi.image

    def getMask(self) -> Mask:
        return self._mi.mask

    def getVariance(self) -> Image:
        return self._mi.variance

    def getMaskedImage(self) -> MaskedImage:
        return self._mi

    def getMetadata(self) -> PropertyList:
        return self._metadata

    def getInfo(self) -> ExposureInfo:
        return self._info

    def getWcs(self) -> SkyWcs | None:
        return self._info.wcs

    def getPsf(self) -> Psf | None:
        return self._info.psf

    def getFilter(self) -> FilterLabel | None:
        return self._info.filter

    def getDetector(self) -> Detector | None:
        return self._info.detector

    def getBBox(self) -> Box2I:
        """Bounding box in parent pixels (a cut-out starts at its offset on the CCD)."""
        return self._mi.image.getBBox()

    def getXY0(self) -> Point2I:
        return self._mi.image.getXY0()

    def getX0(self) -> int:
        return self._mi.image.getX0()

    def getY0(self) -> int:
        return self._mi.image.getY0()

    def getWidth(self) -> int:
        return self._mi.image.getWidth()

    def getHeight(self) -> int:
        return self._mi.image.getHeight()

    def getDimensions(self) -> Extent2I:
        return self._mi.image.getDimensions()

    def hasWcs(self) -> bool:
        return self._info.hasWcs()

    def hasPsf(self) -> bool:
        return self._info.hasPsf()

    # -- Pythonic properties (the names the pipelines' Exposure also has) ------------------------
    image = property(getImage)
    mask = property(getMask)
    variance = property(getVariance)
    maskedImage = property(getMaskedImage)
    metadata = property(getMetadata)
    info = property(getInfo)
    wcs = property(getWcs)
    psf = property(getPsf)
    filter = property(getFilter)
    detector = property(getDetector)
    bbox = property(getBBox)
    xy0 = property(getXY0)
    width = property(getWidth)
    height = property(getHeight)

    @property
    def visitInfo(self) -> VisitInfo | None:
        return self._info.visitInfo

    visit_info = visitInfo

    @property
    def data_id(self) -> dict:
        """The dataset's Butler-style data ID, from the header."""
        md = self._metadata
        out = {"instrument": md.get("INSTRUME"), "detector": md.get("DETECTOR"), "visit": md.get("VISIT"),
               "band": md.get("BAND"), "day_obs": md.get("DAY_OBS"), "physical_filter": md.get("FILTER")}
        return {k: v for k, v in out.items() if v is not None}

    # -- cutting ---------------------------------------------------------------------------------
    def subset(self, bbox: Box2I) -> Exposure:
        """The part inside ``bbox`` (parent pixels), sharing pixels with this exposure."""
        wcs = self._info.wcs
        if wcs is not None:
            wcs = SkyWcs(wcs.wcs.slice(self._mi.image._local(bbox)), bbox.getMinX(), bbox.getMinY())
        info = ExposureInfo(self._info.visitInfo, self._info.detector, wcs, self._info.psf, self._info.filter)
        return Exposure(self._mi.image.subset(bbox), self._mi.mask.subset(bbox),
                        self._mi.variance.subset(bbox), self._metadata, info)

    def getCutout(self, center: SpherePoint, size: Extent2I) -> Exposure:
        """A ``size`` box centred on a sky position, clipped to this exposure."""
        if self._info.wcs is None:
            raise ValueError("this exposure has no WCS")
        p = self._info.wcs.skyToPixel(center)
        w, h = size.getX(), size.getY()
        x0 = int(np.floor(p.getX() + 0.5)) - w // 2
        y0 = int(np.floor(p.getY() + 0.5)) - h // 2
        box = Box2I(Point2I(x0, y0), Extent2I(w, h)).clippedTo(self.getBBox())
        if box.isEmpty():
            raise ValueError(f"{center} is not on this exposure")
        return self.subset(box)

    def __getitem__(self, bbox: Box2I) -> Exposure:
        return self.subset(bbox)

    def __repr__(self) -> str:
        vi = self._info.visitInfo
        det = self._info.detector
        what = f"visit {vi.id}, detector {det.id}" if vi is not None and det is not None else "no visit info"
        return f"<diavo Exposure ({what}) {self.getBBox()!r}>"
