"""One structured log line per request, request ids, and 500s that tell the client nothing private."""
from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from diavo.server.app import create_app
from diavo.server.settings import Settings

QUERY = "SELECT TOP 7 diaSourceId, ra FROM dp1.DiaSource ORDER BY diaSourceId"


def make_client(small_archive, tmp_path, **settings):
    s = Settings(root=small_archive[0], state_dir=tmp_path / "uws", **settings)
    return TestClient(create_app(s), raise_server_exceptions=False)


def lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "diavo.access"]


@pytest.mark.parametrize("log_queries", [False, True])
def test_one_line_per_request_with_rows_and_timings(small_archive, tmp_path, caplog, log_queries):
    caplog.set_level(logging.INFO, logger="diavo.access")
    with make_client(small_archive, tmp_path, log_queries=log_queries) as client:
        r = client.get("/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUERY})
        assert r.status_code == 200
        rid = r.headers["x-request-id"]
    (line,) = [x for x in lines(caplog) if x["path"] == "/tap/sync"]
    assert line["request"] == rid and line["method"] == "GET" and line["status"] == 200
    assert line["rows"] == 7 and line["bytes"] == len(r.content) and line["overflow"] is False
    assert {"parse", "check", "translate", "engine", "write"} <= set(line["ms"])
    assert all(v >= 0 for v in line["ms"].values()) and line["total_ms"] >= 0
    assert ("query" in line) == log_queries
    if log_queries:
        assert line["query"] == QUERY


def test_async_job_id_is_logged(small_archive, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="diavo.access")
    with make_client(small_archive, tmp_path) as client:
        r = client.post("/tap/async", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUERY},
                        follow_redirects=False)
        job = r.headers["location"].rsplit("/", 1)[-1]
        client.get(f"/tap/async/{job}/phase")
    logged = lines(caplog)
    assert [x["job"] for x in logged if x["method"] == "POST" and x["path"] == "/tap/async"] == [job]
    assert [x["job"] for x in logged if x["path"].endswith("/phase")] == [job]


def test_internal_error_shows_a_fixed_message_and_the_request_id(small_archive, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with make_client(small_archive, tmp_path) as client:
        def broken(*args, **kwargs):
            raise RuntimeError("secret internal detail")

        client.app.state.ctx.tap.prepare = broken
        r = client.get("/tap/sync", params={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": QUERY})
    rid = r.headers["x-request-id"]
    assert r.status_code == 500
    assert "secret" not in r.text and "RuntimeError" not in r.text and f"request {rid}" in r.text
    logged = [rec for rec in caplog.records if rec.exc_info and rid in rec.getMessage()]
    assert logged and "secret internal detail" in str(logged[0].exc_info[1])
    assert [x["status"] for x in lines(caplog) if x["request"] == rid] == [500]
