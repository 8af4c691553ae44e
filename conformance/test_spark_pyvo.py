"""pyvo against the Spark-backed service (``DIAVO_ENGINE=spark`` on a standalone master and two
workers): the tutorial's sync and async queries, MAXREC overflow, and TAP_UPLOAD joins, the same
tests as test_pyvo.py with the service swapped."""
from __future__ import annotations

import pytest
import pyvo

from conformance.test_pyvo import (  # noqa: F401 - collected here, run against the Spark server
    test_async_the_tutorials_way,
    test_maxrec_truncation_is_flagged,
    test_run_async,
    test_tutorial_query_sync,
    test_upload_astropy_table,
    test_upload_async,
    tutorial_ids,
    upload_case,
)


@pytest.fixture(scope="module")
def tap_url(spark_server) -> str:
    return spark_server.tap_url


@pytest.fixture(scope="module")
def service(tap_url):
    return pyvo.dal.TAPService(tap_url)
