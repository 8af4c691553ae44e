"""What the primary header says about the observation: visit info, weather, detector, filter.

The classes answer the pipelines' getters (``getBoresightAirmass()``, ``getWeather()``...) and
carry the same values as plain properties. Values come from the header cards diavo's FITS writer
puts there (see shared.camera for the site).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from astropy.time import Time

from diavo.shared.camera import SITE_HEIGHT_M, SITE_LAT_DEG, SITE_LON_DEG

from .geom import Angle, Box2I, SpherePoint, degrees, radians

_NAN = float("nan")


class DateTime:
    """A moment in time, printed as the pipelines print theirs; ``.time`` is an astropy Time."""

    TAI, UTC, TT = "tai", "utc", "tt"
    MJD, JD, EPOCH = "mjd", "jd", "epoch"

    def __init__(self, time: Time) -> None:
        self.time = time

    def toString(self, scale: str = "tai") -> str:
        """ISO 8601 with nanoseconds; UTC strings end in 'Z'."""
        t = getattr(self.time, scale)
        t = Time(t, precision=9)
        return t.isot + ("Z" if scale == self.UTC else "")

    def get(self, system: str = "mjd", scale: str = "tai") -> float:
        """The time as an MJD (default), JD or Julian epoch in the given scale."""
        t = getattr(self.time, scale)
        return float({"mjd": t.mjd, "jd": t.jd, "epoch": t.jyear}[system])

    def nsecs(self, scale: str = "tai") -> int:
        """Nanoseconds since 1970-01-01T00:00:00 in the given scale."""
        t = getattr(self.time, scale)
        epoch = Time("1970-01-01T00:00:00", scale=scale)
        return int(round(float((t - epoch).to_value("s")) * 1e9))

    def toPython(self):
        """A naive ``datetime`` in UTC."""
        return self.time.utc.to_datetime()

    def toAstropy(self) -> Time:
        return self.time

    def isValid(self) -> bool:
        return True

    def __str__(self) -> str:
        return f'DateTime("{self.toString(self.TAI)}", TAI)'

    __repr__ = __str__


@dataclass(frozen=True)
class Weather:
    """Conditions at the telescope: air temperature (C), pressure (Pa), relative humidity (%)."""

    airTemperature: float = _NAN
    airPressure: float = _NAN
    humidity: float = _NAN

    def getAirTemperature(self) -> float:
        return self.airTemperature

    def getAirPressure(self) -> float:
        return self.airPressure

    def getHumidity(self) -> float:
        return self.humidity

    def __str__(self) -> str:
        return f"Weather({self.airTemperature}, {self.airPressure}, {self.humidity})"


@dataclass(frozen=True)
class Observatory:
    """Where the telescope stands: longitude and latitude (Angles), elevation (m)."""

    longitude: Angle
    latitude: Angle
    elevation: float

    def getLongitude(self) -> Angle:
        return self.longitude

    def getLatitude(self) -> Angle:
        return self.latitude

    def getElevation(self) -> float:
        return self.elevation


def _number(hdr, *keys: str) -> float:
    """The first of ``keys`` present in the header, as a float; NaN when none is."""
    for key in keys:
        value = hdr.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return _NAN


def _sky(lon: float, lat: float) -> SpherePoint | None:
    return SpherePoint(lon, lat, degrees) if math.isfinite(lon) and math.isfinite(lat) else None


RUBIN_SITE = Observatory(Angle(SITE_LON_DEG, degrees), Angle(SITE_LAT_DEG, degrees), SITE_HEIGHT_M)


@dataclass(frozen=True)
class VisitInfo:
    """The observation an exposure comes from (``getInfo().getVisitInfo()``)."""

    id: int
    exposureTime: float
    date: DateTime
    boresightRaDec: SpherePoint | None
    boresightAzAlt: SpherePoint | None
    boresightAirmass: float
    boresightRotAngle: Angle
    boresightParAngle: Angle
    weather: Weather
    instrumentLabel: str
    observatory: Observatory = RUBIN_SITE

    def getId(self) -> int:
        return self.id

    def getExposureTime(self) -> float:
        return self.exposureTime

    def getDarkTime(self) -> float:
        return self.exposureTime

    def getDate(self) -> DateTime:
        return self.date

    def getBoresightRaDec(self) -> SpherePoint | None:
        return self.boresightRaDec

    def getBoresightAzAlt(self) -> SpherePoint | None:
        return self.boresightAzAlt

    def getBoresightAirmass(self) -> float:
        return self.boresightAirmass

    def getBoresightRotAngle(self) -> Angle:
        return self.boresightRotAngle

    def getBoresightParAngle(self) -> Angle:
        return self.boresightParAngle

    def getWeather(self) -> Weather:
        return self.weather

    def getInstrumentLabel(self) -> str:
        return self.instrumentLabel

    def getObservatory(self) -> Observatory:
        return self.observatory

    @classmethod
    def from_header(cls, hdr) -> VisitInfo:
        """Build from the primary header; the middle of the exposure is its date, as in LSST.

        diavo's card names come first; the names the Rubin pipelines write (BORE-AIRMASS,
        AIRPRESS, BORE-AZ, BORE-ALT) are read when ours are absent, so their files work too.
        """
        # The ISO string is exact to the millisecond; an MJD double only to ~1 microsecond.
        if "DATE-AVG" in hdr:
            when = Time(hdr["DATE-AVG"], format="isot", scale=str(hdr.get("TIMESYS", "tai")).strip().lower())
        elif "MJD-AVG" in hdr:
            when = Time(float(hdr["MJD-AVG"]), format="mjd", scale="tai")
        else:
            raise ValueError("the header has no DATE-AVG or MJD-AVG: no observation date")
        if "BORE-PA-RAD" in hdr:
            par = Angle(_number(hdr, "BORE-PA-RAD"), radians)
        else:
            par = Angle(_number(hdr, "BORE-PA"), degrees)
        visit = _number(hdr, "VISIT", "LSST BUTLER DATAID VISIT", "EXPID")
        return cls(
            id=int(visit) if math.isfinite(visit) else -1,
            exposureTime=_number(hdr, "EXPTIME"),
            date=DateTime(when),
            boresightRaDec=_sky(_number(hdr, "BORE-RA"), _number(hdr, "BORE-DEC")),
            boresightAzAlt=_sky(_number(hdr, "AZIMUTH", "BORE-AZ"), _number(hdr, "ALTITUDE", "BORE-ALT")),
            boresightAirmass=_number(hdr, "AIRMASS", "BORE-AIRMASS"),
            boresightRotAngle=Angle(_number(hdr, "BORE-ROTANG"), degrees),
            boresightParAngle=par,
            weather=Weather(_number(hdr, "AIRTEMP"), _number(hdr, "PRESSURE", "AIRPRESS"),
                            _number(hdr, "HUMIDITY")),
            instrumentLabel=str(hdr.get("INSTRUME", hdr.get("INSTRUMENT", ""))),
        )

    def __str__(self) -> str:
        return (f"VisitInfo(id={self.id}, exposureTime={self.exposureTime}, date={self.date}, "
                f"boresightRaDec={self.boresightRaDec}, boresightAirmass={self.boresightAirmass}, "
                f"boresightParAngle={self.boresightParAngle}, {self.weather})")


@dataclass(frozen=True)
class Detector:
    """The CCD an exposure was read from (``getInfo().getDetector()``)."""

    id: int
    name: str
    bbox: Box2I

    def getId(self) -> int:
        return self.id

    def getName(self) -> str:
        return self.name

    def getBBox(self) -> Box2I:
        return self.bbox


@dataclass(frozen=True)
class FilterLabel:
    """Band and physical filter of an exposure (``getFilter()``)."""

    bandLabel: str
    physicalLabel: str

    def hasBandLabel(self) -> bool:
        return bool(self.bandLabel)

    def hasPhysicalLabel(self) -> bool:
        return bool(self.physicalLabel)

    def __str__(self) -> str:
        return f'FilterLabel(band="{self.bandLabel}", physical="{self.physicalLabel}")'

