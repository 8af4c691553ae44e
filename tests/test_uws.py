"""UWS 1.1 job service and REST binding, end to end: a real JobService on a temporary directory,
small real executors, a Starlette app with the UWS routes, and HTTP through starlette's client.

Nothing here measures time: waiting is done with UWS WAIT until the phase changes.
"""
from __future__ import annotations

import json
import threading
import time
import types
from pathlib import Path

import pytest
from lxml import etree
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.testclient import TestClient

from diavo.server.engine.base import QueryAborted, QueryTimeout
from diavo.server.errors import DaliError, UsageFault
from diavo.server.output.votable import error_votable
from diavo.server.protocols.uws import routes
from diavo.server.settings import Settings
from diavo.server.uws import JobContext, JobResult, JobService
from diavo.server.uws.model import format_time, now_ms

UWS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"uws": UWS, "xlink": XLINK}
#: UWS.xsd JobSummary element order.
JOB_ORDER = ["jobId", "runId", "ownerId", "phase", "quote", "creationTime", "startTime", "endTime",
             "executionDuration", "destruction", "parameters", "results", "errorSummary", "jobInfo"]
REQUIRED = {"jobId", "ownerId", "phase", "startTime", "endTime", "executionDuration",
            "destruction", "results"}
ASYNC = "http://testserver/tap/async"


class Executor:
    """Executors chosen by the job's QUERY, with handles the tests hold on to."""

    def __init__(self) -> None:
        self.release = threading.Event()   # lets a "stuck" job return at last
        self.seen: list[JobContext] = []
        self.interrupts = 0

    def __call__(self, ctx: JobContext) -> list[JobResult]:
        self.seen.append(ctx)
        kind = ctx.params.get("QUERY", "")
        if kind == "write":
            path = ctx.result_dir / "out.json"
            path.write_text(json.dumps({"timeout": ctx.timeout_s, "owner": ctx.owner,
                                        "pairs": ctx.params.pairs, "base": ctx.base_url}))
            return [JobResult("result", path, "application/json", rows=1)]
        if kind == "upload":
            path = ctx.result_dir / "copy.bin"
            path.write_bytes(ctx.params.files["t1"])
            return [JobResult("result", path, "application/octet-stream")]
        if kind == "hang":  # runs until interrupted, as a query under Cancel does
            stop = threading.Event()
            ctx.cancel.bind(stop.set)
            stop.wait(60)
            raise QueryAborted("interrupted")
        if kind == "deaf-once":  # misses the first interrupt, as a query not yet started does
            calls: list[int] = []
            stop = threading.Event()

            def hook():
                calls.append(1)
                if len(calls) >= 2:
                    stop.set()

            ctx.cancel.bind(hook)
            stop.wait(60)
            self.interrupts = len(calls)
            raise QueryAborted("interrupted")
        if kind == "stuck":  # ignores Cancel: its worker has to be replaced
            self.release.wait(60)
            return []
        if kind == "fail":
            raise UsageFault("no such table: nowhere")
        if kind == "timeout":
            raise QueryTimeout("interrupted at the limit")
        raise ValueError("kaboom")


class TokenOwner:
    """Stands in for the app's auth middleware: a bearer token names the owner."""

    def __init__(self, app, tokens: dict[str, str]) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            token = auth.removeprefix("Bearer ").strip()
            scope.setdefault("state", {})["owner"] = self.tokens.get(token)
        await self.app(scope, receive, send)


def make_settings(tmp_path: Path, **kw) -> Settings:
    base = dict(root=tmp_path, state_dir=tmp_path / "state", workers=2, exec_default_s=600,
                exec_hard_s=3600, retention_default_s=86400, retention_hard_s=7 * 86400,
                wait_max_s=5)
    base.update(kw)
    return Settings(**base)


def make_app(service: JobService) -> Starlette:
    async def dali_error(request, exc: DaliError):
        return Response(error_votable(exc.message), status_code=exc.status, media_type="text/xml")

    app = Starlette(routes=routes(), exception_handlers={DaliError: dali_error})
    app.state.ctx = types.SimpleNamespace(settings=service.settings, jobs=service)
    app.add_middleware(TokenOwner, tokens=dict(service.settings.tokens))
    return app


@pytest.fixture
def executor():
    ex = Executor()
    yield ex
    ex.release.set()


@pytest.fixture
def service(tmp_path, executor):
    svc = JobService(make_settings(tmp_path), executor, grace_s=0.2)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service):
    with TestClient(make_app(service), follow_redirects=False) as c:
        yield c


# ----------------------------------------------------------------------------- helpers
def create(client, **params) -> str:
    r = client.post("/tap/async", data=params)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(ASYNC + "/")
    return location


def doc(client, url, **params) -> etree._Element:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    return etree.fromstring(r.content)


def text(root, name) -> str | None:
    el = root.find(f"uws:{name}", NS)
    return None if el is None else (el.text or "")


def phase(client, url) -> str:
    r = client.get(url + "/phase")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


def settle(client, url, leave=("PENDING", "QUEUED", "EXECUTING")) -> etree._Element:
    """Block with WAIT until the job is out of the phases in ``leave``."""
    while True:
        now = phase(client, url)
        if now not in leave:
            return doc(client, url)
        doc(client, url, WAIT=5, PHASE=now)


def run(client, url) -> None:
    r = client.post(url + "/phase", data={"PHASE": "RUN"})
    assert r.status_code == 303 and r.headers["location"] == url


def check_job_xml(root) -> None:
    assert root.tag == f"{{{UWS}}}job" and root.get("version") == "1.1"
    names = [etree.QName(el).localname for el in root]
    assert all(etree.QName(el).namespace == UWS for el in root)
    assert names == [n for n in JOB_ORDER if n in names], names
    assert set(names) >= REQUIRED


# ----------------------------------------------------------------------------- lifecycle
def test_create_is_pending_with_consistent_documents(client):
    url = create(client, LANG="ADQL", QUERY="write", REQUEST="doQuery", RUNID="TAPLINT-001")
    root = doc(client, url)
    check_job_xml(root)
    job_id = url.rsplit("/", 1)[1]
    assert text(root, "jobId") == job_id and job_id.isalnum() and job_id.islower()
    assert text(root, "phase") == "PENDING" == phase(client, url)
    assert text(root, "runId") == "TAPLINT-001" == client.get(url + "/runId").text
    owner = root.find("uws:ownerId", NS)
    assert owner.get(f"{{{XSI}}}nil") == "true" and client.get(url + "/owner").text == ""
    assert root.find("uws:quote", NS).get(f"{{{XSI}}}nil") == "true"
    params = {p.get("id").upper(): p.text for p in root.find("uws:parameters", NS)}
    assert params["REQUEST"] == "doQuery" and params["QUERY"] == "write"
    for child, element in (("executionduration", "executionDuration"),
                           ("destruction", "destruction"), ("quote", "quote")):
        r = client.get(f"{url}/{child}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.text == (text(root, element) or "")
    assert text(root, "executionDuration") == "600"
    created = text(root, "creationTime")
    assert created.endswith("Z") and "T" in created
    assert text(root, "destruction").endswith("Z")
    # The job list shows it, and sub-documents are well-formed UWS.
    jobs = doc(client, "/tap/async")
    assert jobs.get("version") == "1.1"
    ref = jobs.find(f"uws:jobref[@id='{job_id}']", NS)
    assert ref.get(f"{{{XLINK}}}href") == url and text(ref, "phase") == "PENDING"
    assert doc(client, url + "/parameters").tag == f"{{{UWS}}}parameters"
    assert doc(client, url + "/results").tag == f"{{{UWS}}}results"


def test_run_completes_and_result_downloads(client):
    url = create(client, QUERY="write", LANG="ADQL")
    run(client, url)
    root = settle(client, url)
    check_job_xml(root)
    assert text(root, "phase") == "COMPLETED"
    assert text(root, "startTime").endswith("Z") and text(root, "endTime").endswith("Z")
    result = root.find("uws:results/uws:result", NS)
    assert result.get("id") == "result"
    href = result.get(f"{{{XLINK}}}href")
    assert href == url + "/results/result"
    r = client.get(href)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["timeout"] == 600 and body["owner"] is None
    assert body["base"] == "http://testserver"
    assert ["QUERY", "write"] in body["pairs"]
    assert client.get(url + "/results/other").status_code == 404
    assert client.get(url + "/error").status_code == 404
    # A finished job can't run again; aborting it changes nothing.
    assert client.post(url + "/phase", data={"PHASE": "RUN"}).status_code == 403
    assert client.post(url + "/phase", data={"PHASE": "ABORT"}).status_code == 303
    assert phase(client, url) == "COMPLETED" and client.get(href).status_code == 200


def test_phase_run_at_creation(client):
    r = client.post("/tap/async", data={"QUERY": "write", "PHASE": "RUN"})
    assert r.status_code == 303
    url = r.headers["location"]
    assert text(settle(client, url), "phase") == "COMPLETED"
    params = {p.get("id").upper() for p in doc(client, url + "/parameters")}
    assert "PHASE" not in params


@pytest.mark.parametrize("query, message", [
    ("fail", "no such table: nowhere"),
    ("timeout", "execution duration"),
    ("anything else", "internal error: kaboom"),
])
def test_errors_reach_error_summary_and_error_document(client, query, message):
    url = create(client, QUERY=query)
    run(client, url)
    root = settle(client, url)
    check_job_xml(root)
    assert text(root, "phase") == "ERROR"
    summary = root.find("uws:errorSummary", NS)
    assert summary.get("type") == "fatal" and summary.get("hasDetail") == "true"
    assert message in text(summary, "message")
    assert root.find("uws:results", NS) is not None and len(root.find("uws:results", NS)) == 0
    r = client.get(url + "/error")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-votable+xml")
    vot = etree.fromstring(r.content)
    info = vot.find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info.get("value") == "ERROR" and message in info.text
    # A failed job's result is its error document (astroquery fetches results/result first).
    r = client.get(url + "/results/result", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == url + "/error"
    assert client.get(url + "/results/other").status_code == 303


def test_abort_pending_and_running(client, service):
    pending = create(client, QUERY="write")
    r = client.post(pending + "/phase", data={"PHASE": "ABORT"})
    assert r.status_code == 303 and r.headers["location"] == pending
    assert phase(client, pending) == "ABORTED"
    assert client.post(pending + "/phase", data={"PHASE": "RUN"}).status_code == 403

    running = create(client, QUERY="hang")
    run(client, running)
    settle(client, running, leave=("QUEUED",))
    assert phase(client, running) == "EXECUTING"
    client.post(running + "/phase", data={"PHASE": "abort"})
    root = settle(client, running)
    assert text(root, "phase") == "ABORTED" and root.find("uws:errorSummary", NS) is None
    # The worker is free again: the next job completes.
    nxt = create(client, QUERY="write")
    run(client, nxt)
    assert text(settle(client, nxt), "phase") == "COMPLETED"


def test_illegal_requests(client):
    url = create(client, QUERY="write")
    assert client.post(url + "/phase", data={"PHASE": "SUSPEND"}).status_code == 400
    assert client.post(url, data={"FOO": "bar"}).status_code == 400
    assert client.post(url, data={"ACTION": "EXPLODE"}).status_code == 400
    assert client.get(url + "/nonsense").status_code == 404
    assert client.get(url + "/parameters/nothing").status_code == 404
    assert client.get(ASYNC + "/nosuchjob").status_code == 404
    assert client.get(ASYNC + "/nosuchjob/phase").status_code == 404
    assert client.get("/tap/async", params={"LAST": "0"}).status_code == 400
    assert client.get("/tap/async", params={"PHASE": "NAPPING"}).status_code == 400
    assert client.get(url, params={"WAIT": "soon"}).status_code == 400
    assert client.post("/tap/async", data={"QUERY": "x", "PHASE": "ABORT"}).status_code == 400


def test_creation_never_rejects_query_content(client):
    url = create(client, LANG="OOBLECK", QUERY="DUFF QUERY")
    assert phase(client, url) == "PENDING"


@pytest.mark.parametrize("how", ["DELETE", "ACTION"])
def test_delete_both_ways(client, service, how):
    url = create(client, QUERY="hang")
    run(client, url)
    settle(client, url, leave=("QUEUED",))
    job_dir = Path(service.settings.jobs_dir) / "jobs" / url.rsplit("/", 1)[1]
    assert job_dir.is_dir()
    r = client.delete(url) if how == "DELETE" else client.post(url, data={"ACTION": "DELETE"})
    assert r.status_code == 303
    assert r.headers["location"].startswith(ASYNC + "?LAST=")
    assert client.get(url).status_code == 404
    assert client.get(url + "/phase").status_code == 404
    assert client.get(r.headers["location"]).status_code == 200
    assert not job_dir.exists()
    # The interrupted worker is free for the next job.
    for _ in range(service.settings.workers):
        nxt = create(client, QUERY="write")
        run(client, nxt)
        assert text(settle(client, nxt), "phase") == "COMPLETED"


def test_wait_returns_on_change(client, service):
    url = create(client, QUERY="hang")
    # Not in the phase named: no blocking at all.
    assert text(doc(client, url, WAIT=-1, PHASE="EXECUTING"), "phase") == "PENDING"
    run(client, url)
    settle(client, url, leave=("QUEUED",))
    seen = {}

    def blocked():
        seen["phase"] = text(doc(client, url, WAIT=-1, PHASE="EXECUTING"), "phase")

    waiter = threading.Thread(target=blocked)
    waiter.start()
    job_id = url.rsplit("/", 1)[1]
    while service.waiters(job_id) == 0:  # the request is parked on the job's notification
        time.sleep(0.01)
    client.post(url + "/phase", data={"PHASE": "ABORT"})
    waiter.join()
    assert seen["phase"] == "ABORTED"
    # Finished jobs never block.
    assert text(doc(client, url, WAIT=-1), "phase") == "ABORTED"


def test_job_list_filters(client):
    a = create(client, QUERY="write", RUNID="a")
    b = create(client, QUERY="write", RUNID="b")
    c = create(client, QUERY="write", RUNID="c")
    run(client, b)
    settle(client, b)
    client.post(c + "/phase", data={"PHASE": "ABORT"})

    def listed(**params):
        root = doc(client, "/tap/async", **params)
        return [ref.get(f"{{{XLINK}}}href") for ref in root.findall("uws:jobref", NS)]

    assert set(listed()) == {a, b, c}
    r = client.get("/tap/async", params=[("PHASE", "PENDING"), ("PHASE", "ABORTED")])
    union = [ref.get(f"{{{XLINK}}}href") for ref in etree.fromstring(r.content)]
    assert set(union) == {a, c}
    assert listed(PHASE="COMPLETED") == [b]
    assert listed(PHASE="ARCHIVED") == []
    created = {ref.get(f"{{{XLINK}}}href"): text(ref, "creationTime")
               for ref in doc(client, "/tap/async").findall("uws:jobref", NS)}
    newest_first = sorted(created, key=lambda u: created[u], reverse=True)
    assert listed(LAST=2) == listed()[:2]
    assert [created[u] for u in listed(LAST=3)] == [created[u] for u in newest_first]
    after = listed(AFTER=created[a])
    assert a not in after and set(after) == {u for u in created if created[u] > created[a]}
    assert listed(AFTER=created[a], PHASE="PENDING") == []


def test_parameters_change_only_while_pending(client):
    url = create(client, QUERY="write", RUNID="TAPLINT-001", REQUEST="doQuery")
    r = client.post(url + "/parameters", data={"runId": "TAPLINT-002", "maxrec": "5"})
    assert r.status_code == 303 and r.headers["location"] == url
    root = doc(client, url)
    assert text(root, "runId") == "TAPLINT-002"
    params = {p.get("id").upper(): p.text for p in root.find("uws:parameters", NS)}
    assert params == {"QUERY": "write", "REQUEST": "doQuery", "RUNID": "TAPLINT-002", "MAXREC": "5"}
    r = client.post(url + "/executionduration", data={"EXECUTIONDURATION": "0"})
    assert r.status_code == 303
    assert client.get(url + "/executionduration").text == "3600"  # unlimited: the hard limit
    client.post(url + "/executionduration", data={"executionduration": "30"})
    assert client.get(url + "/executionduration").text == "30"
    assert client.post(url + "/executionduration", data={"EXECUTIONDURATION": "-1"}).status_code == 400
    run(client, url)
    settle(client, url)
    assert client.post(url + "/parameters", data={"RUNID": "late"}).status_code == 403
    assert client.post(url + "/executionduration", data={"EXECUTIONDURATION": "5"}).status_code == 403
    assert text(doc(client, url), "runId") == "TAPLINT-002"


def test_destruction_is_clamped_and_sweeper_destroys(client, service):
    url = create(client, QUERY="write")
    root = doc(client, url)
    far = "2999-01-01T00:00:00Z"
    assert client.post(url + "/destruction", data={"DESTRUCTION": far}).status_code == 303
    root = doc(client, url)
    created_ms = service.get(url.rsplit("/", 1)[1], None).creation_ms
    limit = format_time(created_ms + service.settings.retention_hard_s * 1000)
    assert text(root, "destruction") == limit == client.get(url + "/destruction").text
    assert client.post(url + "/destruction", data={"DESTRUCTION": "yesterday"}).status_code == 400

    keep = create(client, QUERY="write")
    run(client, keep)
    settle(client, keep)
    job_dir = Path(service.settings.jobs_dir) / "jobs" / url.rsplit("/", 1)[1]
    client.post(url + "/parameters", data={"X": "1"})
    client.post(url + "/destruction", data={"DESTRUCTION": format_time(now_ms() - 1000)})
    assert service.sweep() == 1
    assert client.get(url).status_code == 404 and not job_dir.exists()
    assert client.get(keep + "/results/result").status_code == 200


def test_inline_upload_parameter(client):
    payload = b"<VOTABLE>not really</VOTABLE>\x00\x01"
    r = client.post("/tap/async", data={"QUERY": "upload", "UPLOAD": "t1,param:t1"},
                    files={"t1": ("t1.xml", payload, "application/x-votable+xml")})
    assert r.status_code == 303
    url = r.headers["location"]
    params = doc(client, url + "/parameters")
    ref = params.find("uws:parameter[@id='t1']", NS)
    assert ref.get("byReference") == "true" and ref.text == url + "/parameters/t1"
    assert client.get(ref.text).content == payload
    run(client, url)
    assert text(settle(client, url), "phase") == "COMPLETED"
    assert client.get(url + "/results/result").content == payload


def test_execution_deadline_frees_the_job_and_the_worker(client, executor):
    url = create(client, QUERY="stuck", EXECUTIONDURATION="1")
    assert client.get(url + "/executionduration").text == "1"
    run(client, url)
    root = settle(client, url)
    assert text(root, "phase") == "ERROR"
    assert "execution duration" in text(root.find("uws:errorSummary", NS), "message")
    others = [create(client, QUERY="write") for _ in range(2)]
    for other in others:
        run(client, other)
    assert all(text(settle(client, o), "phase") == "COMPLETED" for o in others)
    executor.release.set()


@pytest.mark.parametrize("query, grace", [("deaf-once", None), ("stuck", 0.2)])
def test_abort_frees_the_only_worker_even_when_the_interrupt_is_missed(tmp_path, executor, query,
                                                                        grace):
    """deaf-once: the repeated interrupt stops it (long grace: no worker replacement involved);
    stuck: never stops, so after the grace period its worker is replaced."""
    svc = JobService(make_settings(tmp_path, workers=1), executor, grace_s=grace)
    svc.start()
    try:
        with TestClient(make_app(svc), follow_redirects=False) as c:
            url = create(c, QUERY=query)
            run(c, url)
            settle(c, url, leave=("QUEUED",))
            c.post(url + "/phase", data={"PHASE": "ABORT"})
            assert phase(c, url) == "ABORTED"
            nxt = create(c, QUERY="write")
            run(c, nxt)
            assert text(settle(c, nxt), "phase") == "COMPLETED"
            assert phase(c, url) == "ABORTED"
            if query == "deaf-once":
                assert executor.interrupts >= 2
    finally:
        executor.release.set()
        svc.stop()


# ----------------------------------------------------------------------------- ownership
def test_owners_see_only_their_jobs(tmp_path, executor):
    settings = make_settings(tmp_path, tokens={"ta": "alice", "tb": "bob"})
    svc = JobService(settings, executor)
    svc.start()
    try:
        with TestClient(make_app(svc), follow_redirects=False) as c:
            alice = {"Authorization": "Bearer ta"}
            bob = {"Authorization": "Bearer tb"}
            r = c.post("/tap/async", data={"QUERY": "write"}, headers=alice)
            url = r.headers["location"]
            root = etree.fromstring(c.get(url, headers=alice).content)
            assert text(root, "ownerId") == "alice"
            assert c.get(url + "/owner", headers=alice).text == "alice"
            for child in ("", "/phase", "/parameters", "/results", "/error", "/nonsense"):
                assert c.get(url + child, headers=bob).status_code == 403, child
            assert c.post(url + "/phase", data={"PHASE": "RUN"}, headers=bob).status_code == 403
            assert c.delete(url, headers=bob).status_code == 403
            assert c.get(url).status_code == 403
            mine = etree.fromstring(c.get("/tap/async", headers=alice).content)
            theirs = etree.fromstring(c.get("/tap/async", headers=bob).content)
            assert len(mine) == 1 and len(theirs) == 0
            assert c.delete(url, headers=alice).status_code == 303
    finally:
        svc.stop()


# ----------------------------------------------------------------------------- restarts
def test_restart_recovery(tmp_path, executor):
    settings = make_settings(tmp_path)
    first = JobService(settings, executor)
    first.start()
    try:
        with TestClient(make_app(first), follow_redirects=False) as c:
            done = create(c, QUERY="write")
            run(c, done)
            settle(c, done)
            hung = create(c, QUERY="hang")
            run(c, hung)
            settle(c, hung, leave=("QUEUED",))
            pending = create(c, QUERY="write")
        # As after a crash: a new service on the same directory while the old job still runs.
        second = JobService(settings, executor)
        second.start()
        try:
            with TestClient(make_app(second), follow_redirects=False) as c:
                root = doc(c, hung)
                assert text(root, "phase") == "ERROR"
                assert "restarted while this job was running" in text(
                    root.find("uws:errorSummary", NS), "message")
                assert phase(c, pending) == "PENDING"
                assert phase(c, done) == "COMPLETED"
                assert c.get(done + "/results/result").status_code == 200
                run(c, pending)
                assert text(settle(c, pending), "phase") == "COMPLETED"
        finally:
            second.stop()
    finally:
        first.stop()


def test_stop_fails_running_jobs_for_the_next_start(tmp_path, executor):
    settings = make_settings(tmp_path)
    svc = JobService(settings, executor)
    svc.start()
    with TestClient(make_app(svc), follow_redirects=False) as c:
        url = create(c, QUERY="hang")
        run(c, url)
        settle(c, url, leave=("QUEUED",))
    svc.stop()
    again = JobService(settings, executor)
    again.start()
    try:
        job = again.get(url.rsplit("/", 1)[1], None)
        assert job.phase == "ERROR" and "please resubmit" in job.error
    finally:
        again.stop()
