"""The catalogue of ADQL functions diavo understands: names, arities, argument and result types.

check.py uses it to check calls, the SQL emitter to translate them, and the capabilities document can
list the ``UDFS`` (TAPRegExt ``features-udf``) and the optional features from it. Argument kinds:
``numeric``, ``integer`` (a numeric of integer type), ``string``, ``geometry``, ``point``, ``any``.
Result types are ADQL types: SMALLINT INTEGER BIGINT REAL DOUBLE VARCHAR TIMESTAMP BOOLEAN POINT
CIRCLE POLYGON REGION, or ``same`` (the type of the first argument) or ``numeric`` (the wider
numeric type of the arguments).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AGGREGATES", "CATALOGUE", "Function", "RESERVED_WORDS", "UDFS", "feature_forms"]

# ADQL 2.1 section 2.1.3: SQL-92 reserved words, and the ADQL reserved words.
SQL_RESERVED = frozenset("""
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG BEGIN
BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER CHAR_LENGTH
CHARACTER_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT CONNECTION CONSTRAINT
CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME
CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE
DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE
END END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT
FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY IMMEDIATE IN
INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL INTO IS ISOLATION
JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES
NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER
OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES
PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL
SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR
SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE
TO TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER
USING VALUE VALUES VARCHAR VARYING VIEW WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE
""".split())
ADQL_RESERVED = frozenset("""
ABS ACOS AREA ASIN ATAN ATAN2 BIGINT BOX CEILING CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS COS
COT DEGREES DISTANCE EXP FLOOR ILIKE INTERSECTS IN_UNIT LOG LOG10 MOD OFFSET PI POINT POLYGON POWER
RADIANS REGION RAND ROUND SIN SQRT TOP TAN TRUNCATE
""".split())
RESERVED_WORDS = SQL_RESERVED | ADQL_RESERVED


@dataclass(frozen=True)
class Function:
    name: str
    args: tuple[str, ...]  # argument kinds; optional ones after ``required``
    returns: str
    description: str
    required: int | None = None  # how many of ``args`` are required (default: all)
    variadic: bool = False  # the last kind repeats
    feature: str | None = None  # TAPRegExt feature type for optional features
    signature: str = ""  # TAPRegExt form, for user-defined functions

    @property
    def min_args(self) -> int:
        return len(self.args) if self.required is None else self.required

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.args)


def _f(name, args, returns, description, **kw) -> tuple[str, Function]:
    return name, Function(name, tuple(args), returns, description, **kw)


_GEO = "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"
_STRING = "ivo://ivoa.net/std/TAPRegExt#features-adql-string"
_CONDITIONAL = "ivo://ivoa.net/std/TAPRegExt#features-adql-conditional"
_UNIT = "ivo://ivoa.net/std/TAPRegExt#features-adql-unit"
_TYPE = "ivo://ivoa.net/std/TAPRegExt#features-adql-type"

CATALOGUE: dict[str, Function] = dict([
    # mathematical (ADQL 2.1 section 2.3, table 1)
    _f("ABS", ["numeric"], "same", "absolute value"),
    _f("CEILING", ["numeric"], "DOUBLE", "smallest integer not less than x"),
    _f("DEGREES", ["numeric"], "DOUBLE", "radians to degrees"),
    _f("EXP", ["numeric"], "DOUBLE", "e to the power of x"),
    _f("FLOOR", ["numeric"], "DOUBLE", "largest integer not greater than x"),
    _f("LOG", ["numeric"], "DOUBLE", "natural logarithm"),
    _f("LOG10", ["numeric"], "DOUBLE", "base-10 logarithm"),
    _f("MOD", ["numeric", "numeric"], "numeric", "remainder of x/y"),
    _f("PI", [], "DOUBLE", "the constant pi"),
    _f("POWER", ["numeric", "numeric"], "DOUBLE", "x to the power of y"),
    _f("RADIANS", ["numeric"], "DOUBLE", "degrees to radians"),
    _f("RAND", ["integer"], "DOUBLE", "random number in [0, 1), with an optional seed", required=0),
    _f("ROUND", ["numeric", "integer"], "DOUBLE", "x rounded to n decimal places (default 0)", required=1),
    _f("SQRT", ["numeric"], "DOUBLE", "square root"),
    _f("TRUNCATE", ["numeric", "integer"], "DOUBLE", "x truncated to n decimal places (default 0)",
       required=1),
    # trigonometric (table 2), angles in radians
    _f("ACOS", ["numeric"], "DOUBLE", "arc cosine"),
    _f("ASIN", ["numeric"], "DOUBLE", "arc sine"),
    _f("ATAN", ["numeric"], "DOUBLE", "arc tangent"),
    _f("ATAN2", ["numeric", "numeric"], "DOUBLE", "arc tangent of y/x"),
    _f("COS", ["numeric"], "DOUBLE", "cosine"),
    _f("COT", ["numeric"], "DOUBLE", "cotangent"),
    _f("SIN", ["numeric"], "DOUBLE", "sine"),
    _f("TAN", ["numeric"], "DOUBLE", "tangent"),
    # aggregates
    _f("COUNT", ["any"], "BIGINT", "number of rows or of non-NULL values"),
    _f("AVG", ["numeric"], "DOUBLE", "mean"),
    _f("SUM", ["numeric"], "sum", "sum"),
    _f("MIN", ["any"], "same", "minimum"),
    _f("MAX", ["any"], "same", "maximum"),
    # strings, conditionals, units (optional features of section 4)
    _f("LOWER", ["string"], "VARCHAR", "lower-case conversion", feature=_STRING),
    _f("UPPER", ["string"], "VARCHAR", "upper-case conversion", feature=_STRING),
    _f("COALESCE", ["any"], "same", "the first non-NULL argument", variadic=True, feature=_CONDITIONAL),
    _f("IN_UNIT", ["numeric", "string"], "DOUBLE", "x converted to the unit given as a string",
       feature=_UNIT),
    # geometry (section 4.2); the constructors' arities are checked by the parser
    _f("POINT", ["numeric", "numeric"], "POINT", "a position on the sky", feature=_GEO),
    _f("CIRCLE", ["numeric", "numeric", "numeric"], "CIRCLE", "a cone on the sky", feature=_GEO),
    _f("BOX", ["numeric", "numeric", "numeric", "numeric"], "POLYGON",
       "a box of given width and height (great-circle edges) around a centre", feature=_GEO),
    _f("POLYGON", ["numeric"], "POLYGON", "a spherical polygon with great-circle edges", variadic=True,
       feature=_GEO),
    _f("REGION", ["string"], "REGION", "a region given as STC-S or DALI text", feature=_GEO),
    _f("CENTROID", ["geometry"], "POINT", "the centre of a geometry", feature=_GEO),
    _f("AREA", ["geometry"], "DOUBLE", "the area of a geometry in square degrees", feature=_GEO),
    _f("COORD1", ["point"], "DOUBLE", "the longitude of a point, in degrees", feature=_GEO),
    _f("COORD2", ["point"], "DOUBLE", "the latitude of a point, in degrees", feature=_GEO),
    _f("COORDSYS", ["geometry"], "VARCHAR", "the coordinate system of a geometry", feature=_GEO),
    _f("DISTANCE", ["point", "point"], "DOUBLE", "the great-circle distance in degrees", feature=_GEO),
    _f("CONTAINS", ["geometry", "geometry"], "INTEGER", "1 if the first geometry lies inside the second",
       feature=_GEO),
    _f("INTERSECTS", ["geometry", "geometry"], "INTEGER", "1 if the two geometries overlap", feature=_GEO),
])

AGGREGATES = frozenset({"COUNT", "AVG", "SUM", "MIN", "MAX"})

UDFS: dict[str, Function] = {
    "ivo_healpix_index": Function(
        "ivo_healpix_index", ("integer", "numeric", "numeric"), "BIGINT",
        "The index of the HEALPix cell (nested scheme) at the order hpxOrder that contains the point "
        "(long, lat), in degrees; ICRS.",
        signature="ivo_healpix_index(hpxOrder INTEGER, long DOUBLE, lat DOUBLE) -> BIGINT",
    ),
    "ivo_interval_overlaps": Function(
        "ivo_interval_overlaps", ("numeric", "numeric", "numeric", "numeric"), "INTEGER",
        "1 if the closed intervals [l1, h1] and [l2, h2] overlap, 0 otherwise.",
        signature="ivo_interval_overlaps(l1 DOUBLE, h1 DOUBLE, l2 DOUBLE, h2 DOUBLE) -> INTEGER",
    ),
    "ivo_hasword": Function(
        "ivo_hasword", ("string", "string"), "INTEGER",
        "1 if the text contains the word (case-insensitively, on word boundaries), 0 otherwise.",
        signature="ivo_hasword(haystack TEXT, needle TEXT) -> INTEGER",
    ),
}


def feature_forms() -> dict[str, list[str]]:
    """TAPRegExt languageFeatures: feature type → forms, including the UDF signatures."""
    out: dict[str, list[str]] = {}
    for f in CATALOGUE.values():
        if f.feature:
            out.setdefault(f.feature, []).append(f.name)
    out["ivo://ivoa.net/std/TAPRegExt#features-udf"] = [f.signature for f in UDFS.values()]
    out.setdefault(_STRING, []).append("ILIKE")
    out.setdefault(_TYPE, []).append("CAST")
    out["ivo://ivoa.net/std/TAPRegExt#features-adql-sets"] = ["UNION", "EXCEPT", "INTERSECT"]
    out["ivo://ivoa.net/std/TAPRegExt#features-adql-offset"] = ["OFFSET"]
    out["ivo://ivoa.net/std/TAPRegExt#features-adql-common-table"] = ["WITH"]
    return out
