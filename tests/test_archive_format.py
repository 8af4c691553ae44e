"""Archive format 3: the spatial tables as HATS inside the archive, the migration from format 2,
and where the served spatial tables are read (``--storage``)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diavo.server.archive import store
from diavo.server.settings import Settings, from_environment


def diavo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diavo.server.cli", *args], capture_output=True, text=True,
                          timeout=600)


def catalog_count(root: Path, qualified: str) -> int:
    schema, table = qualified.split(".")
    con = store.connect(root)
    try:
        return con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
    finally:
        con.close()


def test_a_built_archive_holds_its_spatial_tables_as_hats(small_archive):
    import lsdb

    root = small_archive[0]
    assert json.loads((root / store.MANIFEST).read_text())["format_version"] == 3
    for qualified in store.SPATIAL_TABLES:
        cat = store.own_hats_dir(root) / qualified
        for name in ("hats.properties", "partition_info.csv", "dataset/_metadata", "dataset/_common_metadata"):
            assert (cat / name).is_file(), name
        opened = lsdb.open_catalog(cat)
        assert len(opened.compute()) == catalog_count(root, qualified) > 0
        assert "_healpix_29" in opened.hc_structure.schema.names


@pytest.fixture()
def format2(small_archive, tmp_path):
    """A copy of the small archive as diavo wrote it before format 3: no hats/, format_version 2."""
    root = tmp_path / "old"
    root.mkdir()
    for name in (store.CATALOG, store.MANIFEST):
        shutil.copy(small_archive[0] / name, root / name)
    manifest = json.loads((root / store.MANIFEST).read_text())
    (root / store.MANIFEST).write_text(json.dumps(dict(manifest, format_version=2)))
    return root


def test_a_format_2_archive_is_refused_with_the_command_that_migrates_it(format2):
    with pytest.raises(store.ArchiveFormatError, match=f"diavo migrate {format2}"):
        store.Manifest.read(format2)
    served = diavo("serve", str(format2), "--port", "1")
    assert served.returncode == 2 and "diavo migrate" in served.stderr and "Traceback" not in served.stderr


def test_migrate_writes_the_hats_catalogs_and_the_new_format(format2, small_archive):
    done = diavo("migrate", str(format2))
    assert done.returncode == 0, done.stderr
    assert "format 2 → 3" in done.stdout
    assert store.Manifest.read(format2).format_version == 3
    for qualified in store.SPATIAL_TABLES:
        assert (format2 / "hats" / qualified / "hats.properties").is_file()
    again = diavo("migrate", str(format2))
    assert again.returncode == 0 and "already archive format 3" in again.stdout


def test_an_unknown_format_is_refused(format2):
    manifest = json.loads((format2 / store.MANIFEST).read_text())
    (format2 / store.MANIFEST).write_text(json.dumps(dict(manifest, format_version=7)))
    with pytest.raises(store.ArchiveFormatError, match="format 7"):
        store.Manifest.read(format2)
    assert diavo("migrate", str(format2)).returncode == 2


def test_storage_setting_chooses_where_spatial_tables_are_read(small_archive, tmp_path):
    root = small_archive[0]
    assert Settings(root=root).hats_source is None  # native: the fastest on DuckDB
    assert Settings(root=root, storage="hats").hats_source == root / "hats"
    assert from_environment(root, {"DIAVO_STORAGE": "hats"}).hats_source == root / "hats"
    assert Settings(root=root, storage="hats", hats_dir=tmp_path).hats_source == tmp_path
    with pytest.raises(ValueError, match="storage must be native or hats"):
        Settings(root=root, storage="parquet")


def test_export_with_a_margin_writes_a_collection_lsdb_and_diavo_open(small_archive, tmp_path):
    import lsdb

    from diavo.server.archive.model import load_model
    from diavo.server.engine.base import Limits
    from diavo.server.engine.duckdb_engine import DuckDBEngine
    from diavo.server.query.executor import QueryService

    out = tmp_path / "hats"
    done = diavo("export", str(small_archive[0]), "--hats", str(out), "--margin", "10")
    assert done.returncode == 0, done.stderr
    collection = out / "dp1.DiaSource"
    assert (collection / "collection.properties").is_file()
    opened = lsdb.open_catalog(collection)
    assert opened.margin is not None
    model = load_model()
    service = QueryService(model, DuckDBEngine(small_archive[0], model, hats_dir=out))
    try:
        adql = "SELECT COUNT(*) FROM dp1.DiaSource WHERE CONTAINS(POINT(ra, dec), CIRCLE(53.125, -27.74, 0.2)) = 1"
        got = service.run(adql, Limits(maxrec=10)).table.column(0)[0].as_py()
        want = len(opened.cone_search(53.125, -27.74, 0.2 * 3600).compute())
        assert got == want > 0
    finally:
        service.close()
