"""DuckDB's SQL: geometry as ``DOUBLE[]`` with a leading kind tag (1 point, 2 circle,
3 polygon) handled by the SQL functions that engine.duckdb_functions registers; uploads and
TAP_SCHEMA as relations registered on the cursor (which works on read-only connections); HATS
partitions through ``read_parquet``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .dialect import Dialect

__all__ = ["DUCKDB", "DuckDBDialect", "REGION_MARGIN_DEG"]

_TAGS = {"POINT": 1, "CIRCLE": 2, "POLYGON": 3}
#: Slack added to a footprint's cap test (degrees): ~1000 times the STC-S vertex rounding (5e-7 deg).
REGION_MARGIN_DEG = 1e-3


class DuckDBDialect(Dialect):
    name = "duckdb"
    TYPES = dict(Dialect.TYPES, DOUBLE="DOUBLE")

    def parquet(self, files: Sequence[str]) -> str:
        # hive_partitioning off: HATS's Norder=/Dir=/Npix= directories are not columns of the table.
        return f"read_parquet([{', '.join(self.string(f) for f in files)}], hive_partitioning = false)"

    def real(self, v: float) -> str:
        return super().real(v) if math.isfinite(v) else f"'{v}'::DOUBLE"

    def int_div(self, a: str, b: str) -> str:
        return f"({a} // {b})"

    def bit_xor(self, a: str, b: str) -> str:
        return f"xor({a}, {b})"

    def hasword(self, text: str, word: str) -> str:
        return f"CAST(regexp_matches({text}, '\\b' || regexp_escape({word}) || '\\b', 'i') AS INTEGER)"

    # ---------------------------------------------------------------- geometry values
    def point(self, ra: str, dec: str) -> str:
        return f"[1::DOUBLE, {ra}, {dec}]"

    def circle(self, ra: str, dec: str, radius: str) -> str:
        return f"[2::DOUBLE, {ra}, {dec}, {radius}]"

    def polygon(self, coords: Sequence[str]) -> str:
        return "[3::DOUBLE, " + ", ".join(coords) + "]"

    def stored_geometry(self, column: str, kind: str) -> str:
        return f"list_prepend({_TAGS[kind]}::DOUBLE, CAST({column} AS DOUBLE[]))"

    def region(self, text: str) -> str:
        return f"adql_region({text})"

    def geometry_from_text(self, kind: str, text: str) -> str:
        return (f"list_prepend({_TAGS[kind]}::DOUBLE, CAST(regexp_split_to_array(trim({text}), "
                f"'[\\s,]+') AS DOUBLE[]))")

    def geometry_output(self, g: str, kind: str = "") -> str:
        return f"({g})[2:]"

    def coord(self, g: str, i: int) -> str:
        return f"({g})[{i + 1}]"

    def centroid(self, g: str, kind: str = "") -> str:
        return f"adql_centroid({g})"

    def area(self, g: str, kind: str = "") -> str:
        return f"adql_area({g})"

    def distance(self, ra1: str, dec1: str, ra2: str, dec2: str) -> str:
        return f"adql_distance({ra1}, {dec1}, {ra2}, {dec2})"

    def contains(self, a: str, b: str) -> str:
        return f"adql_contains({a}, {b})"

    def intersects(self, a: str, b: str) -> str:
        return f"adql_intersects({a}, {b})"

    def point_in_circle(self, ra: str, dec: str, cra: str, cdec: str, r: str) -> str:
        return f"CAST(adql_in_circle({ra}, {dec}, {cra}, {cdec}, {r}) AS INTEGER)"

    def polygon_test(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        return f"adql_in_polygon({ra}, {dec}, [{', '.join(self.real(v) for v in vertices)}]::DOUBLE[])"

    def point_in_polygon(self, ra: str, dec: str, vertices: Sequence[float]) -> str:
        return f"CAST({self.polygon_test(ra, dec, vertices)} AS INTEGER)"

    def healpix_index(self, order: str, ra: str, dec: str) -> str:
        return f"adql_healpix_index({order}, {ra}, {dec})"

    # ---------------------------------------------------------------- spatial predicates
    def region_test(self, *, table: str, alias: str, column: str, bounds: tuple[str, str, str], shape: str,
                    kind: str, cap: tuple[tuple[float, float, float], float], mode: int,
                    normals: str | None = None) -> str | None:
        """The rows are chosen by an uncorrelated subquery: a cheap test on the bounding columns
        keeps the candidates, an aggregate hands all of them to one call of
        ``adql_region_select``, which parses their STC-S text and runs the exact test (the same
        parser and formulas as ``adql_region`` + ``adql_contains``/``adql_intersects``, batched),
        and the outer row qualifies when its rowid is among those returned. Parsing a few hundred
        footprints once costs far less than parsing every footprint.

        Both CONTAINS directions and INTERSECTS imply that the footprint meets the shape, hence
        that the footprint's cap (centre (ra, dec), radius diameter / 2) meets the shape's cap:
        the centres are at most r_shape + diameter / 2 apart. That needs the diameter to be about
        (ra, dec) and to enclose the footprint, which is how the archive fills ObsCore's s_fov
        (obscore.obscore_row); REGION_MARGIN_DEG absorbs the six-decimal rounding of the STC-S
        vertices and of the dot product. Rows with a NULL centre or diameter are candidates.
        """
        (cx, cy, cz), radius = cap
        inner = '"_region_candidates".'
        ra, dec, fov = (f"{inner}{self.quote(c)}" for c in bounds)
        dot = (f"cos(radians({dec})) * (cos(radians({ra})) * {self.real(cx)} + sin(radians({ra})) * "
               f"{self.real(cy)}) + sin(radians({dec})) * {self.real(cz)}")
        reach = f"({self.real(radius + REGION_MARGIN_DEG)} + {fov} / 2.0)"
        unknown = f"{ra} IS NULL OR {dec} IS NULL OR {fov} IS NULL"
        # two conjuncts, so that the trigonometry runs only on the rows the cheap latitude test
        # keeps (the angular distance is at least the difference in latitude)
        centre_dec = math.degrees(math.asin(max(-1.0, min(1.0, cz))))
        near = (f"({unknown} OR abs({dec} - ({self.real(centre_dec)})) <= {reach} + "
                f"{self.real(REGION_MARGIN_DEG)}) AND ({unknown} OR {dot} >= cos(radians(least({reach}, 180.0))))")
        chosen = (f"SELECT unnest(adql_region_select(list({inner}rowid), list({inner}{self.quote(column)}), "
                  f"{shape}, {mode})) FROM {table} AS \"_region_candidates\" WHERE {near}")
        return f"({self.quote(alias)}.rowid IN ({chosen}))"


DUCKDB = DuckDBDialect()
