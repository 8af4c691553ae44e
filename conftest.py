"""Fixtures both test trees share (tests/ and conformance/): a real Spark standalone cluster."""
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
