"""``diavo adql check|translate|run``: the console script as a subprocess, the way a user runs it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DIAVO = Path(sys.executable).parent / ("diavo.exe" if os.name == "nt" else "diavo")
CONE = ("SELECT TOP 3 diaSourceId FROM dp1.DiaSource "
        "WHERE CONTAINS(POINT(ra, dec), CIRCLE(53.1, -27.8, 0.05)) = 1")
VISIT, DETECTOR = 2024110800246, 2
TUTORIAL = f"SELECT diaSourceId, x, y FROM dp1.DiaSource WHERE visit = {VISIT} AND detector = {DETECTOR}"
ROWS = re.compile(r"^-- (\d+) row\(s\)( \(truncated at MAXREC\))? in [\d.]+ ms$")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DIAVO_DEMO_DIR" and not k.startswith("TQDM_")}


def diavo(*args, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    assert DIAVO.exists(), f"no diavo console script next to {sys.executable}"
    proc = subprocess.run([str(DIAVO), *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=120, env=_env(), cwd=cwd)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    return proc


def row_count(stdout: str) -> tuple[int, bool]:
    """The trailing '-- N row(s)[ (truncated at MAXREC)] in T ms' line."""
    last = stdout.rstrip("\n").splitlines()[-1]
    m = ROWS.match(last)
    assert m, f"no row-count line at the end of:\n{stdout}"
    return int(m.group(1)), bool(m.group(2))


# ---------------------------------------------------------------- check

def test_check_valid(tmp_path):
    proc = diavo("adql", "check", TUTORIAL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout.lower()


def test_check_invalid_is_positioned(tmp_path):
    proc = diavo("adql", "check", "SELECT FROM x", cwd=tmp_path)
    assert proc.returncode == 1
    assert "line 1, column" in proc.stderr
    assert proc.stdout == ""


def test_check_is_syntax_only(tmp_path):
    """No table lookups: an unknown table is still valid syntax."""
    proc = diavo("adql", "check", "SELECT nothing FROM no_such.table_here", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("query", [
    "SELECT my_own_udf(a) FROM t",                      # <user_defined_function>: any identifier
    "SELECT POINT(1, 'two') FROM t",                    # a type error, not a syntax error
    "SELECT CIRCLE(3, 1, 2, 0.1) FROM t",
    "SELECT a FROM t1 JOIN t2",                         # the join specification is optional
    "SELECT a FROM t -- it's 'quoted'",                 # a comment ending the text
])
def test_check_is_the_bnf_alone(tmp_path, query):
    proc = diavo("adql", "check", query, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_check_reads_stdin(tmp_path):
    ok = diavo("adql", "check", "-", stdin=CONE + "\n", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = diavo("adql", "check", "-", stdin="SELECT TOP 3\nFROM dp1.DiaSource\n", cwd=tmp_path)
    assert bad.returncode == 1
    assert "line 2, column" in bad.stderr


# ---------------------------------------------------------------- translate

def test_translate_cone_uses_healpix_ranges(tmp_path):
    proc = diavo("adql", "translate", CONE, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sql = proc.stdout
    assert re.search(r'"_healpix" BETWEEN \d+ AND \d+', sql), sql
    assert re.search(r'"_x" \* [-0-9.e]+ \+ .*"_z" \* [-0-9.e]+ >= ', sql), sql  # exact dot-product cone test
    assert "LIMIT 3" in sql


def test_translate_misspelt_column_suggests(tmp_path):
    proc = diavo("adql", "translate", "SELECT psfflx FROM dp1.DiaSource", cwd=tmp_path)
    assert proc.returncode == 1
    assert "psfFlux" in proc.stderr
    assert "line 1, column 8" in proc.stderr
    assert proc.stdout == ""


def test_translate_reads_stdin(tmp_path):
    proc = diavo("adql", "translate", "-", stdin="SELECT band FROM dp1.Visit WHERE band = 'r'", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"dp1"."Visit"' in proc.stdout and "'r'" in proc.stdout  # the string as a bound parameter


# ---------------------------------------------------------------- run

@pytest.fixture(scope="module")
def tutorial_count(small_archive):
    from diavo.server.archive import store

    con = store.connect(small_archive[0])
    try:
        (n,), = con.execute('SELECT COUNT(*) FROM dp1."DiaSource" WHERE visit = ? AND detector = ?',
                            [VISIT, DETECTOR]).fetchall()
    finally:
        con.close()
    return n


def test_run_tutorial_query(small_archive, tutorial_count, tmp_path):
    assert tutorial_count > 5
    proc = diavo("adql", "run", TUTORIAL, "--archive", small_archive[0], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    n, truncated = row_count(proc.stdout)
    assert n == tutorial_count and not truncated
    header = proc.stdout.splitlines()[0].split()
    assert header == ["diaSourceId", "x", "y"]
    # the data rows really are printed: header, units/separator lines, N rows, the count line
    ids = [ln.split()[0] for ln in proc.stdout.splitlines() if re.match(r"^\s*\d{6,}\s", ln)]
    assert len(ids) == tutorial_count


def test_run_maxrec_reports_truncation(small_archive, tutorial_count, tmp_path):
    proc = diavo("adql", "run", TUTORIAL, "--archive", small_archive[0], "--maxrec", 5, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    n, truncated = row_count(proc.stdout)
    assert n == 5 and truncated


def test_run_exact_fit_is_not_truncated(small_archive, tutorial_count, tmp_path):
    proc = diavo("adql", "run", TUTORIAL, "--archive", small_archive[0], "--maxrec", tutorial_count,
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert row_count(proc.stdout) == (tutorial_count, False)


def test_run_stdin_and_empty_result(small_archive, tmp_path):
    proc = diavo("adql", "run", "-", "--archive", small_archive[0], cwd=tmp_path,
                 stdin="SELECT diaSourceId FROM dp1.DiaSource WHERE visit = 1")
    assert proc.returncode == 0, proc.stderr
    assert row_count(proc.stdout) == (0, False)


@pytest.mark.parametrize("query", [
    "SELECT TOP 1 detector / 0 FROM dp1.DiaSource",           # integer division by zero
    "SELECT SUM(diaSourceId) FROM dp1.DiaSource",              # BIGINT overflow
])
def test_run_engine_failure_is_one_line(small_archive, tmp_path, query):
    proc = diavo("adql", "run", query, "--archive", small_archive[0], cwd=tmp_path)
    assert proc.returncode == 1
    assert "query failed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_invalid_adql(small_archive, tmp_path):
    proc = diavo("adql", "run", "SELECT psfflx FROM dp1.DiaSource", "--archive", small_archive[0], cwd=tmp_path)
    assert proc.returncode == 1
    assert "invalid ADQL" in proc.stderr and "psfFlux" in proc.stderr


def test_run_missing_archive(tmp_path):
    proc = diavo("adql", "run", TUTORIAL, "--archive", tmp_path / "nowhere", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no archive" in proc.stderr
