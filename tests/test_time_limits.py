"""Time limits hold on the expensive path: a fuzzed join whose ON condition calls Python UDFs
(BOX/CONTAINS geometry batches) for every pair of rows, against a real server with a 2 s sync
limit. The query must end soon after the limit with a TAP error, its thread must be free again,
the server's memory must come back, and other clients must be answered meanwhile.

The bounds are generous on purpose (the limit is 2 s; we allow 15 s end to end) so a busy CI
machine cannot make the test fail; the property is that the query stops, not how fast.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from conformance.server_process import ServerProcess

RUNAWAY = ("SELECT o.diaObjectId, s.diaSourceId FROM dp1.DiaObject AS o FULL OUTER JOIN dp1.DiaSource AS s "
           "ON CONTAINS(BOX(o.ra, o.dec, s.ra, s.dec), POINT(s.ra, s.dec)) = 2 "
           "AND BOX(s.ra, s.dec, o.ra, o.dec) IS NOT NULL OR s.band NOT LIKE s.band")
QUICK = "SELECT TOP 1 diaSourceId FROM dp1.DiaSource"


@pytest.fixture(scope="module")
def limited_server(small_archive, tmp_path_factory):
    work = tmp_path_factory.mktemp("limited-server")
    proc = ServerProcess(archive=small_archive[0], state_dir=work / "uws", log_path=work / "server.log",
                         extra_env={"DIAVO_SYNC_TIMEOUT_S": "2"})
    proc.start()
    yield proc
    proc.stop()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def sync(server, query: str, timeout: float = 60) -> requests.Response:
    return requests.post(f"{server.url}/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query},
                         timeout=timeout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_runaway_join_stops_at_the_limit(limited_server):
    assert sync(limited_server, QUICK).status_code == 200  # warm: the baseline includes the loaded engine
    before = rss_mib(limited_server.pid)
    answered: list[int] = []
    stop = threading.Event()

    def other_client() -> None:
        while not stop.is_set():
            answered.append(sync(limited_server, QUICK, timeout=30).status_code)

    other = threading.Thread(target=other_client)
    other.start()
    t0 = time.monotonic()
    try:
        r = sync(limited_server, RUNAWAY)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        other.join(60)
    assert r.status_code == 400 and "execution duration of 2 s" in r.text, r.text[:300]
    assert elapsed < 15, elapsed
    assert answered and set(answered) == {200}  # others were served while it ran
    # The thread is free again: several queries in a row are answered (a stuck thread would
    # eventually exhaust nothing here, so also run the runaway again and see it stop again).
    assert all(sync(limited_server, QUICK).status_code == 200 for _ in range(5))
    t0 = time.monotonic()
    assert sync(limited_server, RUNAWAY).status_code == 400 and time.monotonic() - t0 < 15
    assert rss_mib(limited_server.pid) < before + 400
