"""ADQL geometry as DuckDB SQL functions, over adql.geometry's shapes.

``register(con)`` installs these functions on a connection (read-only connections too: the
macros are TEMP and the UDFs live in the connection). Geometry values are ``DOUBLE[]`` with a
leading kind tag: point ``[1, ra, dec]``, circle ``[2, ra, dec, r]``, polygon
``[3, ra1, dec1, ra2, dec2, ...]``; all angles in degrees; NULL in gives NULL out.

=======================================================  =============================
adql_distance(ra1, dec1, ra2, dec2 DOUBLE) -> DOUBLE      SQL macro (Vincenty atan2)
adql_in_circle(ra, dec, cra, cdec, r DOUBLE) -> BOOLEAN   SQL macro (box + haversine)
adql_in_polygon(ra, dec DOUBLE, poly DOUBLE[]) -> BOOLEAN UDF; poly = flat vertices, no tag
adql_contains(a, b DOUBLE[]) -> INTEGER                   macro: point/circle inline, else UDF
adql_intersects(a, b DOUBLE[]) -> INTEGER                 macro: point/circle inline, else UDF
adql_area(g DOUBLE[]) -> DOUBLE                           UDF, square degrees
adql_centroid(g DOUBLE[]) -> DOUBLE[]                     UDF, tagged point
adql_coord1(g DOUBLE[]) / adql_coord2(g) -> DOUBLE        SQL macros (point or circle centre)
adql_region(s VARCHAR) -> DOUBLE[]                        UDF, STC-S or DALI text; bad -> NULL
adql_dali(g DOUBLE[]) -> VARCHAR                          UDF, DALI text without the tag
adql_region_select(ids BIGINT[], regions VARCHAR[],       UDF, the ids whose region passes
                   g DOUBLE[], mode INTEGER) -> BIGINT[]  CONTAINS/INTERSECTS with g
=======================================================  =============================

The DuckDB dialect (sql.duckdb_dialect) writes ``CONTAINS(POINT(ra, dec), CIRCLE(...)) = 1`` as
``adql_in_circle`` and a constant polygon as ``adql_in_polygon``; the planner's HEALPix cover
goes around them. The shapes' semantics (validity, boundaries, frames) are adql.geometry's.
"""
from __future__ import annotations

import numpy as np

from diavo.server.adql import spherical as sph
from diavo.server.adql.geometry import (
    CIRCLE,
    POINT,
    POINT_EQ_DEG,
    POLYGON,
    RegionShapes,
    area,
    centroid_point,
    contains,
    intersects,
    parse_region,
    parse_regions,
    polygon_of,
    polygons_vs_circle,
    region_select,
    shape,
    shape_dali,
    shapes,
)

# ------------------------------------------------------------------------------------------
# SQL macros. Haversine with a bounding-box prefilter: DuckDB short-circuits AND per vector,
# so only rows in the box pay for the trigonometry; the box is widened by 1e-9 deg so it can
# never reject a row the haversine accepts.
_HALF = "0.008726646259971648"     # pi / 360
_BOX_HALF_WIDTH = ("(CASE WHEN abs(cdec) + r >= 89.999 THEN 360.0 ELSE degrees(asin(least(1.0, "
                   "sin(radians(least(r, 90.0))) / cos(radians(cdec))))) + 1e-9 END)")
MACROS = {
    "adql_in_circle": ("ra, dec, cra, cdec, r",
                       f"(abs(dec - cdec) <= r + 1e-9 "
                       f"AND abs((ra - cra + 540.0) % 360.0 - 180.0) <= {_BOX_HALF_WIDTH} "
                       f"AND sin((dec - cdec) * {_HALF}) * sin((dec - cdec) * {_HALF}) "
                       f"+ cos(radians(dec)) * cos(radians(cdec)) "
                       f"* sin((ra - cra) * {_HALF}) * sin((ra - cra) * {_HALF}) "
                       f"<= sin(radians(least(r, 180.0)) / 2) ^ 2)"),
    # Vincenty (see spherical.distance): atan2(|cross|, dot), cancellation-free terms
    "adql_distance": ("ra1, dec1, ra2, dec2",
                      "degrees(atan2(sqrt((cos(radians(dec2)) * sin(radians(ra2 - ra1))) ^ 2 "
                      "+ (sin(radians(dec2 - dec1)) + sin(radians(dec1)) * cos(radians(dec2)) "
                      "* 2 * sin(radians(ra2 - ra1) / 2) ^ 2) ^ 2), "
                      "cos(radians(dec2 - dec1)) - cos(radians(dec1)) * cos(radians(dec2)) "
                      "* 2 * sin(radians(ra2 - ra1) / 2) ^ 2))"),
    "adql_coord1": ("g", "(CASE WHEN CAST(g AS DOUBLE[])[1] IN (1, 2) "
                         "THEN CAST(g AS DOUBLE[])[2] END)"),
    "adql_coord2": ("g", "(CASE WHEN CAST(g AS DOUBLE[])[1] IN (1, 2) "
                         "THEN CAST(g AS DOUBLE[])[3] END)"),
    # point/circle pairs inline (no Python call per vector); everything else in the UDF
    "adql_contains": ("a, b",
                      "(CASE WHEN CAST(a AS DOUBLE[])[1] = 1 AND CAST(b AS DOUBLE[])[1] = 2 "
                      "AND len(CAST(a AS DOUBLE[])) = 3 AND len(CAST(b AS DOUBLE[])) = 4 THEN "
                      "CAST(adql_in_circle(CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], "
                      "CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], CAST(b AS DOUBLE[])[4]) "
                      "AS INTEGER) ELSE _adql_contains(a, b) END)"),
    "adql_intersects": ("a, b",
                        "(CASE WHEN CAST(a AS DOUBLE[])[1] = 1 AND CAST(b AS DOUBLE[])[1] = 2 "
                        "AND len(CAST(a AS DOUBLE[])) = 3 AND len(CAST(b AS DOUBLE[])) = 4 THEN "
                        "CAST(adql_in_circle(CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], "
                        "CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], CAST(b AS DOUBLE[])[4]) "
                        "AS INTEGER) "
                        "WHEN CAST(a AS DOUBLE[])[1] = 2 AND CAST(b AS DOUBLE[])[1] = 1 "
                        "AND len(CAST(a AS DOUBLE[])) = 4 AND len(CAST(b AS DOUBLE[])) = 3 THEN "
                        "CAST(adql_in_circle(CAST(b AS DOUBLE[])[2], CAST(b AS DOUBLE[])[3], "
                        "CAST(a AS DOUBLE[])[2], CAST(a AS DOUBLE[])[3], CAST(a AS DOUBLE[])[4]) "
                        "AS INTEGER) ELSE _adql_intersects(a, b) END)"),
}



# ------------------------------------------------------------------------------------------
# DuckDB registration


def _types():
    import duckdb
    try:
        t = duckdb.sqltype
    except AttributeError:                          # duckdb < 1.4
        from duckdb.typing import DuckDBPyType as t  # type: ignore
    return t("DOUBLE"), t("DOUBLE[]"), t("BOOLEAN"), t("INTEGER"), t("VARCHAR")


def _sqltype(name: str):
    import duckdb
    try:
        return duckdb.sqltype(name)
    except AttributeError:                          # duckdb < 1.4
        from duckdb.typing import DuckDBPyType
        return DuckDBPyType(name)


def _combine(a):
    import pyarrow as pa
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _lists(a):
    """Arrow list<double> array -> (offsets, values, n); offsets index values."""
    a = _combine(a)
    off = a.offsets.to_numpy()
    vals = a.values.to_numpy(zero_copy_only=False).astype(float, copy=False)
    return off, vals, len(a)


def _constant_row(off, vals, n):
    """The single row if every row of a list column is the same, else None."""
    if n == 0:
        return None
    ln = np.diff(off)
    if not np.all(ln == ln[0]):
        return None
    block = vals[off[0]:off[0] + n * ln[0]].reshape(n, ln[0])
    if n > 1 and not np.array_equal(block[1:], np.broadcast_to(block[0], block[1:].shape),
                                    equal_nan=True):
        return None
    return tuple(block[0].tolist())


def _rows(off, vals, n):
    return [tuple(vals[off[i]:off[i + 1]].tolist()) for i in range(n)]


def _udf_in_polygon(ra, dec, poly):
    import pyarrow as pa
    ra = _combine(ra).to_numpy(zero_copy_only=False)
    dec = _combine(dec).to_numpy(zero_copy_only=False)
    off, vals, n = _lists(poly)
    const = _constant_row(off, vals, n)
    out = np.zeros(n, dtype=bool)
    valid = np.ones(n, dtype=bool)
    groups = [(const, np.arange(n))] if const is not None else _group(_rows(off, vals, n))
    for key, idx in groups:
        p = polygon_of(key)
        if p is None:
            valid[idx] = False
            continue
        out[idx] = sph.polygon_contains_xyz(p, sph.radec_to_xyz(ra[idx], dec[idx]))
    return pa.array(out, mask=~valid | np.isnan(ra) | np.isnan(dec))


def _group(rows):
    g: dict = {}
    for i, r in enumerate(rows):
        g.setdefault(r, []).append(i)
    return [(k, np.asarray(v)) for k, v in g.items()]


def _pair_udf(func, symmetric):
    """A (geometry, geometry) -> INTEGER UDF: vectorised when one side is a constant shape and
    the other a column of points, row by row (cached shapes) otherwise."""
    def udf(a, b):
        import pyarrow as pa
        ao, av, n = _lists(a)
        bo, bv, _ = _lists(b)
        out = np.zeros(n, dtype=np.int32)
        valid = np.ones(n, dtype=bool)
        bconst = _constant_row(bo, bv, n)
        aconst = _constant_row(ao, av, n) if symmetric and bconst is None else None
        pts_o, pts_v, other = (ao, av, bconst) if bconst is not None else (bo, bv, aconst)
        sb = shape(other) if other is not None else None
        if other is not None and np.all(np.diff(pts_o) == 3) and np.all(pts_v[pts_o[:-1]] == POINT) \
                and n > 1:
            if sb is None:
                return pa.nulls(n, pa.int32())
            ra, dec = pts_v[pts_o[:-1] + 1], pts_v[pts_o[:-1] + 2]
            valid = np.isfinite(ra) & (np.abs(dec) <= 90)
            ra, dec = np.where(valid, ra, 0.0), np.where(valid, dec, 0.0)
            if sb.kind == CIRCLE:
                out[:] = sph.in_circle(ra, dec, sb.ra, sb.dec, sb.r)
            elif sb.kind == POLYGON:
                out[:] = sph.polygon_contains_xyz(sb.poly, sph.radec_to_xyz(ra, dec))
            else:
                out[:] = sph.distance(ra, dec, sb.ra, sb.dec) <= POINT_EQ_DEG
            return pa.array(out, mask=~valid)
        col = shapes(_rows(pts_o, pts_v, n)) if other is not None else None
        if sb is not None and col is not None and sb.kind == CIRCLE and n > 1 and \
                all(x is None or x.kind == POLYGON for x in col):
            valid = np.array([x is not None for x in col])
            out[valid] = polygons_vs_circle([x for x in col if x is not None], sb,
                                             func is intersects)
            return pa.array(out, mask=~valid)
        if col is not None:
            sas = col if bconst is not None else [sb] * n
            sbs = [sb] * n if bconst is not None else col
        else:
            sas, sbs = shapes(_rows(ao, av, n)), shapes(_rows(bo, bv, n))
        for i, (sa, sb_) in enumerate(zip(sas, sbs, strict=False)):
            if sa is None or sb_ is None:
                valid[i] = False
            else:
                out[i] = func(sa, sb_)
        return pa.array(out, mask=~valid)
    return udf



def _map_udf(func, arrow_type):
    def udf(g):
        import pyarrow as pa
        off, vals, n = _lists(g)
        return pa.array([func(x) for x in shapes(_rows(off, vals, n))], type=arrow_type())
    return udf



_FAST_POLYGON = r"^\s*POLYGON\s+(ICRS\s+)?[-+0-9.eE\s]+$"


def _regions_fast(arr):
    """Vectorised adql_region for the common case, a column of 'POLYGON [ICRS] numbers'
    strings: split and cast in Arrow, validate in numpy batches. None when not applicable."""
    import pyarrow as pa
    import pyarrow.compute as pc
    n = len(arr)
    if n < 64 or arr.null_count == n:
        return None
    ok = pc.match_substring_regex(arr, _FAST_POLYGON, ignore_case=True)
    if pc.sum(pc.cast(pc.fill_null(ok, True), pa.int64())).as_py() != n:
        return None
    body = pc.replace_substring_regex(arr, r"^\s*\S+\s+(?i:ICRS\s+)?", "")
    parts = pc.split_pattern_regex(pc.utf8_trim_whitespace(body), r"\s+")
    try:
        values = pc.cast(pc.list_flatten(parts), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    lengths = pc.fill_null(pc.list_value_length(parts), 0).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    valid = np.zeros(n, dtype=bool)
    out_len = np.zeros(n, dtype=np.int64)
    pieces: list[tuple[np.ndarray, np.ndarray]] = []      # (row indices, (k, len) values)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        if length < 6 or length % 2:
            continue
        coords = values[starts[idx][:, None] + np.arange(length)].reshape(len(idx), -1, 2)
        a = sph.polygon_arrays(coords)
        good = a["valid"]
        flat = np.column_stack([np.full(len(idx), POLYGON),
                                np.stack([a["ra"], a["dec"]], axis=-1).reshape(len(idx), -1)])
        pieces.append((idx[good], flat[good]))
        valid[idx[good]] = True
        out_len[idx[good]] = length + 1
        for k in np.flatnonzero(~good):       # repeated vertices etc.: the careful path
            g = parse_region(arr[int(idx[k])].as_py())
            if g is not None:
                pieces.append((idx[k:k + 1], np.asarray([g], dtype=float)))
                valid[idx[k]] = True
                out_len[idx[k]] = len(g)
    offsets = np.concatenate([[0], np.cumsum(out_len)])
    vals = np.zeros(int(offsets[-1]))
    for rows, block in pieces:
        pos = offsets[rows][:, None] + np.arange(block.shape[1])
        vals[pos] = block
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(vals),
                                    mask=pa.array(~valid))


def _udf_region(s):
    import pyarrow as pa
    arr = _combine(s)
    fast = _regions_fast(arr)
    if fast is not None:
        return fast
    return pa.array(parse_regions(arr.to_pylist()), type=pa.list_(pa.float64()))



def _region_select_udf(cache: RegionShapes):
    """adql_region_select(ids BIGINT[], regions VARCHAR[], g DOUBLE[], mode INTEGER) -> BIGINT[]:
    the ids whose STC-S region passes CONTAINS/INTERSECTS against the geometry g.

    mode: 0 INTERSECTS(g, region), 1 INTERSECTS(region, g), 2 CONTAINS(g, region),
    3 CONTAINS(region, g). The lists are a whole candidate set gathered by an aggregate, so the
    regions are parsed (once per text, then cached) and tested in one batch instead of once per
    scanned vector. A NULL or invalid region, like an invalid g, never passes.
    """
    def udf(ids, regions, g, mode):
        import pyarrow as pa
        ids, regions, g, mode = (_combine(x) for x in (ids, regions, g, mode))
        out: list[list[int] | None] = []
        for i in range(len(ids)):
            if not (ids[i].is_valid and regions[i].is_valid and g[i].is_valid and mode[i].is_valid):
                out.append(None)
                continue
            keys = ids[i].values.to_numpy(zero_copy_only=False)
            sb = shape(g[i].as_py()) if None not in g[i].as_py() else None
            if len(keys) == 0 or sb is None:
                out.append([])
                continue
            keep = region_select(cache(regions[i].values.to_pylist()), sb, mode[i].as_py())
            out.append(keys[keep].tolist())
        return pa.array(out, type=pa.list_(pa.int64()))
    return udf


def _udf_dali(g):
    import pyarrow as pa
    off, vals, n = _lists(g)
    return pa.array([shape_dali(x) for x in shapes(_rows(off, vals, n))], type=pa.string())


def create_udf(con, name, fn, args, ret, **kw) -> None:
    """Register a Python UDF once per database.

    DuckDB keeps Python UDFs in the database instance, shared by every connection and cursor to
    the same file, while temp macros belong to one connection; a second registration of a UDF is
    therefore a no-op rather than an error.
    """
    import duckdb

    try:
        con.create_function(name, fn, args, ret, type="arrow", null_handling="special", **kw)
    except (duckdb.CatalogException, duckdb.NotImplementedException) as exc:
        # Another connection registered it ("already exists"), or this one did ("already created").
        if "already" not in str(exc):
            raise


def register(con) -> None:
    """Install the ADQL geometry functions on a DuckDB connection (idempotent)."""
    register_udfs(con)
    register_macros(con)


def register_macros(con) -> None:
    """The SQL macros: temp objects, so every connection or cursor needs its own."""
    for name, (params, body) in MACROS.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {name}({params}) AS {body}")


def register_udfs(con) -> None:
    """The Python UDFs: DuckDB files them under the database instance but they live only as
    long as the connection that registered them, so register them on a connection that
    outlives every cursor that calls them (the engine's own)."""
    import pyarrow as pa
    DOUBLE, LIST, BOOL, INT, VARCHAR = _types()
    udfs = [
        ("adql_in_polygon", _udf_in_polygon, [DOUBLE, DOUBLE, LIST], BOOL),
        ("_adql_contains", _pair_udf(contains, False), [LIST, LIST], INT),
        ("_adql_intersects", _pair_udf(intersects, True), [LIST, LIST], INT),
        ("adql_area", _map_udf(lambda s: None if s is None else area(s), pa.float64),
         [LIST], DOUBLE),
        ("adql_centroid", _map_udf(centroid_point, lambda: pa.list_(pa.float64())), [LIST], LIST),
        ("adql_region", _udf_region, [VARCHAR], LIST),
        ("adql_dali", _udf_dali, [LIST], VARCHAR),
        ("adql_region_select", _region_select_udf(RegionShapes()),
         [_sqltype("BIGINT[]"), _sqltype("VARCHAR[]"), LIST, INT], _sqltype("BIGINT[]")),
    ]
    for name, fn, args, ret in udfs:
        create_udf(con, name, fn, args, ret)
    register_healpix_index(con)


def _healpix_index(order, lon, lat):
    """Vectorised nested HEALPix index for DuckDB (Arrow arrays in and out)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = np.asarray(pc.is_null(order).to_numpy(zero_copy_only=False), dtype=bool)
    order = np.asarray(pc.fill_null(order, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    lon_a = pc.fill_null(pc.cast(lon, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    lat_a = pc.fill_null(pc.cast(lat, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    valid = np.isfinite(lon_a) & np.isfinite(lat_a) & (np.abs(lat_a) <= 90) & (order >= 0) & (order <= 29)
    valid &= ~missing
    out = np.zeros(len(lon_a), dtype=np.int64)
    if valid.any():
        from diavo.server.archive.store import healpix_index

        for depth in np.unique(order[valid]):
            sel = valid & (order == depth)
            out[sel] = healpix_index(lon_a[sel] % 360.0, lat_a[sel], int(depth))
    return pa.array(out, mask=~valid)


def register_healpix_index(con) -> None:
    """adql_healpix_index, which ivo_healpix_index translates to where the planner cannot use a
    stored index."""
    create_udf(con, "adql_healpix_index", _healpix_index, ["BIGINT", "DOUBLE", "DOUBLE"], "BIGINT",
               side_effects=False)
