"""Fixtures of the conformance suite: one real diavo server for the session, and STILTS.

The server is a child process (``diavo serve``) on a free port, serving the small demo archive
built in a temporary directory. Its log is attached to the report of every failing test that
used it. STILTS tests are skipped when ``stilts`` is not on PATH, unless DIAVO_REQUIRE_STILTS=1
(CI), which turns the skip into a failure.
"""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import requests

from conformance.server_process import ServerProcess, build_small_archive

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "stilts: runs the STILTS command-line validators")


@pytest.fixture(scope="session")
def reports_dir() -> Path:
    """Where full validator reports are kept for reading after the run (gitignored)."""
    path = Path(os.environ.get("DIAVO_REPORTS_DIR", HERE / "reports"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def archive_dir(tmp_path_factory) -> Path:
    return build_small_archive(tmp_path_factory.mktemp("conformance") / "archive")


@pytest.fixture(scope="session")
def catalog(archive_dir):
    """A read-only DuckDB connection to the archive: ground truth computed beside the server."""
    from diavo.server.archive import store

    con = store.connect(archive_dir, read_only=True)  # the one reader configuration of a process
    yield con
    con.close()


@pytest.fixture(scope="session")
def diavo_server(archive_dir, tmp_path_factory):
    """The session's server process (see ServerProcess); stopped at the end of the session."""
    work = tmp_path_factory.mktemp("server")
    server = ServerProcess(archive=archive_dir, state_dir=work / "uws", log_path=work / "server.log")
    server.start()
    yield server
    code = server.stop()
    if code not in (0, None, -signal.SIGTERM):
        print(f"\ndiavo server exited with {code}; log {server.log_path}:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def private_server(archive_dir, tmp_path_factory):
    """A server of the test module's own (same archive, own job store): for tests that may leave
    a broken service behind, so a failure there does not cascade into every other module."""
    work = tmp_path_factory.mktemp("private-server")
    server = ServerProcess(archive=archive_dir, state_dir=work / "uws", log_path=work / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(diavo_server) -> str:
    """The server's base URL, e.g. http://127.0.0.1:PORT (TAP is at base_url + '/tap')."""
    return diavo_server.url


@pytest.fixture(scope="session")
def tap_url(base_url) -> str:
    return base_url + "/tap"


@pytest.fixture(scope="session")
def http(diavo_server):
    """A requests session for raw HTTP checks."""
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="session")
def stilts() -> str:
    """Path of the ``stilts`` command; skip (or fail with DIAVO_REQUIRE_STILTS=1) without it."""
    path = shutil.which("stilts")
    if path is None:
        message = "stilts is not on PATH (Debian: apt-get install stilts)"
        if os.environ.get("DIAVO_REQUIRE_STILTS", "") not in ("", "0"):
            pytest.fail(message + " and DIAVO_REQUIRE_STILTS is set")
        pytest.skip(message)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every server log the test could have talked to."""
    outcome = yield
    report = outcome.get_result()
    if report.passed or report.skipped:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, ServerProcess):
            report.sections.append((f"diavo server log ({name}: {value.log_path})", value.log_tail(120)))


def other_server(kind: str, request, archive_dir, tmp_path_factory) -> ServerProcess:
    """The same archive served from its HATS catalogs by DuckDB, by Spark on the cluster, or by
    PostgreSQL from the private cluster."""
    from conformance.server_process import ServerProcess

    env = {"DIAVO_STORAGE": "hats"}
    if kind == "spark":
        from conformance.spark_cluster import driver_conf

        cluster = request.getfixturevalue("spark_cluster")
        conf = ",".join(f"{k}={v}" for k, v in driver_conf(cluster).items())
        env = {"DIAVO_ENGINE": "spark", "DIAVO_SPARK_MASTER": cluster.url, "DIAVO_SPARK_CONF": conf}
    if kind == "postgresql":
        from conformance.pg_cluster import READER_PASSWORD

        env = {"DIAVO_ENGINE": request.getfixturevalue("pg_archive"), "PGPASSWORD": READER_PASSWORD}
    work = tmp_path_factory.mktemp(f"{kind}-server")
    server = ServerProcess(archive=archive_dir, state_dir=work / "uws", log_path=work / "server.log", extra_env=env)
    server.start()
    return server


@pytest.fixture(scope="session")
def pg_archive(pg_cluster, archive_dir) -> str:
    """The archive's catalogs loaded into the private PostgreSQL cluster (``diavo load-pg``, the
    reader role granted); the reader's URL (its password goes in PGPASSWORD)."""
    import psycopg

    from conformance.pg_cluster import READER
    from diavo.server.archive import pg_store
    from diavo.server.archive.linked import archive_model

    url = pg_cluster.create_database("conformance")
    with psycopg.connect(pg_cluster.admin_url("conformance")) as conn:
        pg_store.load(archive_dir, conn, archive_model(archive_dir), reader=READER, progress=False)
    return url


@pytest.fixture(scope="module")
def pg_server(request, archive_dir, tmp_path_factory):
    """The archive served by the postgresql engine from the private cluster (one test module)."""
    server = other_server("postgresql", request, archive_dir, tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def spark_server(request, archive_dir, tmp_path_factory):
    """The archive served by Spark on the session's standalone cluster (for one test module)."""
    server = other_server("spark", request, archive_dir, tmp_path_factory)
    yield server
    server.stop()
