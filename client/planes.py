"""The pixel planes of an exposure (image, variance, mask) and its header metadata.

Each plane is a numpy array plus the parent-pixel position of its element [0, 0] (``xy0``), so
``getBBox()`` of a cut-out sits where the cut-out lies on the CCD, as in the LSST pipelines.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from diavo.shared.masks import MASK_COLORS
from diavo.shared.masks import interpret as _interpret

from .geom import Box2I, Extent2I, Point2I

#: Colour a display uses for a plane it has no colour for.
DEFAULT_MASK_COLOR = "magenta"


class Image:
    """A 2-d pixel array (``.array``, shape (height, width)) placed at parent pixel ``xy0``."""

    def __init__(self, array: np.ndarray, x0: int = 0, y0: int = 0, unit: str | None = None) -> None:
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"an image plane is 2-d, not {array.ndim}-d")
        self.array = array
        self._x0, self._y0 = int(x0), int(y0)
        self.unit = unit

    def getArray(self) -> np.ndarray:
        return self.array

    def getX0(self) -> int:
        return self._x0

    def getY0(self) -> int:
        return self._y0

    def getXY0(self) -> Point2I:
        return Point2I(self._x0, self._y0)

    def getWidth(self) -> int:
        return int(self.array.shape[1])

    def getHeight(self) -> int:
        return int(self.array.shape[0])

    def getDimensions(self) -> Extent2I:
        return Extent2I(self.getWidth(), self.getHeight())

    def getBBox(self) -> Box2I:
        return Box2I.from_bounds(self._x0, self._y0, self.getWidth(), self.getHeight())

    @property
    def bbox(self) -> Box2I:
        return self.getBBox()

    @property
    def xy0(self) -> Point2I:
        return self.getXY0()

    @property
    def width(self) -> int:
        return self.getWidth()

    @property
    def height(self) -> int:
        return self.getHeight()

    def convertF(self) -> Image:
        """A float32 copy (the pipelines' ImageF)."""
        return type(self)(self.array.astype(np.float32), self._x0, self._y0, self.unit)

    def convertD(self) -> Image:
        """A float64 copy (the pipelines' ImageD)."""
        return type(self)(self.array.astype(np.float64), self._x0, self._y0, self.unit)

    def subset(self, bbox: Box2I) -> Image:
        """The part of the plane inside ``bbox`` (parent pixels); a view, not a copy."""
        return type(self)(self.array[self._local(bbox)], bbox.getMinX(), bbox.getMinY(), self.unit)

    def _local(self, bbox: Box2I) -> tuple[slice, slice]:
        if not self.getBBox().contains(bbox) or bbox.isEmpty():
            raise ValueError(f"{bbox!r} is not inside {self.getBBox()!r}")
        return (slice(bbox.getMinY() - self._y0, bbox.getEndY() - self._y0),
                slice(bbox.getMinX() - self._x0, bbox.getEndX() - self._x0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.getBBox()!r}, dtype={self.array.dtype}, unit={self.unit!r})"


class Mask(Image):
    """An integer bit mask; which bit means what comes from the file's ``MP_*`` cards."""

    def __init__(self, array: np.ndarray, x0: int = 0, y0: int = 0, planes: dict[str, int] | None = None,
                 unit: str | None = None) -> None:
        super().__init__(array, x0, y0, unit)
        self._planes = dict(sorted((planes or {}).items()))

    def getMaskPlaneDict(self) -> dict[str, int]:
        """Plane name -> bit number, sorted by name (as the pipelines list them)."""
        return dict(self._planes)

    def getMaskPlane(self, name: str) -> int:
        """The bit number of a plane."""
        try:
            return self._planes[name]
        except KeyError:
            raise KeyError(f"no mask plane {name!r}; planes: {', '.join(self._planes)}") from None

    def getPlaneBitMask(self, names) -> int:
        """The integer with the bits of one plane name or of several set."""
        names = [names] if isinstance(names, str) else list(names)
        value = 0
        for name in names:
            value |= 1 << self.getMaskPlane(name)
        return value

    def interpret(self, value: int) -> str:
        """Names of the planes set in ``value``, comma-separated."""
        return _interpret(int(value), self._planes)

    def getMaskPlaneColor(self, name: str) -> str:
        """The colour a display draws the plane in (the pipelines' defaults)."""
        self.getMaskPlane(name)
        return mask_plane_color(name)

    def plane_array(self, name: str) -> np.ndarray:
        """Boolean array: where the named plane is set."""
        return (self.array & self.getPlaneBitMask(name)) != 0

    def subset(self, bbox: Box2I) -> Mask:
        return Mask(self.array[self._local(bbox)], bbox.getMinX(), bbox.getMinY(), self._planes, self.unit)

    def convertF(self) -> Image:
        return Image(self.array.astype(np.float32), self._x0, self._y0, self.unit)

    @property
    def planes(self) -> dict[str, int]:
        return self.getMaskPlaneDict()


def mask_plane_color(name: str) -> str:
    """Display colour of a mask plane by name."""
    return MASK_COLORS.get(name, DEFAULT_MASK_COLOR)


class PropertyList:
    """Header metadata, read like the pipelines' ``PropertyList``: ``toDict()``, ``get``, ``[]``.

    Long keys appear without the FITS ``HIERARCH`` prefix (e.g. ``'LSST ISR UNITS'``).
    """

    _SKIP = ("", "COMMENT", "HISTORY")

    def __init__(self, header) -> None:
        self._header = header.copy()

    def toDict(self) -> dict:
        return {key: value for key, value in self._header.items() if key not in self._SKIP}

    def names(self) -> list[str]:
        return list(self.toDict())

    getOrderedNames = names
    keys = names

    def get(self, key: str, default=None):
        return self._header.get(key, default)

    def getScalar(self, key: str):
        return self[key]

    def getArray(self, key: str) -> list:
        return [self[key]]

    def getComment(self, key: str) -> str:
        return self._header.comments[key]

    def exists(self, key: str) -> bool:
        return key in self

    @property
    def header(self):
        """A copy of the astropy ``Header``."""
        return self._header.copy()

    def __getitem__(self, key: str):
        if key in self._SKIP or key not in self._header:
            raise KeyError(key)
        return self._header[key]

    def __contains__(self, key: str) -> bool:
        return key not in self._SKIP and key in self._header

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return "\n".join(f"{k} = {v!r}" for k, v in self.toDict().items())
