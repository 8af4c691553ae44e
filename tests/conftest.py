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


#: The bearer token of ``token_server`` (owner "alice").
TEST_TOKEN = "diavo-test-token-0123456789"


@pytest.fixture(scope="session")
def test_token() -> str:
    return TEST_TOKEN


@pytest.fixture(scope="session")
def token_server(small_archive, tmp_path_factory):
    """A real ``diavo serve`` on the small demo archive that wants ``test_token``."""
    from conformance.server_process import ServerProcess

    work = tmp_path_factory.mktemp("token-server")
    server = ServerProcess(archive=small_archive[0], state_dir=work / "uws", log_path=work / "server.log",
                           extra_env={"DIAVO_TOKENS": f"{TEST_TOKEN}:alice"})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def small_hats(small_archive, tmp_path_factory):
    """HATS catalogs of the small archive's spatial tables in small partitions (several per
    table, unlike the archive's own DIR/hats), written once per session."""
    from diavo.server.archive.hats_export import export_hats

    out = tmp_path_factory.mktemp("small-hats")
    export_hats(small_archive[0], out, partition_rows=5000)
    return out


@pytest.fixture(scope="session")
def pg_small(pg_cluster, small_archive, monkeypatch_session):
    """The small archive loaded into a database of the private cluster (``diavo load-pg``,
    reader role granted); the reader's URL. PGPASSWORD carries the reader's password."""
    from conformance.pg_cluster import READER, READER_PASSWORD
    from diavo.server.archive import pg_store
    from diavo.server.archive.model import load_model

    url = pg_cluster.create_database("small")
    import psycopg

    with psycopg.connect(pg_cluster.admin_url("small")) as conn:
        pg_store.load(small_archive[0], conn, load_model(), reader=READER, progress=False)
    monkeypatch_session.setenv("PGPASSWORD", READER_PASSWORD)
    return url

