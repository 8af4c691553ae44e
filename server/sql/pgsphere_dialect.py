"""PostgreSQL with pgSphere: geometry as pgSphere's own types, so its operators and GiST indexes
do the spatial work.

POINT, CIRCLE and POLYGON are ``spoint``, ``scircle`` and ``spoly`` (pgSphere works in radians;
ADQL in degrees, converted on the way in and out); BOX is ADQL 2.1's polygon of great-circle
edges, never a lat/lon ``sbox``. CONTAINS is ``<@`` (pgSphere's name for the old ``@``),
INTERSECTS ``&&``, DISTANCE ``<->``. A stored STC-S footprint becomes an ``spoly`` by rewriting
its text into pgSphere's input form in SQL; pgSphere has no CIRCLE-or-POLYGON union type, so
REGION() of anything but a polygon, and CENTROID of a polygon, are refused with a message.

Parameters travel as psycopg's named ``%(pN)s`` markers; psycopg reads ``%`` in the text, so
every other ``%`` this dialect could write (a delimited identifier holding one) is doubled, and
the engine always passes a parameter mapping so that the doubling is always undone.
"""
from __future__ import annotations

from collections.abc import Sequence

from .dialect import Dialect

__all__ = ["PGSPHERE", "PgSphereDialect"]

#: How a pgSphere test (boolean) becomes ADQL's INTEGER 0/1.
_AS_INT = ("CAST(", " AS INTEGER)")
#: pgSphere's polygon input: vertices as ``(lon, lat)`` pairs in radians.
_SPOLY_TEXT = "'{{{}}}'::spoly"


class PgSphereDialect(Dialect):
    name = "postgresql"
    FUNCTIONS = dict(Dialect.FUNCTIONS, LOG10="log")

    @staticmethod
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""').replace("%", "%%") + '"'

    def param_marker(self, index: int) -> str:
        return f"%(p{index})s"

    def mod(self, a: str, b: str) -> str:
        return f"mod({a}, {b})"

    def function(self, name: str, args: Sequence[str], distinct: bool = False) -> str:
        sql = super().function(name, args, distinct)
        # PostgreSQL's avg of an integer is NUMERIC; ADQL's (and the other engines') is DOUBLE
        return f"CAST({sql} AS DOUBLE PRECISION)" if name == "AVG" else sql

    def round(self, x: str, digits: str) -> str:
        # round(double, int) does not exist: through NUMERIC (half away from zero, as DuckDB)
        return f"CAST(round(CAST({x} AS NUMERIC), {digits}) AS DOUBLE PRECISION)"

    def truncate(self, x: str, digits: str | None) -> str:
        if digits is None:
            return f"trunc({x})"
        return f"CAST(trunc(CAST({x} AS NUMERIC), {digits}) AS DOUBLE PRECISION)"

    def hasword(self, text: str, word: str) -> str:
        # \y is a word boundary in PostgreSQL's regular expressions; the word's own special
        # characters are escaped so that it is matched literally
        escaped = f"regexp_replace({word}, '([^[:alnum:]_])', '\\\\\\1', 'g')"
        return f"CASE WHEN {text} ~* ('\\y' || {escaped} || '\\y') THEN 1 ELSE 0 END"

    # ---------------------------------------------------------------- geometry values
    def point(self, ra: str, dec: str) -> str:
        return f"spoint(radians({ra}), radians({dec}))"

    def circle(self, ra: str, dec: str, radius: str) -> str:
        return f"scircle({self.point(ra, dec)}, radians({radius}))"

    def polygon(self, coords: Sequence[str]) -> str:
        # pgSphere builds a polygon from text; float8's text form is exact (shortest round trip)
        pairs = [f"'(' || radians({coords[i]}) || ',' || radians({coords[i + 1]}) || ')'"
                 for i in range(0, len(coords) - 1, 2)]
        return "CAST('{' || " + " || ',' || ".join(pairs) + " || '}' AS spoly)"

    def constant_polygon(self, vertices: Sequence[float]) -> str:
        import math

        pairs = ",".join(f"({math.radians(vertices[i])!r},{math.radians(vertices[i + 1])!r})"
                         for i in range(0, len(vertices) - 1, 2))
        return _SPOLY_TEXT.format(pairs)

    def stored_geometry(self, column: str, kind: str) -> str:
        """A stored DALI array (degrees) as a pgSphere value."""
        v = f"CAST({column} AS DOUBLE PRECISION[])"
        if kind == "POINT":
            return self.point(f"{v}[1]", f"{v}[2]")
        if kind == "CIRCLE":
            return self.circle(f"{v}[1]", f"{v}[2]", f"{v}[3]")
        return (f"(SELECT CAST('{{' || string_agg('(' || radians(x) || ',' || radians(y) || ')', ',' ORDER BY i) || "
                f"'}}' AS spoly) FROM (SELECT a[2 * k - 1] AS x, a[2 * k] AS y, k AS i FROM (SELECT {v} AS a) AS _a, "
                f"generate_series(1, array_length({v}, 1) / 2) AS k) AS _v)")

    def region(self, text: str) -> str:
        """An STC-S POLYGON as an ``spoly`` (NULL for any other shape, which no test then
        passes): the frame word dropped, each "lon lat" pair written as pgSphere's ``(lon d, lat d)``."""
        body = (f"regexp_replace(regexp_replace(trim({text}), '^POLYGON\\s+(ICRS\\s+|UNKNOWNFRAME\\s+)?', '', 'i'), "
                f"'([^\\s]+)\\s+([^\\s]+)\\s*', '(\\1d,\\2d),', 'g')")
        return (f"CASE WHEN {text} ~* '^\\s*POLYGON\\s' THEN CAST('{{' || rtrim({body}, ',') || '}}' AS spoly) END")

    def constant_region(self, text: str) -> str | None:
        """A constant STC-S circle, point or polygon as pgSphere's own type (an invalid region:
        NULL, as on DuckDB)."""
        from diavo.server.adql.geometry import parse_region

        tagged = parse_region(text)
        if tagged is None:
            return "CAST(NULL AS spoly)"
        tag, values = int(tagged[0]), [float(v) for v in tagged[1:]]
        if tag == 1:
            return self.point(self.real(values[0]), self.real(values[1]))
        if tag == 2:
            return self.circle(self.real(values[0]), self.real(values[1]), self.real(values[2]))
        return self.constant_polygon(values)

    def geometry_from_text(self, kind: str, text: str) -> str:
        v = "_t.v"
        if kind == "POINT":
            value = self.point(f"{v}[1]", f"{v}[2]")
        elif kind == "CIRCLE":
            value = self.circle(f"{v}[1]", f"{v}[2]", f"{v}[3]")
        else:
            return self.stored_geometry(f"CAST(regexp_split_to_array(trim({text}), '[\\s,]+') AS DOUBLE PRECISION[])",
                                        "POLYGON")
        return (f"(SELECT {value} FROM (SELECT CAST(regexp_split_to_array(trim({text}), '[\\s,]+') "
                f"AS DOUBLE PRECISION[]) AS v) AS _t)")

    def geometry_output(self, g: str, kind: str = "") -> str:
        if kind == "POINT":
            return f"ARRAY[degrees(long({g})), degrees(lat({g}))]"
        if kind == "CIRCLE":
            return f"ARRAY[degrees(long(center({g}))), degrees(lat(center({g}))), degrees(radius({g}))]"
        # a polygon: its vertices from pgSphere's text output (radians, 15 significant digits)
        return (f"(SELECT array_agg(degrees(CAST(x AS DOUBLE PRECISION)) ORDER BY i) FROM "
                f"unnest(regexp_split_to_array(regexp_replace(CAST({g} AS TEXT), '[{{}}() ]', '', 'g'), ',')) "
                f"WITH ORDINALITY AS _v(x, i))")

    def coord(self, g: str, i: int) -> str:
        return f"degrees({'long' if i == 1 else 'lat'}({g}))"

    def centroid(self, g: str, kind: str = "") -> str:
        if kind == "CIRCLE":
            return f"center({g})"
        if kind == "POINT":
            return g
        return self._polygon_centroid(g)

    def _polygon_centroid(self, g: str) -> str:
        """The area centroid of a polygon (as spherical.polygon_arrays: the sum of the edges'
        poles weighted by their lengths, normalised), in SQL over the vertices of pgSphere's text
        output. pgSphere keeps either orientation, so the sum is turned towards the vertices'
        mean: the polygon is the smaller region."""
        coords = (f"SELECT CAST(x AS DOUBLE PRECISION) AS c, i FROM unnest(regexp_split_to_array("
                  f"regexp_replace(CAST({g} AS TEXT), '[{{}}() ]', '', 'g'), ',')) WITH ORDINALITY AS _c(x, i)")
        vertices = (f"SELECT (i + 1) / 2 AS k, cos(lat) * cos(lon) AS ax, cos(lat) * sin(lon) AS ay, sin(lat) AS az "
                    f"FROM (SELECT i, c AS lon, lead(c) OVER (ORDER BY i) AS lat FROM ({coords}) AS _p) AS _q "
                    f"WHERE mod(i, 2) = 1")
        edges = (f"SELECT ax, ay, az, coalesce(lead(ax) OVER w, first_value(ax) OVER w) AS bx, "
                 f"coalesce(lead(ay) OVER w, first_value(ay) OVER w) AS by, "
                 f"coalesce(lead(az) OVER w, first_value(az) OVER w) AS bz FROM ({vertices}) AS _v "
                 f"WINDOW w AS (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)")
        poles = (f"SELECT ax, ay, az, ay * bz - az * by AS cx, az * bx - ax * bz AS cy, ax * by - ay * bx AS cz, "
                 f"ax * bx + ay * by + az * bz AS d FROM ({edges}) AS _e")
        weighted = (f"SELECT sum(cx / n * l) AS sx, sum(cy / n * l) AS sy, sum(cz / n * l) AS sz, sum(ax) AS mx, "
                    f"sum(ay) AS my, sum(az) AS mz FROM (SELECT *, sqrt(cx * cx + cy * cy + cz * cz) AS n, "
                    f"atan2(sqrt(cx * cx + cy * cy + cz * cz), d) AS l FROM ({poles}) AS _n) AS _w")
        return (f"(SELECT CASE WHEN sx * mx + sy * my + sz * mz < 0 THEN spoint(atan2(-sy, -sx), "
                f"atan2(-sz, sqrt(sx * sx + sy * sy))) ELSE spoint(atan2(sy, sx), atan2(sz, sqrt(sx * sx + sy * sy))) "
                f"END FROM ({weighted}) AS _s)")

    def area(self, g: str, kind: str = "") -> str:
        if kind == "POINT":
            return "CAST(0 AS DOUBLE PRECISION)"
        return f"degrees(degrees(area({g})))"  # steradians to square degrees

    def distance(self, ra1: str, dec1: str, ra2: str, dec2: str) -> str:
        return f"degrees({self.point(ra1, dec1)} <-> {self.point(ra2, dec2)})"

    def contains(self, a: str, b: str) -> str:
        return f"{_AS_INT[0]}({a}) <@ ({b}){_AS_INT[1]}"

    def condition(self, test: str) -> str:
        """The bare pgSphere operator when the value is one of this dialect's tests: PostgreSQL
        uses a GiST index for ``spoint <@ scircle``, never for ``CAST(... AS INTEGER) = 1``."""
        head, tail = _AS_INT
        inner = test[len(head):-len(tail)] if test.startswith(head) and test.endswith(tail) else None
        if inner is not None and _balanced(inner):
            return f"({inner})"
        return super().condition(test)

    def intersects(self, a: str, b: str) -> str:
        # a point meets a region when it lies in it: pgSphere has no && for points
        if b.startswith("spoint("):
            a, b = b, a
        if a.startswith("spoint("):
            return self.contains(a, b)
        return f"{_AS_INT[0]}({a}) && ({b}){_AS_INT[1]}"

    def healpix_ranges(self, column: str, ranges: Sequence[tuple[int, int]], exact: str) -> str:
        """The ranges alone, as an OR of BETWEENs: PostgreSQL scans the btree once per range
        (a BitmapOr), where the enclosing interval first would make it read every row between
        the first range and the last."""
        if not ranges:
            return "FALSE"
        filt = " OR ".join(f"{column} BETWEEN {lo} AND {hi}" for lo, hi in ranges)
        return f"(({filt}) AND {exact})"

    def point_in_circle(self, ra: str, dec: str, cra: str, cdec: str, r: str) -> str:
        return self.contains(self.point(ra, dec), self.circle(cra, cdec, r))

    def polygon_test(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        return f"({self.point(ra, dec)} <@ {self.constant_polygon(vertices)})"

    def healpix_index(self, order: str, ra: str, dec: str) -> str:
        return f"healpix_nest(CAST({order} AS INTEGER), {self.point(ra, dec)})"


def _balanced(sql: str) -> bool:
    """Whether the parentheses of ``sql`` close in order (no string literal holds one: strings
    travel as parameters)."""
    depth = 0
    for ch in sql:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


PGSPHERE = PgSphereDialect()
