"""Queries and expected answers shared by the pyvo, STILTS and restart checks."""
from __future__ import annotations

import numpy as np
from astropy.table import Table

#: The DP1 tutorial's DiaSource query (202.3); the demo archive reproduces its visit/detector.
TUTORIAL_WHERE = "visit = 2024110800246 AND detector = 2"
TUTORIAL = f"SELECT ra, dec, diaSourceId FROM dp1.DiaSource WHERE {TUTORIAL_WHERE}"

#: A 1" positional cross-match of an uploaded table t1 (id, ra, dec) with DiaSources.
CROSSMATCH = ("SELECT u.id, s.diaSourceId FROM dp1.DiaSource AS s, TAP_UPLOAD.t1 AS u "
              "WHERE CONTAINS(POINT('ICRS', s.ra, s.dec), CIRCLE('ICRS', u.ra, u.dec, 1/3600.)) = 1")
#: The same in TOPCAT's form (JOIN ... ON 1=CONTAINS).
CROSSMATCH_ON = "ON 1=CONTAINS(POINT('ICRS', ta.ra, ta.dec), CIRCLE('ICRS', tc.ra, tc.dec, 1/3600.))"
CROSSMATCH_JOIN = "SELECT tc.id, ta.diaSourceId FROM TAP_UPLOAD.t1 AS tc JOIN dp1.DiaSource AS ta " + CROSSMATCH_ON

#: Never finishes on the small archive (42.7k³ row triples, a filter no column statistics can
#: decide): a job that is surely still running when it is aborted or the server dies.
ENDLESS = ("SELECT COUNT(*) AS n FROM dp1.DiaSource AS a, dp1.DiaSource AS b, dp1.DiaSource AS c "
           "WHERE MOD(a.diaSourceId + b.diaSourceId + c.diaSourceId, 1000003) = 7")


def separation_deg(ra1, dec1, ra2, dec2):
    """Great-circle distance (haversine), degrees."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


def upload_case(catalog) -> tuple[Table, set[tuple[int, int]]]:
    """Six positions (five 0.4" from DiaSources, one far from any) and their true 1" matches."""
    src = catalog.sql("SELECT diaSourceId, ra, dec FROM dp1.DiaSource ORDER BY diaSourceId").fetchnumpy()
    rng = np.random.default_rng(7)
    pick = rng.choice(len(src["ra"]), 5, replace=False)
    ra = np.append(src["ra"][pick] + 0.4 / 3600 / np.cos(np.radians(src["dec"][pick])), 10.0)
    dec = np.append(src["dec"][pick], 85.0)
    ids = np.arange(1, 7, dtype=np.int64) * 1000
    table = Table({"id": ids, "ra": ra, "dec": dec})
    table["ra"].unit = table["dec"].unit = "deg"
    expected: set[tuple[int, int]] = set()
    for i in range(len(ids)):
        sep = separation_deg(ra[i], dec[i], src["ra"], src["dec"])
        assert not np.any(np.abs(sep - 1 / 3600) < 1e-3 / 3600), "a source sits on the match radius"
        expected |= {(int(ids[i]), int(s)) for s in src["diaSourceId"][sep <= 1 / 3600]}
    assert len({p[0] for p in expected}) == 5
    return table, expected


def pairs(table) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in zip(table["id"], table["diaSourceId"], strict=False)}
