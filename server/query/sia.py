"""SIA 2.0 {query} parameters -> one ADQL query on ivoa.ObsCore.

Every value is validated here and written into the ADQL text by us: numbers formatted from
floats, strings as ADQL literals with quotes doubled, so nothing the client sends reaches the
database except through the ADQL translator (like TAP). Repeats of one parameter are ORed,
different parameters ANDed; a NULL column never satisfies a constraint (SIA 2.0 §2.1).

POS is INTERSECTS(shape, s_region) = 1, the same exact spherical test as in TAP. CIRCLE and
POLYGON are passed through as ADQL shapes. RANGE (a longitude/latitude box) has no ADQL shape,
since its latitude edges are small circles, so it becomes:

* the whole sky, a polar cap or a band all round the sky: circles about the poles, exactly;
* otherwise polygons at most 90° wide whose meridian edges are exact and whose latitude edges
  are great-circle chords placed so that they never cut into the range: the searched region
  holds the whole range and exceeds it by at most RANGE_TOLERANCE_DEG beyond a latitude edge.

Blank values are treated as absent (forms send empty fields). Parameters SIA does not define
are ignored, as TAP does (SIA 2.0 says nothing; DALI leaves it to the service), and named in
an INFO of the response so a misspelt name is noticed.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from diavo.server.errors import UsageFault
from diavo.server.params import MAX_INTEGER_DIGITS, Params, integer
from diavo.server.settings import Settings

if TYPE_CHECKING:
    from diavo.server.output.formats import OutputFormat

STANDARD_ID = "ivo://ivoa.net/std/SIA#query-2.0"
#: The INFO standardID of a response: the SIA standard without the capability fragment (DALI §4.4.3).
RESPONSE_STANDARD_ID = "ivo://ivoa.net/std/SIA"
TABLE = "ivoa.ObsCore"
ORDER = "t_min, obs_publisher_did"

#: Limits that keep one request cheap to check and to run.
MAX_VERTICES = 100
MAX_POS = 64
MAX_VALUES = 1000
MAX_TEXT = 1000
#: RANGE: how far a latitude edge's chords may bulge beyond the range (0.1 arcsec), the widest
#: polygon piece, and the most chords per latitude edge of a piece (caps the tolerance for very
#: wide ranges: 128 chords over 90° bulge at most ~2 arcsec).
RANGE_TOLERANCE_DEG = 0.1 / 3600
RANGE_PIECE_DEG = 90.0
RANGE_MAX_CHORDS = 128
RANGE_MERIDIAN_STEP_DEG = 60.0
#: Every side of a RANGE polygon is moved outward by this much, so that a point on the range's
#: boundary (inclusive) stays inside whatever the rounding of the containment test.
RANGE_EDGE_SLACK_DEG = 1e-9

#: Interval parameters whose interval must intersect [min column, max column] (unit as sent).
OVERLAP = {"BAND": ("em_min", "em_max", "m"), "TIME": ("t_min", "t_max", "d")}
#: Interval parameters whose interval must contain the column's value.
CONTAIN = {"FOV": ("s_fov", "deg"), "SPATRES": ("s_resolution", "arcsec"), "EXPTIME": ("t_exptime", "s"),
           "TIMERES": ("t_resolution", "s"), "SPECRP": ("em_res_power", None)}
#: Physical quantities that cannot be negative.
NON_NEGATIVE = {"BAND", "FOV", "SPATRES", "EXPTIME", "TIMERES", "SPECRP"}
#: Exact, case-sensitive string matches.
STRINGS = {"COLLECTION": "obs_collection", "FACILITY": "facility_name", "INSTRUMENT": "instrument_name",
           "TARGET": "target_name", "FORMAT": "access_format"}
DPTYPES = ("image", "cube")
CALIB_LEVELS = range(0, 5)
#: ObsCore 1.1 polarization states (pol_states holds them as "/I/Q/").
POL_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA")
#: Rubin extensions: visit and detector ids, and the band by name (ObsCore's lsst_* columns).
INTEGERS = {"VISIT": "lsst_visit", "DETECTOR": "lsst_detector"}
LSST_BANDS = ("u", "g", "r", "i", "z", "y")

QUERY_PARAMETERS = ("POS", "BAND", "TIME", "POL", "FOV", "SPATRES", "EXPTIME", "TIMERES", "SPECRP", "ID",
                    "COLLECTION", "FACILITY", "INSTRUMENT", "DPTYPE", "CALIB", "TARGET", "FORMAT",
                    "VISIT", "DETECTOR", "LSST_BAND")
#: DALI parameters, and ones SIA 2.0 dropped that clients still send: never reported as unknown.
SERVICE_PARAMETERS = ("MAXREC", "RESPONSEFORMAT", "RUNID", "REQUEST", "VERSION")

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INFINITY = re.compile(r"([+-]?)inf(?:inity)?", re.IGNORECASE)
_NAN = re.compile(r"[+-]?nan", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class SiaRequest:
    """A validated SIA query: the ADQL it became and how to answer it."""

    adql: str
    maxrec: int
    fmt: OutputFormat
    content_type: str
    runid: str | None = None
    ignored: list[str] = field(default_factory=list)

    def infos(self) -> list[tuple[str, str]]:
        out = [("standardID", RESPONSE_STANDARD_ID), ("QUERY", self.adql), ("MAXREC", str(self.maxrec))]
        if self.runid is not None:
            out.append(("RUNID", self.runid))
        if self.ignored:
            out.append(("warning", "parameters not defined by this SIA service were ignored: "
                        + ", ".join(self.ignored)))
        return out


# --- values -----------------------------------------------------------------------------------

def _fault(name: str, value: str, why: str) -> UsageFault:
    shown = value if len(value) <= 80 else value[:77] + "..."
    return UsageFault(f"invalid {name} value {shown!r}: {why}")


def _numbers(name: str, value: str, infinite: bool, text: str | None = None) -> list[float]:
    """The space-separated numbers of ``text`` (default: the whole value); ±Inf only where
    ``infinite``, never NaN. ``value`` is what error messages quote."""
    text = value if text is None else text
    if "," in text:
        raise _fault(name, value, "separate the numbers with spaces, not commas")
    out = []
    for token in text.split():
        if _NUMBER.fullmatch(token):
            x = float(token)
            if not math.isfinite(x):
                raise _fault(name, value, f"{token} is too large")
            out.append(x)
        elif _INFINITY.fullmatch(token):
            if not infinite:
                raise _fault(name, value, "infinite values are not allowed here")
            out.append(-math.inf if token.startswith("-") else math.inf)
        elif _NAN.fullmatch(token):
            raise _fault(name, value, "NaN is not allowed (an open end of an interval is -Inf or +Inf)")
        else:
            raise _fault(name, value, f"{token!r} is not a number")
    return out


def _time_hint(value: str) -> str:
    """For a TIME given as a date: the MJD to send instead."""
    try:
        from astropy.time import Time

        parts = value.split()
        mjds = " ".join(repr(float(Time(p, scale="utc").mjd)) for p in parts)
        return f"; SIA 2.0 TIME takes MJD (UTC) numbers: TIME={mjds}"
    except Exception:  # noqa: BLE001 - only a hint
        return "; SIA 2.0 TIME takes MJD (UTC) numbers, e.g. TIME=60623.0 60624.0"


def parse_interval(name: str, value: str) -> tuple[float, float]:
    """'lo hi' (±Inf for open ends) or one number v meaning [v, v] (SIA 2.0 §2.1, DALI §3.3.5)."""
    try:
        nums = _numbers(name, value, infinite=True)
    except UsageFault as exc:
        if name == "TIME" and re.search(r"\d{4}-\d\d-\d\d", value):
            raise UsageFault(exc.message + _time_hint(value)) from None
        if name == "BAND" and value.strip() in LSST_BANDS:
            raise UsageFault(exc.message + f"; BAND takes wavelengths in metres; to select the LSST "
                             f"{value.strip()} band by name use LSST_BAND={value.strip()}") from None
        raise
    if len(nums) == 1:
        if not math.isfinite(nums[0]):
            raise _fault(name, value, "a single value must be finite; write an open interval as "
                                      "'lo +Inf' or '-Inf hi'")
        lo = hi = nums[0]
    elif len(nums) == 2:
        lo, hi = nums
        if lo > hi:
            raise _fault(name, value, f"the lower bound {lo!r} is above the upper bound {hi!r}")
        if lo == math.inf or hi == -math.inf:
            raise _fault(name, value, "the interval is empty")
    else:
        raise _fault(name, value, f"expected one number or two (lower and upper bound), got {len(nums)}")
    if name in NON_NEGATIVE and (lo < 0 and math.isfinite(lo) or hi < 0):
        raise _fault(name, value, "this quantity cannot be negative")
    return lo, hi


def _num(x: float) -> str:
    """A float as an ADQL numeric literal (repr round-trips; exponents are ADQL too)."""
    return repr(float(x))


def adql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _text(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise _fault(name, value, f"longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise _fault(name, value, "control characters are not allowed")
    return value


# --- POS ----------------------------------------------------------------------------------------

def _check_lon(name: str, value: str, lon: float) -> None:
    if not 0.0 <= lon <= 360.0:
        raise _fault(name, value, f"longitude {lon!r} is outside [0, 360]")


def _check_lat(name: str, value: str, lat: float) -> None:
    if not -90.0 <= lat <= 90.0:
        raise _fault(name, value, f"latitude {lat!r} is outside [-90, 90]")


def pos_condition(value: str) -> str:
    """One POS value as an ADQL condition on s_region."""
    tokens = value.split(None, 1)
    shape = tokens[0].upper()
    rest = tokens[1] if len(tokens) > 1 else ""
    if shape == "CIRCLE":
        return _circle(value, _numbers("POS", value, False, rest))
    if shape == "POLYGON":
        return _polygon(value, _numbers("POS", value, False, rest))
    if shape == "RANGE":
        return _range(value, _numbers("POS", value, True, rest))
    raise _fault("POS", value, "the shape must be CIRCLE, RANGE or POLYGON, e.g. "
                               "POS=CIRCLE 53.125 -27.74 0.05")


def _intersects(shape: str) -> str:
    return f"INTERSECTS({shape}, s_region) = 1"


def _circle(value: str, nums: list[float]) -> str:
    if len(nums) != 3:
        raise _fault("POS", value, f"CIRCLE takes 3 numbers (longitude latitude radius), got {len(nums)}")
    ra, dec, r = nums
    _check_lon("POS", value, ra)
    _check_lat("POS", value, dec)
    if not 0.0 < r <= 180.0:
        raise _fault("POS", value, f"the radius {r!r} must be in (0, 180] degrees")
    return _intersects(f"CIRCLE({_num(ra)}, {_num(dec)}, {_num(r)})")


def _polygon(value: str, nums: list[float]) -> str:
    from diavo.server.adql import spherical

    if len(nums) % 2:
        raise _fault("POS", value, "POLYGON takes longitude latitude pairs (an even count of numbers)")
    if len(nums) < 6:
        raise _fault("POS", value, "a POLYGON needs at least 3 vertices")
    if len(nums) > 2 * MAX_VERTICES:
        raise _fault("POS", value, f"a POLYGON may have at most {MAX_VERTICES} vertices, "
                                   f"this one has {len(nums) // 2}")
    for lon, lat in zip(nums[0::2], nums[1::2], strict=False):
        _check_lon("POS", value, lon)
        _check_lat("POS", value, lat)
    if spherical.make_polygon(nums) is None:
        raise _fault("POS", value, "not a simple polygon: edges cross, vertices repeat, "
                                   "or neighbouring vertices are antipodal")
    return _intersects("POLYGON(" + ", ".join(_num(x) for x in nums) + ")")


def _range(value: str, nums: list[float]) -> str:
    if len(nums) != 4:
        raise _fault("POS", value, f"RANGE takes 4 numbers (lon1 lon2 lat1 lat2), got {len(nums)}")
    lon1, lon2, lat1, lat2 = nums
    lon1 = 0.0 if lon1 == -math.inf else lon1
    lon2 = 360.0 if lon2 == math.inf else lon2
    lat1 = -90.0 if lat1 == -math.inf else lat1
    lat2 = 90.0 if lat2 == math.inf else lat2
    for lon in (lon1, lon2):
        if math.isinf(lon):
            raise _fault("POS", value, "the longitude range is empty")
        _check_lon("POS", value, lon)
    for lat in (lat1, lat2):
        if math.isinf(lat):
            raise _fault("POS", value, "the latitude range is empty")
        _check_lat("POS", value, lat)
    if lon1 > lon2:
        raise _fault("POS", value, f"the longitude range runs backwards ({lon1!r} > {lon2!r}); for a "
                                   "range across 0 give two values, e.g. RANGE 350 360 ... and RANGE 0 10 ...")
    if lat1 > lat2:
        raise _fault("POS", value, f"the latitude range runs backwards ({lat1!r} > {lat2!r})")
    if lon1 == lon2 or lat1 == lat2:
        if lon1 == lon2 and lat1 == lat2:
            return _intersects(f"POINT({_num(lon1)}, {_num(lat1)})")
        raise _fault("POS", value, "a RANGE needs a non-zero extent in both coordinates (or none: a point)")
    if lon2 - lon1 >= 360.0:
        return _latitude_band(lat1, lat2)
    pieces = range_pieces(lon1, lon2)
    shapes = []
    for a, b in pieces:
        flat = range_polygon(a, b, lat1, lat2)
        shapes.append(_intersects("POLYGON(" + ", ".join(_num(x) for x in flat) + ")"))
    return shapes[0] if len(shapes) == 1 else "(" + " OR ".join(shapes) + ")"


def range_pieces(lon1: float, lon2: float) -> list[tuple[float, float]]:
    """The longitude range (widened by the edge slack) in pieces at most RANGE_PIECE_DEG wide."""
    lon1, lon2 = lon1 - RANGE_EDGE_SLACK_DEG, lon2 + RANGE_EDGE_SLACK_DEG
    n = max(1, math.ceil((lon2 - lon1) / RANGE_PIECE_DEG))
    step = (lon2 - lon1) / n
    return [(lon1 + k * step, lon2 if k == n - 1 else lon1 + (k + 1) * step) for k in range(n)]


def _latitude_band(lat1: float, lat2: float) -> str:
    """All longitudes: circles about the poles are exact (a parallel is a circle about the pole)."""
    if lat1 <= -90.0 and lat2 >= 90.0:
        return _intersects("CIRCLE(0.0, 90.0, 180.0)")
    if lat2 >= 90.0:
        return _intersects(f"CIRCLE(0.0, 90.0, {_num(90.0 - lat1)})")
    if lat1 <= -90.0:
        return _intersects(f"CIRCLE(0.0, -90.0, {_num(90.0 + lat2)})")
    # a connected footprint meets the band unless it lies wholly north or wholly south of it
    return (f"(CONTAINS(s_region, CIRCLE(0.0, 90.0, {_num(90.0 - lat2)})) = 0 "
            f"AND CONTAINS(s_region, CIRCLE(0.0, -90.0, {_num(90.0 + lat1)})) = 0)")


def _chords(lat: float, width: float) -> int:
    """Chords for a latitude edge so that none bulges more than RANGE_TOLERANCE_DEG."""
    a = abs(lat)
    if a == 0.0 or a + RANGE_TOLERANCE_DEG >= 90.0:
        return 1
    c = math.tan(math.radians(a)) / math.tan(math.radians(a + RANGE_TOLERANCE_DEG))
    widest = 2.0 * math.degrees(math.acos(min(1.0, c)))
    return max(1, min(RANGE_MAX_CHORDS, math.ceil(width / widest)))


def _edge(lat: float, lon_from: float, lon_to: float, outward_north: bool) -> list[tuple[float, float]]:
    """Vertices of one latitude edge, from lon_from to lon_to. A chord between two points of a
    parallel bulges towards the nearer pole; where that is outward the vertices stay on the
    parallel, else they move outward just enough that each chord touches it at its middle."""
    if abs(lat) >= 90.0:
        return [(lon_from, lat)]
    lat += RANGE_EDGE_SLACK_DEG if outward_north else -RANGE_EDGE_SLACK_DEG
    if abs(lat) >= 90.0:
        return [(lon_from, math.copysign(90.0, lat))]
    k = _chords(lat, abs(lon_to - lon_from))
    step = (lon_to - lon_from) / k
    poleward_north = lat > 0
    place = lat
    if lat != 0.0 and poleward_north != outward_north:
        place = math.degrees(math.atan(math.tan(math.radians(lat)) * math.cos(math.radians(abs(step) / 2))))
    return [(lon_from + i * step if i < k else lon_to, place) for i in range(k + 1)]


def range_excess_deg(lat: float, width: float) -> float:
    """How far beyond the latitude edge ``lat`` a RANGE polygon piece ``width`` degrees wide may
    reach: the chords' bulge (RANGE_TOLERANCE_DEG unless the chord count was capped) plus the
    edge slack."""
    a = abs(lat)
    if a >= 90.0:
        return 0.0
    step = math.radians(width / _chords(lat, width))
    bulge = math.degrees(math.atan(math.tan(math.radians(a)) / math.cos(step / 2))) - a
    return bulge + 2 * RANGE_EDGE_SLACK_DEG


def _meridian(lon: float, lat_from: float, lat_to: float) -> list[tuple[float, float]]:
    """Intermediate vertices of a meridian edge (meridians are great circles: exact)."""
    n = math.ceil(abs(lat_to - lat_from) / RANGE_MERIDIAN_STEP_DEG)
    return [(lon, lat_from + (lat_to - lat_from) * i / n) for i in range(1, n)]


def range_polygon(lon1: float, lon2: float, lat1: float, lat2: float) -> list[float]:
    """A polygon (flat lon lat list, counter-clockwise) holding the box lon1..lon2 x lat1..lat2
    (lon2 - lon1 <= 90) and exceeding it by at most RANGE_TOLERANCE_DEG beyond a latitude edge
    (more only for boxes wider than RANGE_MAX_CHORDS chords allow)."""
    bottom = _edge(lat1, lon1, lon2, outward_north=False)
    top = _edge(lat2, lon2, lon1, outward_north=True)
    verts = list(bottom)
    verts += _meridian(lon2, bottom[-1][1], top[0][1])
    verts += top
    verts += _meridian(lon1, top[-1][1], bottom[0][1])
    return [c for v in verts for c in v]


# --- the request --------------------------------------------------------------------------------

def _values(params: Params, name: str) -> list[str]:
    values = [v.strip() for v in params.getall(name) if v.strip()]
    if len(values) > MAX_VALUES:
        raise UsageFault(f"{name} is given {len(values)} times; at most {MAX_VALUES} values are accepted")
    return values


def _any(conditions: list[str]) -> str:
    unique = list(dict.fromkeys(conditions))
    return unique[0] if len(unique) == 1 else "(" + " OR ".join(unique) + ")"


def _overlap(lo: float, hi: float, cmin: str, cmax: str) -> str:
    parts = [f"{cmin} <= {_num(hi)}" if math.isfinite(hi) else f"{cmin} IS NOT NULL",
             f"{cmax} >= {_num(lo)}" if math.isfinite(lo) else f"{cmax} IS NOT NULL"]
    return "(" + " AND ".join(parts) + ")"


def _contain(lo: float, hi: float, col: str) -> str:
    parts = []
    if math.isfinite(lo):
        parts.append(f"{col} >= {_num(lo)}")
    if math.isfinite(hi):
        parts.append(f"{col} <= {_num(hi)}")
    if not parts:
        parts.append(f"{col} IS NOT NULL")
    return "(" + " AND ".join(parts) + ")" if len(parts) > 1 else parts[0]


def _in(col: str, literals: list[str]) -> str:
    unique = list(dict.fromkeys(literals))
    return f"{col} = {unique[0]}" if len(unique) == 1 else f"{col} IN ({', '.join(unique)})"


def _integers(name: str, values: list[str], low: int | None = None, high: int | None = None) -> list[str]:
    out = []
    for v in values:
        if not _INTEGER.fullmatch(v) or len(v.lstrip("+-").lstrip("0")) > MAX_INTEGER_DIGITS:
            raise _fault(name, v[:40], "expected an integer")
        i = int(v)
        if (low is not None and i < low) or (high is not None and i > high) or abs(i) >= 2 ** 63:
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise _fault(name, v, f"expected an integer {span}")
        out.append(str(i))
    return out


def _enumerated(name: str, values: list[str], allowed) -> list[str]:
    for v in values:
        if v not in allowed:
            raise _fault(name, v, "expected one of " + ", ".join(allowed) + " (case matters)")
    return values


def conditions(params: Params) -> list[str]:
    """The ADQL conditions of the query parameters, in the fixed order of QUERY_PARAMETERS."""
    where: list[str] = []
    pos = _values(params, "POS")
    if len(pos) > MAX_POS:
        raise UsageFault(f"POS is given {len(pos)} times; at most {MAX_POS} regions are accepted")
    if pos:
        where.append(_any([pos_condition(v) for v in pos]))
    for name in ("BAND", "TIME"):
        cmin, cmax, _ = OVERLAP[name]
        values = _values(params, name)
        if values:
            where.append(_any([_overlap(*parse_interval(name, v), cmin, cmax) for v in values]))
    pol = _enumerated("POL", _values(params, "POL"), POL_STATES)
    if pol:
        where.append(_any([f"pol_states LIKE {adql_string('%/' + p + '/%')}" for p in pol]))
    for name in ("FOV", "SPATRES", "EXPTIME", "TIMERES", "SPECRP"):
        col = CONTAIN[name][0]
        values = _values(params, name)
        if values:
            where.append(_any([_contain(*parse_interval(name, v), col) for v in values]))
    ids = [_text("ID", v) for v in _values(params, "ID")]
    if ids:  # IVOIDs compare case-insensitively (SIA 2.0 §2.1.10)
        where.append(_in("LOWER(obs_publisher_did)", [f"LOWER({adql_string(v)})" for v in ids]))
    for name in ("COLLECTION", "FACILITY", "INSTRUMENT"):
        values = [_text(name, v) for v in _values(params, name)]
        if values:
            where.append(_in(STRINGS[name], [adql_string(v) for v in values]))
    dptype = _enumerated("DPTYPE", _values(params, "DPTYPE"), DPTYPES)
    if dptype:
        where.append(_in("dataproduct_type", [adql_string(v) for v in dptype]))
    calib = _integers("CALIB", _values(params, "CALIB"), CALIB_LEVELS.start, CALIB_LEVELS.stop - 1)
    if calib:
        where.append(_in("calib_level", calib))
    for name in ("TARGET", "FORMAT"):
        values = [_text(name, v) for v in _values(params, name)]
        if values:
            where.append(_in(STRINGS[name], [adql_string(v) for v in values]))
    for name, col in INTEGERS.items():
        values = _integers(name, _values(params, name), 0)
        if values:
            where.append(_in(col, values))
    bands = _enumerated("LSST_BAND", _values(params, "LSST_BAND"), LSST_BANDS)
    if bands:
        where.append(_in("lsst_band", [adql_string(v) for v in bands]))
    return where


def build_adql(where: list[str], top: int | None = None) -> str:
    """The query. ``top``: MAXREC + 1 rows are all the service reads (one more than it returns,
    to tell an overflow), and TOP lets the engine keep only those while sorting; MAXREC=0 reads
    none (DALI: the query need not run)."""
    sql = f"SELECT * FROM {TABLE}" if top is None else f"SELECT TOP {top} * FROM {TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {ORDER}"


def maxrec(value: str | None, settings: Settings) -> int:
    if value is None or not value.strip():
        return settings.maxrec_default
    try:
        return min(integer("MAXREC", value, low=0), settings.maxrec_hard)
    except UsageFault as exc:
        raise UsageFault(exc.message.replace("an integer", "a non-negative integer")) from None


def response_format(params: Params):
    """(OutputFormat, Content-Type) of RESPONSEFORMAT (DALI); SIA's FORMAT is a query constraint."""
    from diavo.server.output.formats import resolve

    return resolve(params.get("RESPONSEFORMAT"))


def parse_request(params: Params, settings: Settings) -> SiaRequest:
    """Validate every parameter and build the ADQL; every problem is a UsageFault."""
    fmt, content_type = response_format(params)  # faults are prefixed (SIA 2.0 §3.2) when rendered
    where = conditions(params)
    limit = maxrec(params.get("MAXREC"), settings)
    runid = params.get("RUNID")
    known = set(QUERY_PARAMETERS) | set(SERVICE_PARAMETERS)
    ignored = [name for name in params.names() if name not in known]
    top = 0 if limit == 0 else limit + 1
    return SiaRequest(adql=build_adql(where, top), maxrec=limit, fmt=fmt, content_type=content_type,
                      runid=runid[:64] if runid is not None else None, ignored=ignored)
