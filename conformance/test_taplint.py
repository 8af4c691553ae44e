"""STILTS taplint, every default stage, against the session's server and against the same archive
served from its HATS catalogs, by DuckDB (``DIAVO_STORAGE=hats``) and by Spark on a standalone
cluster (``DIAVO_ENGINE=spark``), and from PostgreSQL with pgSphere (``DIAVO_ENGINE=postgresql://...``):
no errors allowed on any.

The full reports are kept in the reports directory (taplint.txt, taplint-hats.txt, taplint-spark.txt
and taplint-postgresql.txt, plus taplint-summary*.json with per-stage counts and every error, warning
and validator failure).
Warnings and failures do not fail the run; each one is re-issued as a pytest warning so it shows
in the summary.
"""
from __future__ import annotations

import subprocess
import warnings

import pytest

from conformance.conftest import other_server
from conformance.taplint_report import parse

pytestmark = pytest.mark.stilts

#: taplint's preparation step and default stages (STILTS 3.4), in run order.
STAGES = ["PRE", "TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "QAS", "UWS", "MDQ",
          "OBS", "LOC", "UPL", "EXA"]
TIMEOUT_S = 900


class TaplintWarning(UserWarning):
    """A taplint warning (W) or validator failure (F): not fatal, but to be looked at."""


@pytest.fixture(scope="module", params=["native", "hats", "spark", "postgresql"])
def taplint(request, stilts, reports_dir, archive_dir, tmp_path_factory):
    server = None
    if request.param == "native":
        tap_url = request.getfixturevalue("tap_url")
        suffix = ""
    else:
        server = other_server(request.param, request, archive_dir, tmp_path_factory)
        tap_url = server.tap_url
        suffix = f"-{request.param}"
    cmd = [stilts, "taplint", f"tapurl={tap_url}", "report=EWISF", "maxrepeat=20", "truncate=4000"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    finally:
        if server is not None:
            server.stop()
    out = reports_dir / f"taplint{suffix}.txt"
    out.write_text(proc.stdout + ("\n# stderr:\n" + proc.stderr if proc.stderr.strip() else ""))
    report = parse(proc.stdout)
    (reports_dir / f"taplint-summary{suffix}.json").write_text(report.to_json())
    print(f"\ntaplint report: {out}\n{report.table()}")
    return proc, report, out


def test_taplint_ran_to_the_end(taplint):
    proc, report, out = taplint
    assert proc.returncode == 0, f"taplint exited with {proc.returncode}: {proc.stderr[-2000:]} (report {out})"
    assert report.totals, f"no Totals line: taplint stopped early (report {out})"
    unknown = set(report.sections) - set(STAGES)
    assert not unknown, f"stages this test does not know: {sorted(unknown)} (report {out})"


def test_taplint_totals(taplint):
    """The Totals line counts every report, also repeats beyond maxrepeat that were not printed."""
    _, report, out = taplint
    assert report.totals.get("Errors", -1) == 0, f"taplint totals: {report.totals} (report {out})"


@pytest.mark.parametrize("stage", STAGES)
def test_taplint_stage(taplint, stage):
    _, report, out = taplint
    if stage != "PRE":  # the preparation section appears only when it has something to say
        assert stage in report.sections, f"stage {stage} missing from the report {out}"
    for m in report.of("W", stage) + report.of("F", stage):
        warnings.warn(TaplintWarning(f"{m.label()} {m.text}"), stacklevel=1)
    errors = report.of("E", stage)
    assert not errors, f"{len(errors)} taplint error(s) in {stage} (report {out}):\n" + "\n".join(
        f"{m.label()} {m.text}" for m in errors)
