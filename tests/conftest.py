"""Shared fixtures: real archives built once per test session in temporary directories."""
from __future__ import annotations

import pytest

from diavo.server.archive.demo.build import build_demo


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("small") / "archive"
    info = build_demo(root, scale="small", seed=42, progress=False)
    return root, info


@pytest.fixture(scope="session")
def small_server(small_archive, tmp_path_factory):
    """A real ``diavo serve`` child process on the small demo archive, for client tests; its
    base URL is ``small_server.url``. Shared by every test module of the session."""
    from conformance.server_process import ServerProcess

    root, _ = small_archive
    work = tmp_path_factory.mktemp("small-server")
    server = ServerProcess(archive=root, state_dir=work / "uws", log_path=work / "server.log")
    server.start()
    yield server
    server.stop()
