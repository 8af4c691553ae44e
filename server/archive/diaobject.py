"""DiaObject rows computed from their DiaSources, inside DuckDB.

Each per-band light-curve statistic of DP1's DiaObject is an aggregate of the object's
DiaSources in that band; computing them in SQL keeps millions of sources out of Python and
makes the numbers true to the catalog they summarise.

Floating-point sums depend on the order of their terms, and a parallel aggregation combines
per-thread partial states in whatever order the threads finish. Every order-sensitive
aggregate here therefore carries ``{o}`` -- an ``ORDER BY`` on a total order of the group's
sources -- so one seed gives bit-identical catalogs however many threads run the build.
"""
from __future__ import annotations

from diavo.shared.bands import BANDS

#: Per-band statistic -> SQL over the per-source view ``s`` (f=psfFlux, e=psfFluxErr,
#: sf=scienceFlux, se=scienceFluxErr, t=midpointMjdTai, wmean, n, q = the 5/25/50/75/95
#: percentiles computed in one pass, med = q[3], slope_step); ``{o}`` is the fixed order.
BAND_STATS: dict[str, str] = {
    "psfFluxLinearSlope": "regr_slope(f, t{o})",
    "psfFluxLinearIntercept": "regr_intercept(f, t{o})",
    "psfFluxMAD": "median(abs(f - med))",
    "psfFluxMaxSlope": "max(abs(slope_step))",
    "psfFluxErrMean": "avg(e{o})",
    "psfFluxMean": "any_value(wmean)",
    "psfFluxMeanErr": "any_value(wmeanerr)",
    "psfFluxNdata": "count(*)",
    "scienceFluxMean": "sum(sf / (se * se){o}) / sum(1 / (se * se){o})",
    "scienceFluxMeanErr": "sqrt(1 / sum(1 / (se * se){o}))",
    "psfFluxMin": "min(f)",
    "psfFluxMax": "max(f)",
    "psfFluxPercentile05": "any_value(q[1])",
    "psfFluxPercentile25": "any_value(q[2])",
    "psfFluxPercentile50": "any_value(q[3])",
    "psfFluxPercentile75": "any_value(q[4])",
    "psfFluxPercentile95": "any_value(q[5])",
    "psfFluxSigma": "stddev_samp(f{o})",
    "scienceFluxSigma": "stddev_samp(sf{o})",
    "psfFluxSkew": "skewness(f{o})",
    "psfFluxChi2": "sum(((f - wmean) / e) ^ 2{o})",
    # Stetson J for one band: each residual paired with itself.
    "psfFluxStetsonJ": "CASE WHEN count(*) > 1 THEN avg(sign(d2 - 1) * sqrt(abs(d2 - 1)){o}) END",
}


#: The total order of a group's sources that every order-sensitive aggregate follows.
SOURCE_ORDER = " ORDER BY t, diaSourceId"


def diaobject_sql(source_table: str = '"dp1"."DiaSource"') -> str:
    """SELECT producing one row per diaObjectId with DP1's DiaObject columns."""
    o = SOURCE_ORDER
    stats = ",\n        ".join(f"{sql.format(o=o)} AS {name}" for name, sql in BAND_STATS.items())
    pivots = ",\n    ".join(
        f"max(CASE WHEN band = '{b}' THEN {name} END) AS {b}_{name}"
        for b in BANDS for name in BAND_STATS
    )
    # Unit vectors of the positions, averaged in the fixed order, give the mean position.
    cx, cy, sz = ("cos(radians(dec)) * cos(radians(ra))", "cos(radians(dec)) * sin(radians(ra))",
                  "sin(radians(dec))")
    return f"""
WITH s0 AS (
    SELECT diaObjectId, diaSourceId, band, ra, dec, psfFlux AS f, psfFluxErr AS e, scienceFlux AS sf,
           scienceFluxErr AS se, midpointMjdTai AS t
    FROM {source_table}
), w AS (
    SELECT diaObjectId, band, sum(f / (e * e){o}) / sum(1 / (e * e){o}) AS wmean,
           sqrt(1 / sum(1 / (e * e){o})) AS wmeanerr, count(*) AS n,
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
    SELECT diaObjectId, count(*) AS nDiaSources, avg(t{o}) AS radecMjdTai,
        avg({cx}{o}) AS mx, avg({cy}{o}) AS my, avg({sz}{o}) AS mz
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
