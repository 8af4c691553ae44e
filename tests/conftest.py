"""Shared fixtures: real archives built once per test session in temporary directories."""
from __future__ import annotations

import pytest

from diavo.server.archive.demo.build import build_demo


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "archive"
    info = build_demo(root, scale="small", seed=42, progress=False)
    return root, info
