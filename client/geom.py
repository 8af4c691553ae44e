"""Small geometry value types that read like ``lsst.geom``: angles, sky and pixel points, boxes.

A notebook written for the Rubin pipelines says ``SpherePoint(53.125*degrees, -27.74*degrees)``,
``Point2D(1905.3, 2040.7)`` and ``bbox.beginX``; these classes answer the same calls (and offer
plain Python properties beside them) with nothing but numpy and astropy underneath.

Pixel positions follow the LSST convention: zero-based, pixel centres on integers, in the PARENT
frame of the CCD (a cut-out keeps the coordinates of the full image).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AngleUnit", "Angle", "radians", "degrees", "arcminutes", "arcseconds", "SpherePoint",
    "Point2D", "Point2I", "Extent2I", "Box2I",
]


# -- angles --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AngleUnit:
    """A unit of angle; ``value * unit`` makes an Angle, as in ``lsst.geom``."""

    name: str
    size_rad: float  # one unit, in radians

    # numpy scalars defer to __rmul__ instead of making an object array
    __array_ufunc__ = None

    def __rmul__(self, value) -> Angle:
        return Angle(float(value), self)

    def __repr__(self) -> str:
        return self.name


radians = AngleUnit("radians", 1.0)
degrees = AngleUnit("degrees", math.pi / 180.0)
arcminutes = AngleUnit("arcminutes", math.pi / 180.0 / 60.0)
arcseconds = AngleUnit("arcseconds", math.pi / 180.0 / 3600.0)


class Angle:
    """An angle stored in radians; ``float(angle)`` is radians, as LSST's ``Angle`` behaves."""

    __slots__ = ("_rad",)
    _rad: float
    __array_ufunc__ = None

    def __init__(self, value: float | Angle = 0.0, unit: AngleUnit = radians) -> None:
        if isinstance(value, Angle):
            self._rad = value._rad
        else:
            self._rad = float(value) * unit.size_rad

    # LSST accessors
    def asRadians(self) -> float:
        return self._rad

    def asDegrees(self) -> float:
        return math.degrees(self._rad)

    def asArcminutes(self) -> float:
        return math.degrees(self._rad) * 60.0

    def asArcseconds(self) -> float:
        return math.degrees(self._rad) * 3600.0

    def asAngularUnits(self, unit: AngleUnit) -> float:
        return self._rad / unit.size_rad

    def wrap(self) -> Angle:
        """The same direction in [0, 2 pi)."""
        return Angle(self._rad % (2.0 * math.pi))

    def wrapCtr(self) -> Angle:
        """The same direction in [-pi, pi)."""
        return Angle((self._rad + math.pi) % (2.0 * math.pi) - math.pi)

    # Pythonic views
    @property
    def rad(self) -> float:
        return self._rad

    @property
    def deg(self) -> float:
        return self.asDegrees()

    @property
    def arcsec(self) -> float:
        return self.asArcseconds()

    def to_astropy(self):
        """The angle as an ``astropy.units.Quantity`` in degrees."""
        import astropy.units as u

        return self.asDegrees() * u.deg

    # arithmetic
    def __float__(self) -> float:
        return self._rad

    def __add__(self, other: Angle) -> Angle:
        return Angle(self._rad + Angle(other)._rad)

    def __sub__(self, other: Angle) -> Angle:
        return Angle(self._rad - Angle(other)._rad)

    def __neg__(self) -> Angle:
        return Angle(-self._rad)

    def __abs__(self) -> Angle:
        return Angle(abs(self._rad))

    def __mul__(self, k: float) -> Angle:
        return Angle(self._rad * float(k))

    __rmul__ = __mul__

    def __truediv__(self, k):
        if isinstance(k, Angle):
            return self._rad / k._rad
        return Angle(self._rad / float(k))

    def _cmp(self, other) -> float:
        return Angle(other)._rad if isinstance(other, Angle) else float(other)

    def __eq__(self, other) -> bool:
        return isinstance(other, (Angle, int, float)) and self._rad == self._cmp(other)

    def __lt__(self, other) -> bool:
        return self._rad < self._cmp(other)

    def __le__(self, other) -> bool:
        return self._rad <= self._cmp(other)

    def __gt__(self, other) -> bool:
        return self._rad > self._cmp(other)

    def __ge__(self, other) -> bool:
        return self._rad >= self._cmp(other)

    def __hash__(self) -> int:
        return hash(self._rad)

    def __str__(self) -> str:
        return f"{self._rad:.6g} rad"

    def __repr__(self) -> str:
        return f"Angle({self._rad!r}, radians)"


def _angle(value, unit: AngleUnit | None) -> Angle:
    if isinstance(value, Angle):
        if unit is not None:
            raise TypeError("give either Angles or numbers with a unit, not both")
        return value
    if unit is None:
        raise TypeError("a number needs a unit (e.g. SpherePoint(53.1, -27.7, degrees))")
    return Angle(float(value), unit)


# -- sky points ----------------------------------------------------------------------------------
class SpherePoint:
    """A position on the sky (ICRS): ``SpherePoint(ra*degrees, dec*degrees)`` or
    ``SpherePoint(ra, dec, degrees)`` or ``SpherePoint(skycoord)``."""

    __slots__ = ("_ra", "_dec")
    _ra: Angle
    _dec: Angle

    def __init__(self, lon, lat=None, unit: AngleUnit | None = None) -> None:
        if lat is None:  # an astropy SkyCoord, or another SpherePoint
            if isinstance(lon, SpherePoint):
                self._ra, self._dec = lon._ra, lon._dec
                return
            icrs = lon.icrs
            lon, lat, unit = float(icrs.ra.deg), float(icrs.dec.deg), degrees
        ra, dec = _angle(lon, unit), _angle(lat, unit)
        if not -math.pi / 2 - 1e-12 <= dec.asRadians() <= math.pi / 2 + 1e-12:
            raise ValueError(f"latitude {dec.asDegrees()} deg is outside [-90, 90]")
        self._ra = ra.wrap()
        self._dec = dec

    def getRa(self) -> Angle:
        return self._ra

    def getDec(self) -> Angle:
        return self._dec

    getLongitude = getRa
    getLatitude = getDec

    @property
    def ra(self) -> Angle:
        return self._ra

    @property
    def dec(self) -> Angle:
        return self._dec

    def _unit_vector(self) -> np.ndarray:
        a, d = self._ra.asRadians(), self._dec.asRadians()
        return np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])

    def separation(self, other: SpherePoint) -> Angle:
        """Great-circle distance (atan2 form: accurate at all separations)."""
        u, v = self._unit_vector(), SpherePoint(other)._unit_vector()
        return Angle(math.atan2(float(np.linalg.norm(np.cross(u, v))), float(np.dot(u, v))))

    def isClose(self, other: SpherePoint, maxSeparation: Angle = Angle(1e-3, arcseconds)) -> bool:  # noqa: B008 - immutable
        return self.separation(other) <= maxSeparation

    def to_skycoord(self):
        """The point as an astropy ``SkyCoord`` (ICRS)."""
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        return SkyCoord(self._ra.asDegrees() * u.deg, self._dec.asDegrees() * u.deg, frame="icrs")

    def __getitem__(self, i: int) -> Angle:
        return (self._ra, self._dec)[i]

    def __iter__(self) -> Iterator[Angle]:
        return iter((self._ra, self._dec))

    def __len__(self) -> int:
        return 2

    def __eq__(self, other) -> bool:
        return isinstance(other, SpherePoint) and (self._ra, self._dec) == (other._ra, other._dec)

    def __hash__(self) -> int:
        return hash((self._ra, self._dec))

    def __str__(self) -> str:
        return f"({self._ra.asDegrees():.10f}, {self._dec.asDegrees():+.10f})"

    def __repr__(self) -> str:
        return f"SpherePoint({self._ra.asDegrees()!r}*degrees, {self._dec.asDegrees()!r}*degrees)"


# -- pixel points and boxes -----------------------------------------------------------------------
def _xy(args) -> tuple:
    """(x, y) from ``f(x, y)`` or ``f(point)``: the two ways LSST calls accept a position."""
    if len(args) == 2:
        return args[0], args[1]
    if len(args) == 1:
        p = args[0]
        if hasattr(p, "getX"):
            return p.getX(), p.getY()
        x, y = p
        return x, y
    raise TypeError("expected (x, y) or a point")


class Point2D:
    """A pixel position (floating point)."""

    __slots__ = ("_x", "_y")
    _cast: Callable[[Any], float] = float

    def __init__(self, *args) -> None:
        x, y = _xy(args) if args else (0, 0)
        self._x, self._y = self._cast(x), self._cast(y)

    def getX(self):
        return self._x

    def getY(self):
        return self._y

    @property
    def x(self):
        return self._x

    @property
    def y(self):
        return self._y

    def __getitem__(self, i: int):
        return (self._x, self._y)[i]

    def __iter__(self):
        return iter((self._x, self._y))

    def __len__(self) -> int:
        return 2

    def __eq__(self, other) -> bool:
        return isinstance(other, Point2D) and (self._x, self._y) == (other._x, other._y)

    def __hash__(self) -> int:
        return hash((self._x, self._y))

    def __str__(self) -> str:
        return f"({self._x:g}, {self._y:g})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._x!r}, {self._y!r})"


class Point2I(Point2D):
    """A pixel index (integer)."""

    _cast: Callable[[Any], float] = int

    def __str__(self) -> str:
        return f"({self._x}, {self._y})"


class Extent2I(Point2I):
    """Integer dimensions (width, height)."""

    def getWidth(self) -> int:
        return int(self._x)

    def getHeight(self) -> int:
        return int(self._y)


class Box2I:
    """An integer pixel box: ``Box2I(Point2I(x0, y0), Extent2I(w, h))`` or
    ``Box2I(Point2I(minX, minY), Point2I(maxX, maxY))`` (inclusive maximum).

    ``begin``/``end`` are half-open (end = max + 1), ``min``/``max`` inclusive, as in ``lsst.geom``.
    """

    __slots__ = ("_x0", "_y0", "_w", "_h")
    _x0: int
    _y0: int
    _w: int
    _h: int

    def __init__(self, corner: Point2D | None = None, other: Point2D | None = None) -> None:
        if corner is None:
            self._x0 = self._y0 = self._w = self._h = 0
            return
        x0, y0 = _xy((corner,))
        if isinstance(other, Extent2I):
            w, h = other.getX(), other.getY()
        else:
            x1, y1 = _xy((other,))
            w, h = int(x1) - int(x0) + 1, int(y1) - int(y0) + 1
        self._x0, self._y0 = int(x0), int(y0)
        self._w, self._h = max(int(w), 0), max(int(h), 0)

    @classmethod
    def from_bounds(cls, x0: int, y0: int, width: int, height: int) -> Box2I:
        return cls(Point2I(x0, y0), Extent2I(width, height))

    # LSST accessors
    def getMinX(self) -> int:
        return self._x0

    def getMinY(self) -> int:
        return self._y0

    def getMaxX(self) -> int:
        return self._x0 + self._w - 1

    def getMaxY(self) -> int:
        return self._y0 + self._h - 1

    getBeginX = getMinX
    getBeginY = getMinY

    def getEndX(self) -> int:
        return self._x0 + self._w

    def getEndY(self) -> int:
        return self._y0 + self._h

    def getMin(self) -> Point2I:
        return Point2I(self.getMinX(), self.getMinY())

    getBegin = getMin

    def getMax(self) -> Point2I:
        return Point2I(self.getMaxX(), self.getMaxY())

    def getEnd(self) -> Point2I:
        return Point2I(self.getEndX(), self.getEndY())

    def getWidth(self) -> int:
        return self._w

    def getHeight(self) -> int:
        return self._h

    def getDimensions(self) -> Extent2I:
        return Extent2I(self._w, self._h)

    def getArea(self) -> int:
        return self._w * self._h

    def isEmpty(self) -> bool:
        return self._w == 0 or self._h == 0

    def getCenter(self) -> Point2D:
        return Point2D(self._x0 + (self._w - 1) / 2.0, self._y0 + (self._h - 1) / 2.0)

    def getCorners(self) -> tuple[Point2I, Point2I, Point2I, Point2I]:
        """The four corner pixels, counter-clockwise from the minimum."""
        x0, y0, x1, y1 = self.getMinX(), self.getMinY(), self.getMaxX(), self.getMaxY()
        return (Point2I(x0, y0), Point2I(x1, y0), Point2I(x1, y1), Point2I(x0, y1))

    def contains(self, *args):
        """Whether a pixel position (or a box) lies inside.

        A floating-point position counts as inside when the pixel whose centre is nearest to it
        is in the box (so x in [minX - 0.5, maxX + 0.5)). Arrays of x and y give a bool array.
        """
        if len(args) == 1 and isinstance(args[0], Box2I):
            b = args[0]
            return b.isEmpty() or (
                self.getMinX() <= b.getMinX() and b.getMaxX() <= self.getMaxX()
                and self.getMinY() <= b.getMinY() and b.getMaxY() <= self.getMaxY())
        x, y = _xy(args)
        ix = np.floor(np.asarray(x, dtype=float) + 0.5)
        iy = np.floor(np.asarray(y, dtype=float) + 0.5)
        inside = (ix >= self.getMinX()) & (ix <= self.getMaxX()) & (iy >= self.getMinY()) & (iy <= self.getMaxY())
        return bool(inside) if np.ndim(inside) == 0 else inside

    def overlaps(self, other: Box2I) -> bool:
        return not self.clippedTo(other).isEmpty()

    def clippedTo(self, other: Box2I) -> Box2I:
        """The intersection of two boxes (empty when they do not overlap)."""
        x0, y0 = max(self.getMinX(), other.getMinX()), max(self.getMinY(), other.getMinY())
        x1, y1 = min(self.getEndX(), other.getEndX()), min(self.getEndY(), other.getEndY())
        if x1 <= x0 or y1 <= y0:
            return Box2I()
        return Box2I.from_bounds(x0, y0, x1 - x0, y1 - y0)

    def slices(self) -> tuple[slice, slice]:
        """Numpy (row, column) slices of this box in an array whose [0, 0] is pixel (0, 0)."""
        return slice(self.getMinY(), self.getEndY()), slice(self.getMinX(), self.getEndX())

    # Pythonic properties (the same names lsst.geom's Box2I exposes)
    minX = property(getMinX)
    minY = property(getMinY)
    maxX = property(getMaxX)
    maxY = property(getMaxY)
    beginX = property(getBeginX)
    beginY = property(getBeginY)
    endX = property(getEndX)
    endY = property(getEndY)
    width = property(getWidth)
    height = property(getHeight)
    area = property(getArea)
    dimensions = property(getDimensions)
    corners = property(getCorners)

    def __eq__(self, other) -> bool:
        return isinstance(other, Box2I) and (self._x0, self._y0, self._w, self._h) == (
            other._x0, other._y0, other._w, other._h)

    def __hash__(self) -> int:
        return hash((self._x0, self._y0, self._w, self._h))

    def __repr__(self) -> str:
        return (f"Box2I(corner=Point2I({self._x0}, {self._y0}), "
                f"dimensions=Extent2I({self._w}, {self._h}))")
