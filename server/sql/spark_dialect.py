"""Spark SQL: backquoted identifiers, every stored table as a global temporary view (Spark's views
have one-part names, so ``dp1.DiaSource`` is ``global_temp.dp1__DiaSource``), HATS partitions as
``parquet.`path``` (several files as one Hadoop glob), and geometry in plain SQL: values are
``ARRAY<DOUBLE>`` with a leading kind tag as on DuckDB, DISTANCE is Vincenty's formula and a
point in a circle the haversine test, both written out; a point in a constant convex polygon is a
conjunction of dot products with the edges' normals. No Python UDF runs: what has no SQL form here
(general region operations, AREA, CENTROID, REGION, STC-S footprints) is refused with a message
that says so.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from .dialect import Dialect

__all__ = ["SPARK", "SparkDialect"]

_TAGS = {"POINT": 1, "CIRCLE": 2, "POLYGON": 3}
#: Characters a path may not hold to be named inside a Spark SQL ``parquet.`...``` glob.
_GLOB_SPECIAL = set("`{},*?[]\\")


class SparkDialect(Dialect):
    name = "spark"
    TYPES = {"SMALLINT": "SMALLINT", "INTEGER": "INT", "BIGINT": "BIGINT", "REAL": "FLOAT",
             "DOUBLE": "DOUBLE", "VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP"}

    def __init__(self, whole: dict[tuple[str, ...], str] | None = None) -> None:
        #: Every partition file of a HATS catalog -> the global temporary view an engine holds
        #: over them: a query that reads the whole catalog names the view, whose files were
        #: listed and whose schema was read once, not a glob Spark lists again per query.
        self._whole = dict(whole or {})

    def with_views(self, whole: dict[tuple[str, ...], str]) -> SparkDialect:
        return SparkDialect({**self._whole, **whole})

    @staticmethod
    def quote(name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def param_marker(self, index: int) -> str:
        # named: DISTANCE and the haversine repeat their arguments' text
        return f":p{index}"

    def table_view(self, schema: str, name: str) -> str:
        """The (unquoted) global temporary view an engine must hold a stored table under."""
        return f"{schema}__{name}"

    def relation(self, relation: tuple[str, ...]) -> str:
        if relation[0] == "table":
            return "global_temp." + self.quote(self.table_view(relation[1], relation[2]))
        if relation[0] == "metadata":
            return "global_temp." + self.quote(self.metadata_relation(relation[1]))
        return super().relation(relation)

    @staticmethod
    def nameable(files: Sequence[str]) -> bool:
        """Whether Spark can be given these paths (Hadoop reads its glob characters in any)."""
        return not any(_GLOB_SPECIAL & set(f) for f in files)

    def parquet(self, files: Sequence[str]) -> str:
        view = self._whole.get(tuple(files))
        if view is not None:
            return "global_temp." + self.quote(view)
        for f in files:
            if not self.nameable([f]):
                raise ValueError(f"the spark engine cannot name the Parquet file {f!r} (it holds one of "
                                 f"{''.join(sorted(_GLOB_SPECIAL))})")
        if len(files) == 1:
            return f"parquet.`{files[0]}`"
        base = os.path.commonpath(list(files))
        rest = ",".join(os.path.relpath(f, base) for f in files)
        return f"parquet.`{base}/{{{rest}}}`"

    def int_div(self, a: str, b: str) -> str:
        return f"({a} DIV {b})"

    def bit_xor(self, a: str, b: str) -> str:
        return f"({a} ^ {b})"

    def function(self, name: str, args: Sequence[str], distinct: bool = False) -> str:
        sql = super().function(name, args, distinct)
        # Spark's ceil/floor of a DOUBLE are BIGINT; ADQL's are DOUBLE like their argument
        return f"CAST({sql} AS DOUBLE)" if name in ("CEILING", "FLOOR") else sql

    def random(self) -> str:
        return "rand()"

    def truncate(self, x: str, digits: str | None) -> str:
        # Spark's trunc() is for dates: towards zero, written out
        if digits is None:
            return f"CAST(CASE WHEN {x} >= 0 THEN floor({x}) ELSE ceil({x}) END AS DOUBLE)"
        scaled = f"({x} * power(10, {digits}))"
        toward_zero = f"CASE WHEN {scaled} >= 0 THEN floor({scaled}) ELSE ceil({scaled}) END"
        return f"(CAST({toward_zero} AS DOUBLE) / power(10, {digits}))"

    def hasword(self, text: str, word: str) -> str:
        # Java regular expressions: \Q...\E quotes the word, (?i) ignores case
        return f"CAST(({text} RLIKE concat('(?i)\\\\b\\\\Q', {word}, '\\\\E\\\\b')) AS INT)"

    # ---------------------------------------------------------------- geometry values
    def _array(self, tag: int, values: Sequence[str]) -> str:
        return f"array(CAST({tag} AS DOUBLE), {', '.join(values)})"

    def point(self, ra: str, dec: str) -> str:
        return self._array(1, (ra, dec))

    def circle(self, ra: str, dec: str, radius: str) -> str:
        return self._array(2, (ra, dec, radius))

    def polygon(self, coords: Sequence[str]) -> str:
        return self._array(3, coords)

    def stored_geometry(self, column: str, kind: str) -> str:
        return f"concat(array(CAST({_TAGS[kind]} AS DOUBLE)), CAST({column} AS ARRAY<DOUBLE>))"

    def geometry_from_text(self, kind: str, text: str) -> str:
        return (f"concat(array(CAST({_TAGS[kind]} AS DOUBLE)), "
                f"CAST(split(trim({text}), '[\\\\s,]+') AS ARRAY<DOUBLE>))")

    def geometry_output(self, g: str, kind: str = "") -> str:
        return f"filter({g}, (v, i) -> i > 0)"

    def coord(self, g: str, i: int) -> str:
        return f"element_at({g}, {i + 1})"

    def distance(self, ra1: str, dec1: str, ra2: str, dec2: str) -> str:
        """Vincenty's formula (spherical.distance; DuckDB's adql_distance), written out."""
        dra = f"radians({ra2} - {ra1})"
        half = f"power(sin({dra} / 2), 2)"
        y = (f"sqrt(power(cos(radians({dec2})) * sin({dra}), 2) + power(sin(radians({dec2} - {dec1})) + "
             f"sin(radians({dec1})) * cos(radians({dec2})) * 2 * {half}, 2))")
        x = f"cos(radians({dec2} - {dec1})) - cos(radians({dec1})) * cos(radians({dec2})) * 2 * {half}"
        return f"degrees(atan2({y}, {x}))"

    def point_in_circle(self, ra: str, dec: str, cra: str, cdec: str, r: str) -> str:
        """The haversine test of DuckDB's adql_in_circle, as an INTEGER."""
        h = "0.008726646259971648"  # pi / 360
        hav = (f"power(sin(({dec} - {cdec}) * {h}), 2) + cos(radians({dec})) * cos(radians({cdec})) * "
               f"power(sin(({ra} - {cra}) * {h}), 2)")
        return f"CAST(({hav} <= power(sin(radians(least({r}, 180.0)) / 2), 2)) AS INT)"

    def polygon_test(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        """Inside every edge's great circle: the position's unit vector has a non-negative dot
        product with each edge normal (the vertices taken in the order that makes the polygon
        the smaller region). Only convex polygons have this form."""
        normals = convex_normals(vertices)
        if normals is None:
            raise self.unsupported("CONTAINS with a non-convex POLYGON")
        x = f"(cos(radians({dec})) * cos(radians({ra})))"
        y = f"(cos(radians({dec})) * sin(radians({ra})))"
        z = f"sin(radians({dec}))"
        tests = [f"({x} * {self.real(a)} + {y} * {self.real(b)} + {z} * {self.real(c)} >= 0)" for a, b, c in normals]
        return "(" + " AND ".join(tests) + ")"

    def point_in_polygon(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        return f"CAST({self.polygon_test(ra, dec, vertices)} AS INT)"

    def region_test(self, *, table: str, alias: str, column: str, bounds: tuple[str, str, str], shape: str,
                    kind: str, cap: tuple[tuple[float, float, float], float], mode: int,
                    normals: str | None = None) -> str | None:
        """A constant point inside a stored convex footprint (CONTAINS(POINT, s_region),
        INTERSECTS either way): inside every edge of its pre-parsed normals. Other shapes against
        footprints have no SQL form here (None: the test as written, refused)."""
        if normals is None or kind != "point" or mode not in (0, 1, 2):
            return None
        x, y, z = (self.real(v) for v in cap[0])
        column_sql = self.column(alias, normals)
        return f"forall({column_sql}, n -> n[0] * {x} + n[1] * {y} + n[2] * {z} >= 0)"


def convex_normals(vertices: Sequence[float]) -> list[tuple[float, float, float]] | None:
    """The inward edge normals of a valid convex spherical polygon, or None (invalid or not
    convex)."""
    from diavo.server.adql.geometry import polygon_of

    return polygons_normals([polygon_of(tuple(float(v) for v in vertices))])[0]


def polygons_normals(polygons: Sequence) -> list[list[tuple[float, float, float]] | None]:
    """``convex_normals`` of many validated polygons (spherical.Polygon, or None) at once: the
    polygons of each vertex count in one array (an ObsCore table's footprints in milliseconds)."""
    import numpy as np

    out: list = [None] * len(polygons)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(polygons):
        if p is not None:
            groups.setdefault(len(p.v), []).append(i)
    for idx in groups.values():
        v = np.stack([np.asarray(polygons[i].v, dtype=float) for i in idx])        # (M, n, 3)
        centre = np.stack([np.asarray(polygons[i].centre, dtype=float) for i in idx])  # (M, 3)
        normals = np.cross(v, np.roll(v, -1, axis=1))
        side = np.einsum("mnk,mk->mn", normals, centre)
        inward = np.all(side > 0, axis=1)
        outward = np.all(side < 0, axis=1)
        normals[outward] = -normals[outward]
        # convex: every vertex on the inner side of every edge's great circle
        convex = ~np.any(np.einsum("mik,mjk->mij", v, normals) < -1e-12, axis=(1, 2))
        norms = np.linalg.norm(normals, axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = normals / norms[..., None]
        ok = (inward | outward) & convex & np.all(norms != 0, axis=1) & np.all(np.isfinite(unit), axis=(1, 2))
        for k, i in enumerate(idx):
            if ok[k]:
                out[i] = [(float(a), float(b), float(c)) for a, b, c in unit[k]]
    return out


SPARK = SparkDialect()
