"""What differs between the SQL of the engines diavo runs on, behind one interface.

The emitter (emitter.py) walks a planned query and writes every engine-specific piece through a
``Dialect``: identifier quoting and relation names, literals and the parameter marker, type
names and casts, operators and function names that engines spell differently, the
representation of geometry values and each spatial predicate of the plan. ``Dialect`` holds the
spellings that standard SQL shares (most engines keep them); an engine's dialect overrides the
rest. Geometry has no standard SQL form, so the base refuses it with a clear message.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from diavo.server.adql.errors import ADQLError

__all__ = ["Dialect"]


class Dialect:
    """The ANSI spelling; engines override what they spell otherwise."""

    name = "ansi"
    def param_marker(self, index: int) -> str:
        """The marker of bound parameter ``index`` (0-based; string literals always travel as
        parameters). Positional by default; a dialect whose SQL may repeat an argument's text
        (an expression written out) must name its markers."""
        return "?"
    #: ADQL function name → the engine's, for functions whose arguments pass through unchanged.
    FUNCTIONS = {
        "ABS": "abs", "CEILING": "ceil", "DEGREES": "degrees", "EXP": "exp", "FLOOR": "floor",
        "LOG": "ln", "LOG10": "log10", "PI": "pi", "POWER": "power", "RADIANS": "radians",
        "SQRT": "sqrt", "ACOS": "acos", "ASIN": "asin", "ATAN": "atan", "ATAN2": "atan2", "COS": "cos",
        "COT": "cot", "SIN": "sin", "TAN": "tan", "LOWER": "lower", "UPPER": "upper",
        "COALESCE": "coalesce", "AVG": "avg", "MIN": "min", "MAX": "max", "COUNT": "count", "SUM": "sum",
    }
    #: ADQL type (as the checker names it) → the engine's type name.
    TYPES = {"SMALLINT": "SMALLINT", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "REAL": "REAL",
             "DOUBLE": "DOUBLE PRECISION", "VARCHAR": "VARCHAR", "TIMESTAMP": "TIMESTAMP"}

    # ---------------------------------------------------------------- names
    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def column(self, source: str, field: str) -> str:
        return f"{self.quote(source)}.{self.quote(field)}"

    def upload_relation(self, name: str) -> str:
        """The (unquoted) relation an engine must hold TAP_UPLOAD.<name> under."""
        return f"tap_upload__{name}"

    def metadata_relation(self, name: str) -> str:
        """The (unquoted) relation an engine must hold TAP_SCHEMA.<name> under: TAP_SCHEMA is
        generated from the data model when the engine opens, so it always describes the running
        code's model."""
        return f"tap_schema__{name.lower()}"

    def relation(self, relation: tuple[str, ...]) -> str:
        """The SQL naming a checked relation: ("table", schema, name), ("upload", name),
        ("metadata", name) or ("cte", alias)."""
        kind = relation[0]
        if kind == "table":
            return f"{self.quote(relation[1])}.{self.quote(relation[2])}"
        if kind == "upload":
            return self.quote(self.upload_relation(relation[1]))
        if kind == "metadata":
            return self.quote(self.metadata_relation(relation[1]))
        if kind == "cte":
            return self.quote(relation[1])
        raise ValueError(f"no relation for {relation!r}")

    def parquet(self, files: Sequence[str]) -> str:
        """A relation reading Parquet files, for storages that keep a table so."""
        raise NotImplementedError(f"the {self.name} dialect reads no Parquet files")

    # ---------------------------------------------------------------- literals and types
    @staticmethod
    def string(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    def real(self, v: float) -> str:
        """A DOUBLE constant (an exponent keeps it a double on every engine)."""
        if math.isfinite(v):
            text = repr(float(v))
            return text if ("e" in text or "E" in text) else text + "e0"
        return f"CAST({self.string(str(v))} AS {self.TYPES['DOUBLE']})"

    def cast(self, x: str, kind: str) -> str:
        return f"CAST({x} AS {self.TYPES[kind]})"

    def double(self, x: str) -> str:
        return self.cast(x, "DOUBLE")

    # ---------------------------------------------------------------- operators and functions
    @staticmethod
    def coalesce(a: str, b: str) -> str:
        return f"COALESCE({a}, {b})"

    def int_div(self, a: str, b: str) -> str:
        """Integer division of integers (truncating, as ADQL's and SQL's ``/``)."""
        return f"({a} / {b})"

    def bit_xor(self, a: str, b: str) -> str:
        return f"({a} # {b})"

    def concat(self, a: str, b: str) -> str:
        return f"({a} || {b})"

    def mod(self, a: str, b: str) -> str:
        return f"({a} % {b})"

    def function(self, name: str, args: Sequence[str], distinct: bool = False) -> str:
        q = "DISTINCT " if distinct else ""
        return f"{self.FUNCTIONS[name]}({q}{', '.join(args)})"

    def random(self) -> str:
        return "random()"

    def round(self, x: str, digits: str) -> str:
        return f"round({x}, {digits})"

    def truncate(self, x: str, digits: str | None) -> str:
        if digits is None:
            return f"trunc({x})"
        return f"(trunc({x} * power(10, {digits})) / power(10, {digits}))"

    def shift_right(self, x: str, bits: int) -> str:
        return f"({x} >> {bits})"

    def hasword(self, text: str, word: str) -> str:
        raise self.unsupported("ivo_hasword")

    def limit(self, top: int | None, offset: int | None) -> str:
        """The tail of a query keeping at most ``top`` rows after skipping ``offset``."""
        sql = f" LIMIT {top}" if top is not None else ""
        return sql + (f" OFFSET {offset}" if offset is not None else "")

    def unsupported(self, what: str) -> ADQLError:
        return ADQLError(f"{what} is not available on the {self.name} engine", code="unsupported")

    # ---------------------------------------------------------------- geometry values
    # A geometry value is whatever the dialect makes of these; the emitter only combines them.
    def point(self, ra: str, dec: str) -> str:
        raise self.unsupported("geometry")

    def circle(self, ra: str, dec: str, radius: str) -> str:
        raise self.unsupported("geometry")

    def polygon(self, coords: Sequence[str]) -> str:
        raise self.unsupported("geometry")

    def constant_polygon(self, vertices: Sequence[float]) -> str:
        return self.polygon([self.real(v) for v in vertices])

    def polygon_from_centre(self, ra: str, dec: str, w: str, h: str) -> str:
        """A BOX whose centre or size is not constant: the corners of the lat/lon box."""
        hw, hh = f"(({w}) / 2.0)", f"(({h}) / 2.0)"
        corners = [(f"{ra} - {hw}", f"{dec} - {hh}"), (f"{ra} - {hw}", f"{dec} + {hh}"),
                   (f"{ra} + {hw}", f"{dec} + {hh}"), (f"{ra} + {hw}", f"{dec} - {hh}")]
        return self.polygon([self.double(v) for c in corners for v in c])

    def stored_geometry(self, column: str, kind: str) -> str:
        """A column holding a DALI array of ``kind`` (POINT, CIRCLE, POLYGON) as a value."""
        raise self.unsupported("geometry")

    def region(self, text: str) -> str:
        """An STC-S (or DALI) string as a geometry value (NULL when it is not one)."""
        raise self.unsupported("REGION")

    def constant_region(self, text: str) -> str | None:
        """REGION of a constant string as a geometry value, for engines whose geometry types
        differ by shape (the text parsed here, at translation); None: ``region`` of the text."""
        return None

    def geometry_from_text(self, kind: str, text: str) -> str:
        """CAST of a DALI string (numbers separated by spaces or commas) to POINT/CIRCLE/POLYGON."""
        raise self.unsupported(f"CAST to {kind}")

    def geometry_output(self, g: str, kind: str = "") -> str:
        """A geometry value (of ADQL type ``kind``: POINT, CIRCLE, POLYGON or REGION) as the DALI
        array a result column carries."""
        raise self.unsupported("geometry")

    def coord(self, g: str, i: int) -> str:
        """Coordinate ``i`` (1 or 2) of a point value."""
        raise self.unsupported("COORD1/COORD2")

    def centroid(self, g: str, kind: str = "") -> str:
        raise self.unsupported("CENTROID")

    def area(self, g: str, kind: str = "") -> str:
        raise self.unsupported("AREA")

    def distance(self, ra1: str, dec1: str, ra2: str, dec2: str) -> str:
        raise self.unsupported("DISTANCE")

    def contains(self, a: str, b: str) -> str:
        raise self.unsupported("CONTAINS")

    def intersects(self, a: str, b: str) -> str:
        raise self.unsupported("INTERSECTS")

    def condition(self, test: str) -> str:
        """The condition that a CONTAINS/INTERSECTS value (an INTEGER 0/1 of this dialect) is 1."""
        return f"({test} = 1)"

    def point_in_circle(self, ra: str, dec: str, cra: str, cdec: str, r: str) -> str:
        """CONTAINS(POINT(ra, dec), CIRCLE(cra, cdec, r)) as an INTEGER 0/1."""
        return self.contains(self.point(ra, dec), self.circle(cra, cdec, r))

    def polygon_test(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        """The condition that (ra, dec) lies in the constant polygon."""
        return f"({self.point_in_polygon(ra, dec, vertices)} = 1)"

    def point_in_polygon(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        """CONTAINS(POINT(ra, dec), constant POLYGON) as an INTEGER 0/1."""
        return self.contains(self.point(ra, dec), self.constant_polygon(vertices))

    def healpix_index(self, order: str, ra: str, dec: str) -> str:
        raise self.unsupported("ivo_healpix_index")

    # ---------------------------------------------------------------- spatial predicates of the plan
    def healpix_ranges(self, column: str, ranges: Sequence[tuple[int, int]], exact: str) -> str:
        """``exact`` restricted to rows whose HEALPix index lies in the ranges: the enclosing
        interval first (a plain BETWEEN that engines push into their scans' statistics), then the
        OR of ranges within it."""
        if not ranges:
            return "FALSE"
        outer = f"{column} BETWEEN {ranges[0][0]} AND {ranges[-1][1]}"
        if len(ranges) == 1:
            return f"({outer} AND {exact})"
        filt = " OR ".join(f"{column} BETWEEN {lo} AND {hi}" for lo, hi in ranges)
        return f"({outer} AND ({filt}) AND {exact})"

    def cone_on_vectors(self, vector: Sequence[str], centre: Sequence[float], radius: float, strict: bool) -> str:
        """Cone membership on stored unit vectors: the angle to the centre is at most r exactly
        when the dot product is at least cos(r). Rounding moves the boundary by about
        1e-16 / sin(r) rad, far below any catalogue's precision, and no trigonometry runs per
        row."""
        if radius >= 180.0:
            return "TRUE"
        terms = " + ".join(f"{c} * {self.real(v)}" for c, v in zip(vector, centre, strict=True))
        return f"({terms} {'>' if strict else '>='} {self.real(math.cos(math.radians(radius)))})"

    def region_test(self, *, table: str, alias: str, column: str, bounds: tuple[str, str, str], shape: str,
                    kind: str, cap: tuple[tuple[float, float, float], float], mode: int,
                    normals: str | None = None) -> str | None:
        """Rows of ``table`` (through ``alias``) whose footprint passes CONTAINS/INTERSECTS with
        the constant ``shape`` (a ``kind``: point, circle or polygon; ``mode`` as
        geometry.region_select), chosen with the help of the footprint's bounding columns (and its
        pre-parsed edge ``normals`` column where the storage keeps one); None when this engine has
        no faster form than the test as written."""
        return None
