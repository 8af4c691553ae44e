"""Async jobs survive a crash: kill -9 the server with a job running, start it again on the same
archive and job store, and every job is still there in a defined phase.

Its own server (one worker thread, so a second job queues behind the running one) on its own copy
of the archive and its own state directory.
"""
from __future__ import annotations

import io
import re
import shutil

import pytest
import requests
from astropy.table import Table

from conformance import uws_client as uws
from conformance.cases import ENDLESS, TUTORIAL
from conformance.server_process import ServerProcess

RESTART_MESSAGE = re.compile(r"(?i)restart|shut\s*down|interrupted|stopped|crash")


@pytest.fixture(scope="module")
def restart_server(archive_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("restart")
    archive = work / "archive"
    shutil.copytree(archive_dir, archive, ignore=shutil.ignore_patterns("uws"))
    server = ServerProcess(archive=archive, state_dir=work / "uws", log_path=work / "server.log", workers=1)
    server.start()
    yield server
    server.stop()


def _result(s: requests.Session, job_url: str) -> tuple[bytes, str]:
    r = s.get(job_url + "/results/result", timeout=60)
    assert r.status_code == 200, r.text[:300]
    return r.content, r.headers.get("content-type", "")


def _ids(votable: bytes) -> list[int]:
    return sorted(int(x) for x in Table.read(io.BytesIO(votable), format="votable")["diaSourceId"])


def test_jobs_survive_kill_9(restart_server):
    server = restart_server
    s = requests.Session()
    tap = server.tap_url
    jobs: dict[str, str] = {}  # role -> job URL

    for role, params in {"votable": {"QUERY": TUTORIAL},
                         "csv": {"QUERY": "SELECT TOP 50 * FROM dp1.Visit ORDER BY visit", "RESPONSEFORMAT": "csv"},
                         "bad": {"QUERY": "SELECT raa FROM dp1.DiaSource"}}.items():
        jobs[role] = uws.submit(s, tap, params, run=True)
        uws.wait_for(s, jobs[role])
    assert uws.phase(s, jobs["votable"]) == uws.phase(s, jobs["csv"]) == "COMPLETED"
    assert uws.phase(s, jobs["bad"]) == "ERROR"
    before = {role: _result(s, jobs[role]) for role in ("votable", "csv")}
    bad_error = uws.info(s, jobs["bad"]).error

    jobs["pending"] = uws.submit(s, tap, {"QUERY": TUTORIAL, "RUNID": "left-pending"})
    jobs["aborted"] = uws.submit(s, tap, {"QUERY": ENDLESS}, run=True)
    uws.wait_for(s, jobs["aborted"], ("EXECUTING",) + uws.FINAL)
    uws.abort(s, jobs["aborted"])
    assert uws.wait_for(s, jobs["aborted"]) == "ABORTED"

    jobs["running"] = uws.submit(s, tap, {"QUERY": ENDLESS}, run=True)
    assert uws.wait_for(s, jobs["running"], ("EXECUTING",) + uws.FINAL) == "EXECUTING"
    jobs["queued"] = uws.submit(s, tap, {"QUERY": TUTORIAL}, run=True)
    assert uws.phase(s, jobs["queued"]) == "QUEUED"  # one worker, busy with the endless job
    ids = {role: url.rsplit("/", 1)[-1] for role, url in jobs.items()}

    server.kill()
    server.port = 0
    server.start()
    tap = server.tap_url
    jobs = {role: f"{tap}/async/{job_id}" for role, job_id in ids.items()}

    listed = uws.listing(s, tap)
    assert set(ids.values()) <= set(listed), f"jobs lost in the restart: {set(ids.values()) - set(listed)}"
    expected = {"votable": "COMPLETED", "csv": "COMPLETED", "bad": "ERROR", "pending": "PENDING",
                "aborted": "ABORTED", "running": "ERROR", "queued": "ERROR"}
    phases = {role: uws.phase(s, url) for role, url in jobs.items()}
    assert phases == expected
    assert {role: listed[ids[role]] for role in ids} == expected

    for role in ("running", "queued"):
        message = uws.info(s, jobs[role]).error
        assert message and RESTART_MESSAGE.search(message), f"{role}: {message!r}"
        print(f"{role} job after the restart: ERROR {message!r}")
        r = s.get(jobs[role] + "/error", timeout=60)
        assert r.status_code == 200 and b"ERROR" in r.content
    assert uws.info(s, jobs["bad"]).error == bad_error
    assert uws.info(s, jobs["pending"]).run_id == "left-pending"

    for role in ("votable", "csv"):
        assert _result(s, jobs[role]) == before[role], f"{role} result changed across the restart"

    # The restarted service still runs jobs, including the one left pending.
    uws.run(s, jobs["pending"])
    assert uws.wait_for(s, jobs["pending"]) == "COMPLETED"
    assert _ids(_result(s, jobs["pending"])[0]) == _ids(before["votable"][0])
    for url in jobs.values():
        assert s.delete(url, allow_redirects=False, timeout=60).status_code in (200, 204, 303)
        assert s.get(url, timeout=60).status_code == 404
