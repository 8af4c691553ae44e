"""``diavo export --hats``: HATS catalogs of the spatial tables that LSDB opens, whose cone
searches return exactly the rows of diavo's own ADQL cone."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

lsdb = pytest.importorskip("lsdb")

from diavo.server.engine.base import Limits  # noqa: E402
from diavo.server.query.executor import open_service  # noqa: E402

CENTRES = [(53.125, -27.74, 0.05), (53.3, -27.9, 0.2), (59.1, -48.8, 0.3), (40.0, -34.4, 0.1)]


@pytest.fixture(scope="module")
def hats_dir(small_hats):
    return small_hats  # small partitions, so the adaptive split really makes several of them


def test_layout_is_hats(hats_dir):
    cat = hats_dir / "dp1.DiaSource"
    props = dict(line.split("=", 1) for line in (cat / "hats.properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    assert props["hats_col_ra"] == "ra" and props["hats_col_dec"] == "dec"
    assert props["hats_col_healpix"] == "_healpix_29" and props["hats_col_healpix_order"] == "29"
    with open(cat / "partition_info.csv") as f:
        parts = list(csv.DictReader(f))
    assert len(parts) > 3
    for p in parts:
        order, pix = int(p["Norder"]), int(p["Npix"])
        assert (cat / "dataset" / f"Norder={order}" / f"Dir={pix // 10000 * 10000}" / f"Npix={pix}.parquet").is_file()
    assert (cat / "dataset" / "_metadata").is_file()
    schema = pq.read_schema(cat / "dataset" / "_common_metadata")
    ra = schema.field("ra").metadata
    assert ra[b"unit"] == b"deg" and ra[b"ucd"].startswith(b"pos.eq.ra") and ra[b"description"]
    assert schema.field("psfFlux").metadata[b"unit"] == b"nJy"
    assert "_healpix_29" in schema.names


@pytest.mark.parametrize(("ra", "dec", "radius"), CENTRES)
def test_lsdb_cone_equals_diavo_cone(small_archive, hats_dir, ra, dec, radius):
    svc = open_service(small_archive[0])
    try:
        adql = (f"SELECT diaSourceId FROM dp1.DiaSource "
                f"WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, {radius})) = 1")
        ours = set(svc.run(adql, Limits(maxrec=None, timeout_s=60)).table.column(0).to_pylist())
    finally:
        svc.close()
    theirs = lsdb.open_catalog(hats_dir / "dp1.DiaSource").cone_search(ra, dec, radius * 3600).compute()
    assert set(int(x) for x in theirs["diaSourceId"]) == ours
    if (ra, dec) == (53.125, -27.74):
        assert len(ours) > 100  # the tutorial's field is populated: the equality is not vacuous


def test_all_rows_and_diaobjects(small_archive, hats_dir):
    info = json.loads((small_archive[0] / "archive.json").read_text())
    assert info["scale"] == "small"
    sources = lsdb.open_catalog(hats_dir / "dp1.DiaSource").compute()
    objects = lsdb.open_catalog(hats_dir / "dp1.DiaObject").compute()
    assert len(sources) == small_archive[1]["diasources"] and len(objects) == small_archive[1]["diaobjects"]
    assert sources["diaSourceId"].is_unique


def test_cli_writes_hats(small_archive, tmp_path):
    diavo = Path(sys.executable).with_name("diavo")
    proc = subprocess.run([str(diavo), "export", str(small_archive[0]), "--hats", str(tmp_path / "h")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out) == {"dp1.DiaSource (HATS)", "dp1.DiaObject (HATS)"}
    assert lsdb.open_catalog(tmp_path / "h" / "dp1.DiaObject").hc_structure.catalog_info.ra_column == "ra"
