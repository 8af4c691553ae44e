"""The UWS 1.1 REST binding of the job service (TAP /async): the job list and each job's tree.

Handlers only translate: parameters in (names case-insensitive, as DALI wants), a document, a
plain value or a 303 out. Every URL written is absolute, built from ``urls.base_url``. Faults are
raised as DaliError and rendered by the app. The service comes from ``app.state.ctx.jobs``; the
requester from ``request.state.owner`` (set by the auth middleware; absent means anonymous).
"""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from diavo.server.errors import NotFound, UsageFault
from diavo.server.output.votable import error_votable
from diavo.server.params import Params, integer, read_params
from diavo.server.requestlog import note
from diavo.server.urls import base_url
from diavo.server.uws.model import Phase, format_time, parse_time
from diavo.server.uws.service import JobService


def _render():
    """The job documents' module, imported by the first request that renders one: it loads
    vo_models' pydantic-xml classes (0.3 s), which a server answering only sync queries never needs."""
    from diavo.server.uws import render

    return render


XML = "text/xml"
VOTABLE = "application/x-votable+xml"
#: Size of the job list a deletion redirects to (UWS 2.2.2.1 allows LAST there; keeps it cheap).
DELETE_REDIRECT_LAST = 100
#: Job-control parameters of a creation POST, applied to the job and not stored with it.
CONTROL = ("PHASE", "EXECUTIONDURATION", "DESTRUCTION")


def _service(request: Request) -> JobService:
    return request.app.state.ctx.jobs


def _owner(request: Request) -> str | None:
    return getattr(request.state, "owner", None)


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    return integer(name, value)


def _plain(value: str | None) -> PlainTextResponse:
    return PlainTextResponse(value or "")


def _xml(body: bytes) -> Response:
    return Response(body, media_type=XML)


class _Binding:
    def __init__(self, prefix: str) -> None:
        self.prefix = "/" + prefix.strip("/")

    # ------------------------------------------------------------ helpers
    def jobs_url(self, request: Request) -> str:
        return base_url(request, request.app.state.ctx.settings) + self.prefix

    def job_url(self, request: Request, job_id: str) -> str:
        return f"{self.jobs_url(request)}/{job_id}"

    def see_job(self, request: Request, job_id: str) -> RedirectResponse:
        note(request.scope, job=job_id)
        return RedirectResponse(self.job_url(request, job_id), status_code=303)

    @staticmethod
    async def params(request: Request) -> Params:
        return await read_params(request, request.app.state.ctx.settings.upload_max_bytes)

    # ------------------------------------------------------------ job list
    async def job_list(self, request: Request) -> Response:
        params = await self.params(request)
        if request.method == "POST":
            return await self.create(request, params)
        phases = None
        if "PHASE" in params:
            try:
                phases = {Phase(v.strip().upper()) for v in params.getall("PHASE")}
            except ValueError:
                raise UsageFault("PHASE must name UWS phases such as EXECUTING or COMPLETED") from None
        after = params.get("AFTER")
        last = _int(params.get("LAST"), "LAST")
        if last is not None and last <= 0:
            raise UsageFault("LAST must be a positive integer")
        jobs = _service(request).list(_owner(request), phases,
                                      None if after is None else parse_time(after, "AFTER"), last)
        return _xml(_render().jobs_document(jobs, self.jobs_url(request)))

    async def create(self, request: Request, params: Params) -> Response:
        phase = params.get("PHASE")
        if phase is not None and phase.strip().upper() != "RUN":
            raise UsageFault("PHASE at job creation may only be RUN")
        duration = _int(params.get("EXECUTIONDURATION"), "EXECUTIONDURATION")
        destruction = params.get("DESTRUCTION")
        job = await run_in_threadpool(
            _service(request).create, params.without(*CONTROL), _owner(request),
            run=phase is not None, execution_duration=duration,
            destruction_ms=None if destruction is None else parse_time(destruction, "DESTRUCTION"),
            base_url=base_url(request, request.app.state.ctx.settings))
        return self.see_job(request, job.job_id)

    # ------------------------------------------------------------ one job
    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if request.method == "DELETE":
            return await self.delete(request, job_id)
        params = await self.params(request)
        if request.method == "POST":
            action = params.get("ACTION")
            if action is not None and action.strip().upper() == "DELETE":
                return await self.delete(request, job_id)
            service.get(job_id, owner)  # unknown or foreign job first: 404/403
            raise UsageFault("a POST to a job must carry ACTION=DELETE; use its /phase, "
                             "/parameters, /executionduration or /destruction to change it")
        wait = _int(params.get("WAIT"), "WAIT")
        if wait is None:
            job = service.get(job_id, owner)
        else:
            limit = request.app.state.ctx.settings.wait_max_s
            timeout = limit if wait < 0 else min(wait, limit)
            phase = params.get("PHASE")
            try:
                phase = None if phase is None else Phase(phase.strip().upper())
            except ValueError:
                raise UsageFault(f"PHASE={phase} is not a UWS phase") from None
            job = await service.wait(job_id, owner, timeout, phase)
        return _xml(_render().job_document(job, self.job_url(request, job_id)))

    async def delete(self, request: Request, job_id: str) -> Response:
        await run_in_threadpool(_service(request).delete, job_id, _owner(request))
        return RedirectResponse(f"{self.jobs_url(request)}?LAST={DELETE_REDIRECT_LAST}",
                                status_code=303)

    async def phase(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if request.method == "GET":
            return _plain(service.get(job_id, owner).phase.value)
        value = (await self.params(request)).get("PHASE")
        service.get(job_id, owner)
        action = (value or "").strip().upper()
        if action == "RUN":
            service.run(job_id, owner)
        elif action == "ABORT":
            service.abort(job_id, owner)
        else:
            raise UsageFault("POST to /phase needs PHASE=RUN or PHASE=ABORT")
        return self.see_job(request, job_id)

    async def execution_duration(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if request.method == "GET":
            return _plain(str(service.get(job_id, owner).duration_s))
        seconds = _int((await self.params(request)).get("EXECUTIONDURATION"), "EXECUTIONDURATION")
        service.get(job_id, owner)
        if seconds is None:
            raise UsageFault("POST to /executionduration needs EXECUTIONDURATION=<seconds>")
        if seconds < 0:
            raise UsageFault("EXECUTIONDURATION can't be negative (0 means as long as allowed)")
        service.set_execution_duration(job_id, owner, seconds)
        return self.see_job(request, job_id)

    async def destruction(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if request.method == "GET":
            return _plain(format_time(service.get(job_id, owner).destruction_ms))
        value = (await self.params(request)).get("DESTRUCTION")
        service.get(job_id, owner)
        if value is None:
            raise UsageFault("POST to /destruction needs DESTRUCTION=<ISO-8601 time>")
        service.set_destruction(job_id, owner, parse_time(value, "DESTRUCTION"))
        return self.see_job(request, job_id)

    async def quote(self, request: Request) -> Response:
        _service(request).get(request.path_params["job_id"], _owner(request))
        return _plain("")  # no prediction: xsi:nil in the job document

    async def owner(self, request: Request) -> Response:
        return _plain(_service(request).get(request.path_params["job_id"], _owner(request)).owner)

    async def run_id(self, request: Request) -> Response:
        return _plain(_service(request).get(request.path_params["job_id"], _owner(request)).run_id)

    async def error(self, request: Request) -> Response:
        job = _service(request).get(request.path_params["job_id"], _owner(request))
        if job.phase != Phase.ERROR:
            raise NotFound(f"job {job.job_id} is {job.phase.value}, not ERROR: it has no error")
        return Response(error_votable(job.error or "the job failed"), media_type=VOTABLE)

    async def parameters(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if request.method == "POST":
            params = await self.params(request)
            service.get(job_id, owner)
            await run_in_threadpool(service.update_params, job_id, owner, params)
            return self.see_job(request, job_id)
        job = service.get(job_id, owner)
        return _xml(_render().parameters_document(job, self.job_url(request, job_id)))

    async def parameter(self, request: Request) -> Response:
        path = _service(request).upload_file(request.path_params["job_id"], _owner(request),
                                             request.path_params["name"])
        return FileResponse(path, media_type="application/octet-stream")

    async def results(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = _service(request).get(job_id, _owner(request))
        return _xml(_render().results_document(job, self.job_url(request, job_id)))

    async def result(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        service, owner = _service(request), _owner(request)
        if service.get(job_id, owner).phase == Phase.ERROR:
            # A failed job's outcome is its error: clients that fetch results/result before they
            # look at the phase (astroquery's TapPlus) then show the ADQL error, not a 404.
            return RedirectResponse(self.job_url(request, job_id) + "/error", status_code=303)
        path, mime = service.result_file(job_id, owner, request.path_params["result_id"])
        return FileResponse(path, media_type=mime)

    async def unknown(self, request: Request) -> Response:
        _service(request).get(request.path_params["job_id"], _owner(request))
        raise NotFound(f"no resource {request.path_params['rest']} in a UWS job")


def routes(prefix: str = "/tap/async") -> list[Route]:
    """The whole UWS tree under ``prefix`` (the job list), for the app to mount."""
    b = _Binding(prefix)
    p = b.prefix
    job = p + "/{job_id}"
    rw = ["GET", "POST"]
    return [
        Route(p, b.job_list, methods=rw),
        Route(job, b.job, methods=["GET", "POST", "DELETE"]),
        Route(job + "/phase", b.phase, methods=rw),
        Route(job + "/executionduration", b.execution_duration, methods=rw),
        Route(job + "/destruction", b.destruction, methods=rw),
        Route(job + "/quote", b.quote, methods=["GET"]),
        Route(job + "/owner", b.owner, methods=["GET"]),
        Route(job + "/runId", b.run_id, methods=["GET"]),
        Route(job + "/runid", b.run_id, methods=["GET"]),
        Route(job + "/error", b.error, methods=["GET"]),
        Route(job + "/parameters", b.parameters, methods=rw),
        Route(job + "/parameters/{name}", b.parameter, methods=["GET"]),
        Route(job + "/results", b.results, methods=["GET"]),
        Route(job + "/results/{result_id}", b.result, methods=["GET"]),
        Route(job + "/{rest:path}", b.unknown, methods=["GET", "POST", "DELETE"]),
    ]
