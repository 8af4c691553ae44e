"""pyvo against the PostgreSQL-backed service (``DIAVO_ENGINE=postgresql://...`` on the private
cluster with pgSphere): the tutorial's sync and async queries, MAXREC overflow, and TAP_UPLOAD
joins, the same tests as test_pyvo.py with the service swapped."""
from __future__ import annotations

import pytest
import pyvo

from conformance.test_pyvo import (  # noqa: F401 - collected here, run against the PostgreSQL server
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
def tap_url(pg_server) -> str:
    return pg_server.tap_url


@pytest.fixture(scope="module")
def service(tap_url):
    return pyvo.dal.TAPService(tap_url)
