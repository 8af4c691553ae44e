"""The ``diavo`` console script, run as a subprocess the way a user runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DIAVO = Path(sys.executable).parent / ("diavo.exe" if os.name == "nt" else "diavo")
PARQUET_TABLES = {
    "ivoa.ObsCore": "images",
    "dp1.DiaSource": "diasources",
    "dp1.DiaObject": "diaobjects",
    "dp1.Visit": "visits",
}


def _env() -> dict[str, str]:
    # Nothing from the caller's shell that changes what the command does (demo dir, tqdm switches).
    return {k: v for k, v in os.environ.items() if k != "DIAVO_DEMO_DIR" and not k.startswith("TQDM_")}


def run(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    assert DIAVO.exists(), f"no diavo console script next to {sys.executable}"
    return subprocess.run([str(DIAVO), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _json_line(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, f"expected one JSON line on stdout, got:\n{stdout}"
    return json.loads(lines[0])


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The working directory of every command: outside the repository."""
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def built(work):
    """``diavo demo build DIR --scale small --seed 3`` with its progress bar."""
    root = work / "small"
    proc = run("demo", "build", root, "--scale", "small", "--seed", "3", cwd=work)
    return root, proc


@pytest.fixture(scope="module")
def exported(built, work):
    root, _ = built
    out = work / "parquet"
    proc = run("export", root, "--parquet", out, cwd=work)
    return out, proc


def test_help_lists_subcommands(work):
    proc = run("--help", cwd=work, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: diavo")
    for sub in ("demo", "ingest", "export"):
        assert sub in proc.stdout


def test_demo_build(built):
    root, proc = built
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    counts = _json_line(proc.stdout)
    for key in ("visits", "images", "diasources", "diaobjects"):
        assert isinstance(counts[key], int) and counts[key] > 0, counts
    assert (root / "catalog.duckdb").is_file()
    manifest = json.loads((root / "archive.json").read_text())
    assert manifest["scale"] == "small" and manifest["seed"] == 3
    # The tqdm bar goes to stderr, never into the JSON on stdout.
    assert "visit" in proc.stderr and "%|" in proc.stderr, proc.stderr
    assert "visit/s" not in proc.stdout


def test_demo_build_quiet_has_no_progress_bar(work):
    root = work / "quiet"
    proc = run("demo", "build", root, "--quiet", "--seed", "3", "--n-sources", "2000", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "visit" not in proc.stderr and "%|" not in proc.stderr, proc.stderr
    counts = _json_line(proc.stdout)
    assert counts["diasources"] > 0 and (root / "catalog.duckdb").is_file()


def test_export_parquet(built, exported):
    import pyarrow.parquet as pq

    counts = _json_line(built[1].stdout)
    out, proc = exported
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    written = _json_line(proc.stdout)
    assert set(written) == set(PARQUET_TABLES)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{q}.parquet" for q in PARQUET_TABLES)
    for q, key in PARQUET_TABLES.items():
        path = out / f"{q}.parquet"
        assert Path(written[q]).name == path.name
        table = pq.read_table(path)
        assert table.num_rows == counts[key], (q, table.num_rows, counts)
        assert table.schema.metadata[b"diavo.table"] == q.encode()
        assert "_healpix" not in table.column_names


def test_demo_builds_once_then_says_ready(work):
    root = work / "default-demo"
    assert not root.exists()
    first = run("demo", "--dir", root, "--no-serve", cwd=work)
    assert first.returncode == 0, first.stderr
    _no_traceback(first)
    assert "built" in first.stdout and str(root) in first.stdout, first.stdout
    catalog = root / "catalog.duckdb"
    assert catalog.is_file() and (root / "archive.json").is_file()
    mtime = catalog.stat().st_mtime_ns
    # Nothing may land in the working directory (the default ./diavo-demo stays unused).
    assert not (work / "diavo-demo").exists()

    second = run("demo", "--dir", root, "--no-serve", cwd=work)
    assert second.returncode == 0, second.stderr
    assert "ready" in second.stdout, second.stdout
    assert "visit" not in second.stderr  # no build, no progress bar
    assert catalog.stat().st_mtime_ns == mtime, "the second run rebuilt the archive"


def test_bad_scale_is_an_argparse_error(work):
    proc = run("demo", "build", work / "huge", "--scale", "huge", cwd=work, timeout=60)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert "invalid choice" in proc.stderr and "huge" in proc.stderr, proc.stderr
    assert not (work / "huge").exists()


def test_export_of_missing_archive(work):
    proc = run("export", "/nonexistent", "--parquet", work / "never", cwd=work, timeout=60)
    assert proc.returncode != 0
    _no_traceback(proc)
    assert proc.stderr.startswith("diavo"), proc.stderr
    assert "/nonexistent" in proc.stderr and "catalog.duckdb" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_ingest_bad_table_spec(work):
    root = work / "ingest-target"
    proc = run("ingest", root, "--table", "nonsense", cwd=work, timeout=60)
    assert proc.returncode != 0
    _no_traceback(proc)
    assert "SCHEMA.TABLE=FILE" in proc.stderr and "nonsense" in proc.stderr, proc.stderr
    assert not root.exists(), "a rejected command must not create the archive"


def test_serve_refuses_an_unknown_engine(small_archive, tmp_path):
    proc = run("serve", small_archive[0], "--engine", "nosuch", "--port", "0", cwd=tmp_path, timeout=60)
    assert proc.returncode != 0 and "unknown engine 'nosuch'" in proc.stderr
    _no_traceback(proc)
