"""examples/difference_images.py, the tutorial end to end, against a real server (as CI runs it)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.server_process import free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "difference_images.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_the_tutorial_runs_and_every_check_holds(small_server, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "diff.png"
    done = _run("--out", str(out), cwd=tmp_path, env={"DIAVO_URL": small_server.url})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = done.stdout
    assert "all checks passed" in text and "FAILED" not in text
    for fact in ("references come back ordered by start time", "SIA finds the same difference images",
                 "ADQL query on ObsCore gives the same references", "give the same pixels",
                 "the mask defines 22 planes", "BUNIT is nJy", "pressure, temperature and humidity",
                 "sky -> pixel -> sky", "the image is 4072 x 4000 pixels", "the PSF FWHM is about 4.5",
                 "hand-written TAP job returns the same DiaSources",
                 "every DiaSource of the image lies inside its bounding box"):
        assert any(line.lstrip().startswith("ok:") and fact in line for line in text.splitlines()), fact
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "diff-cutout.png").read_bytes().startswith(PNG_SIGNATURE)


def test_an_unreachable_service_fails_the_run(tmp_path):
    done = _run(f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path / "x.png"), cwd=tmp_path)
    assert done.returncode == 2
    assert "ERROR" in done.stderr and not (tmp_path / "x.png").exists()


def test_a_failed_check_stops_with_its_fact():
    spec = importlib.util.spec_from_file_location("difference_images_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(module.CheckFailed, match="the sky is green"):
        module.check(False, "the sky is green")
    assert issubclass(module.CheckFailed, AssertionError)
