"""DiaObject rows computed from their DiaSources, inside DuckDB.

Each per-band light-curve statistic of DP1's DiaObject is an aggregate of the object's
DiaSources in that band; computing them in SQL keeps millions of sources out of Python and
makes the numbers true to the catalog they summarise.

Floating-point sums depend on the order of their terms, and a parallel aggregation combines
per-thread partial states in whatever order the threads finish. ``create_diaobject_table``
therefore aggregates on one thread, over a source table whose order is fixed, so one seed gives
bit-identical catalogs. (Ordered aggregates, ``sum(x ORDER BY ...)``, are exact too, but cost
three times the time and buffer every group's sources: a DP1-scale build ran out of memory.)
"""
from __future__ import annotations

from diavo.shared.bands import BANDS

#: Per-band statistic -> SQL over the per-source view ``s`` (f=psfFlux, e=psfFluxErr,
#: sf=scienceFlux, se=scienceFluxErr, t=midpointMjdTai, wmean, n, q = the 5/25/50/75/95
#: percentiles computed in one pass, med = q[3], slope_step); ```` is the fixed order.
BAND_STATS: dict[str, str] = {
    "psfFluxLinearSlope": "regr_slope(f, t)",
    "psfFluxLinearIntercept": "regr_intercept(f, t)",
    "psfFluxMAD": "median(abs(f - med))",
    "psfFluxMaxSlope": "max(abs(slope_step))",
    "psfFluxErrMean": "avg(e)",
    "psfFluxMean": "any_value(wmean)",
    "psfFluxMeanErr": "any_value(wmeanerr)",
    "psfFluxNdata": "count(*)",
    "scienceFluxMean": "sum(sf / (se * se)) / sum(1 / (se * se))",
    "scienceFluxMeanErr": "sqrt(1 / sum(1 / (se * se)))",
    "psfFluxMin": "min(f)",
    "psfFluxMax": "max(f)",
    "psfFluxPercentile05": "any_value(q[1])",
    "psfFluxPercentile25": "any_value(q[2])",
    "psfFluxPercentile50": "any_value(q[3])",
    "psfFluxPercentile75": "any_value(q[4])",
    "psfFluxPercentile95": "any_value(q[5])",
    "psfFluxSigma": "stddev_samp(f)",
    "scienceFluxSigma": "stddev_samp(sf)",
    "psfFluxSkew": "skewness(f)",
    "psfFluxChi2": "sum(((f - wmean) / e) ^ 2)",
    # Stetson J for one band: each residual paired with itself.
    "psfFluxStetsonJ": "CASE WHEN count(*) > 1 THEN avg(sign(d2 - 1) * sqrt(abs(d2 - 1))) END",
}


def diaobject_sql(source_table: str = '"dp1"."DiaSource"') -> str:
    """SELECT producing one row per diaObjectId with DP1's DiaObject columns."""
    stats = ",\n        ".join(f"{sql} AS {name}" for name, sql in BAND_STATS.items())
    pivots = ",\n    ".join(
        f"max(CASE WHEN band = '{b}' THEN {name} END) AS {b}_{name}"
        for b in BANDS for name in BAND_STATS
    )
    # The mean of the positions' unit vectors gives the mean position.
    cx, cy, sz = ("cos(radians(dec)) * cos(radians(ra))", "cos(radians(dec)) * sin(radians(ra))",
                  "sin(radians(dec))")
    return f"""
WITH s0 AS (
    SELECT diaObjectId, diaSourceId, band, ra, dec, psfFlux AS f, psfFluxErr AS e, scienceFlux AS sf,
           scienceFluxErr AS se, midpointMjdTai AS t
    FROM {source_table}
), w AS (
    SELECT diaObjectId, band, sum(f / (e * e)) / sum(1 / (e * e)) AS wmean,
           sqrt(1 / sum(1 / (e * e))) AS wmeanerr, count(*) AS n,
           quantile_cont(f, [0.05, 0.25, 0.5, 0.75, 0.95]) AS q
    FROM s0 GROUP BY diaObjectId, band
), s AS (
    SELECT s0.*, w.wmean, w.wmeanerr, w.q, w.q[3] AS med, w.n,
           (f - lag(f) OVER win) / (t - lag(t) OVER win) AS slope_step,
           CASE WHEN w.n > 1 THEN (w.n / (w.n - 1.0)) * ((f - w.wmean) / e) ^ 2 END AS d2
    FROM s0 JOIN w USING (diaObjectId, band)
    WINDOW win AS (PARTITION BY diaObjectId, band ORDER BY t, diaSourceId)
), per_band AS (
    SELECT diaObjectId, band,
        {stats}
    FROM s GROUP BY diaObjectId, band
), pos AS (
    SELECT diaObjectId, count(*) AS nDiaSources, avg(t) AS radecMjdTai,
        avg({cx}) AS mx, avg({cy}) AS my, avg({sz}) AS mz
    FROM s0 GROUP BY diaObjectId
), pos2 AS (
    SELECT diaObjectId, nDiaSources, radecMjdTai, degrees(atan2(my, mx)) AS ra0,
           degrees(atan2(mz, sqrt(my ^ 2 + mx ^ 2))) AS dec
    FROM pos
)
SELECT pos2.diaObjectId, CASE WHEN ra0 < 0 THEN ra0 + 360 ELSE ra0 END AS ra, pos2.dec,
    pos2.nDiaSources, pos2.radecMjdTai,
    {pivots}
FROM pos2 JOIN per_band USING (diaObjectId)
GROUP BY pos2.diaObjectId, ra0, pos2.dec, pos2.nDiaSources, pos2.radecMjdTai
"""


def create_diaobject_table(con, name: str, extra_columns: str = "",
                           source_table: str = '"dp1"."DiaSource"') -> None:
    """``CREATE TEMP TABLE name`` of the DiaObjects (plus ``extra_columns``), on one thread."""
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute("SET threads TO 1")
    try:
        con.execute(f"CREATE TEMP TABLE {name} AS SELECT *{extra_columns} FROM ({diaobject_sql(source_table)})")
    finally:
        con.execute(f"SET threads TO {int(threads)}")
