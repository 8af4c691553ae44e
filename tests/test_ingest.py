"""``diavo ingest`` on real files: FITS written by the server itself, tables in three formats."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from diavo.server.archive import store
from diavo.server.archive.export import export_parquet
from diavo.server.archive.images.access import ImageStore
from diavo.server.archive.ingest import IngestError, ingest

PICKS = [(2024110800246, 2), (2024110800250, 6), (2024112700000, 0)]


@pytest.fixture(scope="module")
def fits_files(small_archive, tmp_path_factory):
    root = small_archive[0]
    con = store.connect(root)
    nov27 = con.execute("SELECT min(visit) FROM diavo.image WHERE day_obs = 20241127").fetchone()[0]
    picks = [p if p[0] != 2024112700000 else (nov27, 0) for p in PICKS]
    images = ImageStore(root)
    out = tmp_path_factory.mktemp("fits")
    paths = []
    for visit, detector in picks:
        path = out / f"diff_{visit}_{detector}.fits"
        path.write_bytes(images.fits_bytes(visit, detector))
        paths.append(path)
    return picks, paths


def rows(con, picks):
    cur = con.execute('SELECT * FROM ivoa."ObsCore" ORDER BY lsst_visit, lsst_detector')
    names = [d[0] for d in cur.description]
    keep = set(picks)
    return [dict(zip(names, r, strict=False)) for r in cur.fetchall() if (r[names.index("lsst_visit")], r[names.index("lsst_detector")]) in keep]


def test_ingested_images_describe_themselves_as_the_generator_did(small_archive, fits_files, tmp_path):
    picks, paths = fits_files
    out = ingest(tmp_path / "arch", images=paths)
    assert out["images"] == 3
    generated = rows(store.connect(small_archive[0]), picks)
    ingested = rows(store.connect(tmp_path / "arch"), picks)
    assert len(generated) == len(ingested) == 3
    for g, i in zip(generated, ingested, strict=False):
        assert g.keys() == i.keys()
        for key in g:
            if isinstance(g[key], float):
                assert math.isclose(g[key], i[key], rel_tol=1e-9, abs_tol=1e-12), key
            else:
                assert g[key] == i[key], key


def test_ingested_images_are_served_from_disk(small_archive, fits_files, tmp_path):
    picks, paths = fits_files
    root = tmp_path / "arch"
    ingest(root, images=paths)
    disk = ImageStore(root)
    drawn = ImageStore(small_archive[0])
    visit, detector = picks[0]
    assert disk.fits_bytes(visit, detector) == paths[0].read_bytes()
    region = (1000, 1000, 1200, 1200)
    _, a = disk.planes(visit, detector, region)
    _, b = drawn.planes(visit, detector, region)
    for plane in ("image", "mask", "variance"):
        assert np.array_equal(getattr(a, plane), getattr(b, plane))
    assert (a.x0, a.y0) == (1000, 1000)
    # The stored path is inside the archive, so the archive can be moved as a whole.
    con = store.connect(root)
    assert con.execute("SELECT path FROM diavo.image WHERE visit=? AND detector=?", [visit, detector]).fetchone()[0] \
        == f"images/{visit}_{detector}.fits"


def test_a_file_without_mask_plane_is_refused(tmp_path, fits_files):
    _, paths = fits_files
    with fits.open(paths[0]) as hdul:
        fits.HDUList([hdul[0].copy(), hdul["IMAGE"].copy()]).writeto(tmp_path / "bad.fits")
    with pytest.raises(IngestError, match="no MASK extension"):
        ingest(tmp_path / "arch", images=[tmp_path / "bad.fits"])


def test_tables_load_from_parquet_csv_and_votable(small_archive, tmp_path):
    root = small_archive[0]
    exported = export_parquet(root, tmp_path / "pq")
    src = pq.read_table(exported["dp1.DiaSource"])
    visits = pq.read_table(exported["dp1.Visit"])
    parts = [src.slice(0, 1000), src.slice(1000, 1000), src.slice(2000, 500)]
    pq.write_table(parts[0], tmp_path / "a.parquet")
    pcsv.write_csv(parts[1], tmp_path / "b.csv")
    small_cols = ["diaSourceId", "visit", "detector", "band", "ra", "dec", "x", "y", "psfFlux", "psfFluxErr",
                  "midpointMjdTai", "time_processed"]
    t = Table({c: parts[2][c].to_numpy(zero_copy_only=False) for c in small_cols if c != "time_processed"})
    t["time_processed"] = [str(v) for v in parts[2]["time_processed"].to_pylist()]
    t.write(tmp_path / "c.vot", format="votable")
    arch = tmp_path / "arch"
    out = ingest(arch, tables=[("dp1.Visit", exported["dp1.Visit"]), ("dp1.DiaSource", tmp_path / "a.parquet"),
                               ("DP1.diasource", tmp_path / "b.csv"), ("dp1.DiaSource", tmp_path / "c.vot")])
    assert out["tables"]["dp1.Visit"] == visits.num_rows
    con = store.connect(arch)
    assert con.execute("SELECT count(*) FROM dp1.DiaSource").fetchone()[0] == 2500
    got = con.execute("SELECT diaSourceId, psfFlux, x FROM dp1.DiaSource ORDER BY diaSourceId").fetchnumpy()
    want = pa.concat_tables([p.select(["diaSourceId", "psfFlux", "x"]) for p in parts]).sort_by("diaSourceId")
    assert np.array_equal(got["diaSourceId"], want["diaSourceId"].to_numpy())
    assert np.allclose(got["psfFlux"], want["psfFlux"].to_numpy(), rtol=1e-6)
    assert np.array_equal(got["x"], want["x"].to_numpy())
    hpx = con.execute("SELECT _healpix FROM dp1.DiaSource").fetchnumpy()["_healpix"]
    assert np.all(np.diff(hpx) >= 0)  # appends keep the HEALPix order


def test_table_missing_a_required_column_is_refused(tmp_path):
    pq.write_table(pa.table({"visit": [1], "ra": [1.0], "dec": [2.0]}), tmp_path / "t.parquet")
    with pytest.raises(IngestError, match="needs column"):
        ingest(tmp_path / "arch", tables=[("dp1.DiaSource", tmp_path / "t.parquet")])
