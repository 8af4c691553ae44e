"""The DP1-scale demo archive: DP1's order of magnitude, and the tutorial's query still works.

This builds about 16,000 images and a few million DiaSources (about two minutes on two cores);
it runs in CI because the issue promises both scales.
"""
from __future__ import annotations

import numpy as np
import pytest
from test_demo_archive import seed_query  # noqa: E402

from diavo.server.archive import store
from diavo.server.archive.demo.build import build_demo


@pytest.fixture(scope="module")
def dp1_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp1") / "archive"
    return root, build_demo(root, scale="dp1", seed=42, progress=False)


def test_dp1_scale_counts(dp1_archive):
    root, info = dp1_archive
    assert 1_600 <= info["visits"] <= 2_000  # DP1: 1,792
    assert 14_000 <= info["images"] <= 18_000  # DP1: 15,972
    assert 2_000_000 <= info["diasources"] <= 6_000_000
    con = store.connect(root)
    nights = con.execute("SELECT count(DISTINCT visit // 100000), min(visit // 100000), max(visit // 100000) "
                         "FROM dp1.Visit").fetchone()
    assert nights[0] == 48 and nights[1] >= 20241024 and nights[2] <= 20241211
    bands = {b for (b,) in con.execute("SELECT DISTINCT band FROM dp1.Visit").fetchall()}
    assert bands == set("ugrizy")
    fields = {f for (f,) in con.execute("SELECT DISTINCT target_name FROM ivoa.ObsCore").fetchall()}
    assert len(fields) == 7


def test_dp1_scale_seed_query(dp1_archive):
    hits = seed_query(store.connect(dp1_archive[0]))
    assert 10 <= len(hits) <= 24, hits  # DP1 answers 16
    assert hits[0] == (2024110800246, 2)


def test_dp1_diasource_is_healpix_ordered(dp1_archive):
    con = store.connect(dp1_archive[0])
    hpx = con.execute("SELECT _healpix FROM dp1.DiaSource").fetchnumpy()["_healpix"]
    assert np.all(np.diff(hpx) >= 0)
    # Row groups cover narrow HEALPix ranges: a cone's range filter can skip most of them.
    n = len(hpx)
    groups = [hpx[i:i + 122_880] for i in range(0, n, 122_880)]
    assert len(groups) > 10
    spans = [(g[0], g[-1]) for g in groups]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
