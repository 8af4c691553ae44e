"""The UWS job service: what the HTTP layer (and the lead's lifespan) calls.

Every method checks ownership and raises the DALI fault the HTTP layer should answer with
(NotFound, Forbidden, UsageFault), so the protocol module only translates requests and
documents. State changes go through the store's compare-and-set transitions and then wake
anyone blocked in ``wait`` on that job.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

from diavo.server.errors import Forbidden, NotFound
from diavo.server.params import Params
from diavo.server.settings import Settings
from diavo.server.uws.files import JobFiles
from diavo.server.uws.model import ACTIVE, FINISHED, Job, Phase, now_ms
from diavo.server.uws.notify import Notifier
from diavo.server.uws.runner import Execute, Runner
from diavo.server.uws.store import JobStore

log = logging.getLogger("diavo.uws")

RESTART_MESSAGES = {
    Phase.QUEUED: "the server restarted while this job was queued; please resubmit",
    Phase.EXECUTING: "the server restarted while this job was running; please resubmit",
}


def new_job_id() -> str:
    """120 random bits as 24 lower-case letters and digits: unguessable and URL-safe."""
    return base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()


class JobService:
    """``grace_s``: how long past its deadline, or after an abort, a job may take to stop before
    its worker is replaced (None: 5 s + 5% of the duration, capped at 60 s; 10 s after an abort).
    ``sweep_period_s``: how often expired jobs are destroyed."""

    def __init__(self, settings: Settings, execute: Execute, *, sweep_period_s: float = 60.0,
                 grace_s: float | None = None) -> None:
        self.settings = settings
        root = Path(settings.jobs_dir)
        self._store = JobStore(root / "jobs.sqlite")
        self._files = JobFiles(root / "jobs")
        self._notifier = Notifier()
        self._runner = Runner(self._store, self._files, execute, settings.workers,
                              settings.exec_hard_s, grace_s, self._notifier.changed)
        self._sweep_period_s = sweep_period_s
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._started = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Recover from the last shutdown, clean up, then start the workers and the sweeper."""
        if self._started:
            return
        self._started = True
        failed = self._store.fail_unfinished(RESTART_MESSAGES, now_ms(), keep=self._runner.known())
        for job_id in failed:
            self._files.clear_results(job_id)
        if failed:
            log.warning("%d jobs were queued or running at the last shutdown: now ERROR", len(failed))
        self._files.remove_orphans(self._store.ids())
        self.sweep()
        self._runner.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="diavo-uws-sweeper",
                                         daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop workers and sweeper; jobs still queued or running end in ERROR (resubmit)."""
        if self._stop.is_set():
            return
        self._stop.set()
        # Marked first, so the interrupted executors' outcomes (ABORTED) don't replace it.
        failed = self._store.fail_unfinished(RESTART_MESSAGES, now_ms())
        self._runner.stop()
        for job_id in failed:
            self._notifier.changed(job_id)
        self._notifier.wake_all()
        if self._sweeper is not None:
            self._sweeper.join(5)
        self._store.close()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self._sweep_period_s):
            try:
                self.sweep()
            except Exception:
                log.exception("job sweeper failed")

    def sweep(self) -> int:
        """Destroy jobs past their destruction time (record and files); returns how many."""
        expired = self._store.expired(now_ms())
        for job_id in expired:
            self._destroy(job_id)
        if expired:
            log.info("destroyed %d expired jobs", len(expired))
        return len(expired)

    # ------------------------------------------------------------ limits
    def clamp_duration(self, seconds: int) -> int:
        hard = self.settings.exec_hard_s
        if hard <= 0:
            return max(0, seconds)
        return hard if seconds <= 0 else min(seconds, hard)

    def clamp_destruction(self, creation_ms: int, when_ms: int) -> int:
        return min(when_ms, creation_ms + self.settings.retention_hard_s * 1000)

    # ------------------------------------------------------------ access
    def get(self, job_id: str, owner: str | None) -> Job:
        job = self._store.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.owner is not None and job.owner != owner:
            raise Forbidden(f"job {job_id} belongs to another user")
        return job

    def list(self, owner: str | None, phases: Iterable[Phase] | None = None,
             after_ms: int | None = None, last: int | None = None) -> list[Job]:
        return self._store.find(visible_to=owner, phases=phases, after_ms=after_ms, last=last)

    def upload_file(self, job_id: str, owner: str | None, name: str) -> Path:
        """The stored file of an inline parameter (part name exact, else case-insensitive)."""
        job = self.get(job_id, owner)
        stored = job.files.get(name)
        if stored is None:
            stored = next((v for k, v in job.files.items() if k.lower() == name.lower()), None)
        path = self._files.upload_path(job_id, stored) if stored else None
        if path is None or not path.is_file():
            raise NotFound(f"job {job_id} has no inline parameter {name}")
        return path

    def result_file(self, job_id: str, owner: str | None, result_id: str) -> tuple[Path, str]:
        job = self.get(job_id, owner)
        result = job.result(result_id) if job.phase == Phase.COMPLETED else None
        path = self._files.result_dir(job_id) / result.file if result else None
        if result is None or path is None or not path.is_file():
            raise NotFound(f"job {job_id} has no result {result_id}")
        return path, result.mime

    # ------------------------------------------------------------ changes
    def create(self, params: Params, owner: str | None, *, run: bool = False,
               execution_duration: int | None = None, destruction_ms: int | None = None,
               base_url: str | None = None) -> Job:
        """A new PENDING job (QUEUED at once when ``run``); the query isn't looked at here."""
        s = self.settings
        job_id = new_job_id()
        created = now_ms()
        default_destruction = created + s.retention_default_s * 1000
        duration = self.clamp_duration(s.exec_default_s if execution_duration is None
                                       else execution_duration)
        destruction = self.clamp_destruction(
            created, default_destruction if destruction_ms is None else destruction_ms)
        files = self._files.save_uploads(job_id, params.files)
        job = Job(job_id=job_id, owner=owner, phase=Phase.QUEUED if run else Phase.PENDING,
                  creation_ms=created, duration_s=duration, destruction_ms=destruction,
                  pairs=tuple(params.pairs), files=files, base_url=base_url)
        try:
            self._store.insert(job)
        except Exception:
            self._files.remove(job_id)
            raise
        if run:
            self._runner.submit(job_id)
        return job

    def run(self, job_id: str, owner: str | None) -> Job:
        self.get(job_id, owner)
        before, after = self._store.transition(job_id, {Phase.PENDING}, phase=Phase.QUEUED)
        if after is not None:
            self._runner.submit(job_id)
            self._notifier.changed(job_id)
            return after
        if before is None:
            raise NotFound(f"no job {job_id}")
        if before.phase in FINISHED:
            raise Forbidden(f"job {job_id} is {before.phase.value} and can't be run again; "
                            "create a new job")
        return before  # already queued or running: nothing to do

    def abort(self, job_id: str, owner: str | None) -> Job:
        """Stop a job that hasn't finished; a finished one is left as it is (an abort racing
        the job's end is no error: either way the job no longer runs)."""
        self.get(job_id, owner)
        before, after = self._store.transition(job_id, ACTIVE, phase=Phase.ABORTED, end_ms=now_ms())
        if before is None:
            raise NotFound(f"no job {job_id}")
        if after is None:
            return before
        self._runner.cancel(job_id)
        self._notifier.changed(job_id)
        return after

    def delete(self, job_id: str, owner: str | None) -> None:
        self.get(job_id, owner)
        self._destroy(job_id)

    def _destroy(self, job_id: str) -> None:
        if self._store.delete(job_id) is None:
            return
        self._runner.cancel(job_id)
        self._files.remove(job_id)
        self._notifier.changed(job_id)

    def update_params(self, job_id: str, owner: str | None, params: Params) -> Job:
        """Merge parameters into a PENDING job (same names replaced, case-insensitively)."""
        job = self.get(job_id, owner)
        if job.phase != Phase.PENDING:
            raise Forbidden(f"job {job_id} is {job.phase.value}; parameters can only change "
                            "while it is PENDING")
        new_files = self._files.save_uploads(job_id, params.files)
        merged = job.params().merged(Params(list(params.pairs)))
        files = {**job.files, **new_files}
        _, after = self._store.transition(job_id, {Phase.PENDING}, pairs=tuple(merged.pairs),
                                          files=files)
        if after is None:
            self._files.drop_uploads(job_id, list(new_files.values()))
            raise Forbidden(f"job {job_id} left PENDING; parameters can no longer change")
        replaced = [v for k, v in job.files.items() if k in new_files]
        self._files.drop_uploads(job_id, replaced)
        self._notifier.changed(job_id)
        return after

    def set_execution_duration(self, job_id: str, owner: str | None, seconds: int) -> Job:
        self.get(job_id, owner)
        before, after = self._store.transition(job_id, {Phase.PENDING, Phase.QUEUED},
                                               duration_s=self.clamp_duration(seconds))
        if before is None:
            raise NotFound(f"no job {job_id}")
        if after is None:
            raise Forbidden(f"job {job_id} is {before.phase.value}; the execution duration can "
                            "only change before it starts")
        self._notifier.changed(job_id)
        return after

    def set_destruction(self, job_id: str, owner: str | None, when_ms: int) -> Job:
        job = self.get(job_id, owner)
        _, after = self._store.transition(
            job_id, None, destruction_ms=self.clamp_destruction(job.creation_ms, when_ms))
        if after is None:
            raise NotFound(f"no job {job_id}")
        self._notifier.changed(job_id)
        return after

    # ------------------------------------------------------------ blocking
    def waiters(self, job_id: str) -> int:
        """How many requests are blocked in ``wait`` on this job right now."""
        return self._notifier.count(job_id)

    async def wait(self, job_id: str, owner: str | None, timeout_s: float,
                   phase: Phase | None = None) -> Job:
        """The job once its phase differs from ``phase`` (default: its phase now), or after
        ``timeout_s``. Returns at once when the job isn't active or isn't in ``phase``."""
        job = self.get(job_id, owner)
        start_phase = job.phase if phase is None else phase
        if timeout_s <= 0 or job.phase not in ACTIVE or job.phase != start_phase:
            return job
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        with self._notifier.listen(job_id) as event:
            while True:
                event.clear()
                job = self.get(job_id, owner)  # read after clearing: no change slips between
                remaining = deadline - loop.time()
                if job.phase != start_phase or remaining <= 0 or self._stop.is_set():
                    return job
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), remaining)
