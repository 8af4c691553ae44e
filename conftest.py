"""Fixtures both test trees share (tests/ and conformance/): a real Spark standalone cluster and
a private PostgreSQL cluster with pgSphere."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A Spark standalone master and two workers on 127.0.0.1 (1 core, 1 GB each), for the
    session; skipped where pyspark or Java is missing unless DIAVO_REQUIRE_SPARK is set (CI)."""
    import os
    import shutil

    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("DIAVO_REQUIRE_SPARK"):
            raise
        pytest.skip("pyspark is not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        if os.environ.get("DIAVO_REQUIRE_SPARK"):
            raise RuntimeError("the Spark tests need a Java runtime (java on PATH or JAVA_HOME)")
        pytest.skip("no Java runtime")
    from conformance.spark_cluster import SparkCluster

    cluster = SparkCluster(tmp_path_factory.mktemp("spark")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """A private PostgreSQL cluster on 127.0.0.1 with pgSphere, for the session; skipped where
    PostgreSQL or psycopg is missing unless DIAVO_REQUIRE_PG is set (CI)."""
    import os

    from conformance.pg_cluster import PgCluster, find_bindir

    required = os.environ.get("DIAVO_REQUIRE_PG", "") not in ("", "0")
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        if required:
            raise
        pytest.skip("psycopg is not installed")
    bindir = find_bindir()
    if bindir is None:
        if required:
            raise RuntimeError("the PostgreSQL tests need initdb and pg_ctl (Debian: postgresql-15)")
        pytest.skip("no PostgreSQL server binaries")
    cluster = PgCluster(tmp_path_factory.mktemp("pg"), bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
