"""The worker pool: threads that take QUEUED jobs in order and run them through the executor.

The executor runs outside every lock. Its outcome is written with a compare-and-set from
EXECUTING, so a job aborted, deleted or failed by its deadline while it ran keeps that outcome
whatever the executor returns later. A watchdog fails a job that outlives its execution duration
(plus a grace period, for the engine's own timeout to act first).

An interrupt can be lost (one landing before the engine has started the query does nothing), so
an interrupted job is interrupted again every ``RETRY_S`` until its executor returns; if it still
hasn't after the grace period, its worker's place in the pool goes to a fresh thread. A hung
executor can thus neither hold a job EXECUTING nor shrink the pool for good.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diavo.server.engine.base import Cancel, QueryAborted, QueryTimeout
from diavo.server.errors import DaliError
from diavo.server.uws.files import JobFiles
from diavo.server.uws.model import JobContext, JobResult, Phase, StoredResult, now_ms
from diavo.server.uws.store import JobStore

log = logging.getLogger("diavo.uws")

Execute = Callable[[JobContext], list[JobResult]]
#: Seconds between repeated interrupts of a job that hasn't stopped yet.
RETRY_S = 0.5
#: Seconds an interrupted job may take to stop before its worker is replaced (default).
STOP_GRACE_S = 10.0


@dataclass
class _Running:
    cancel: Cancel
    #: Set when the executor has returned (or never started).
    done: threading.Event = field(default_factory=threading.Event)
    #: The worker's place went to another thread; it exits once the executor returns.
    abandoned: bool = False
    insisting: bool = False
    timer: threading.Timer | None = field(default=None, repr=False)


class Runner:
    def __init__(self, store: JobStore, files: JobFiles, execute: Execute, workers: int,
                 hard_s: int, grace_s: float | None, on_change: Callable[[str], None]) -> None:
        self._store = store
        self._files = files
        self._execute = execute
        self._size = max(1, int(workers))
        self._hard_s = hard_s
        self._grace_s = grace_s
        self._on_change = on_change
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._queued: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        with self._lock:
            for _ in range(self._size):
                self._spawn_locked()

    def _spawn_locked(self) -> None:
        thread = threading.Thread(target=self._work, name="diavo-uws-worker", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self, join_s: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running.values())
            threads = list(self._threads)
        for entry in running:
            if entry.timer:
                entry.timer.cancel()
            entry.cancel()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(join_s / max(1, len(threads)))

    def known(self) -> set[str]:
        """Jobs this pool has queued or is running (left alone by start-up recovery)."""
        with self._lock:
            return set(self._queued) | set(self._running)

    # ------------------------------------------------------------ requests
    def submit(self, job_id: str) -> None:
        with self._lock:
            self._queued.add(job_id)
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> bool:
        """Interrupt a running job; False if it isn't running here."""
        with self._lock:
            entry = self._running.get(job_id)
        if entry is None:
            return False
        entry.cancel()
        self._insist(job_id, entry)
        return True

    def _insist(self, job_id: str, entry: _Running, abandon_now: bool = False) -> None:
        """Keep interrupting ``entry`` until its executor returns; replace its worker once the
        grace period is over (at once with ``abandon_now``)."""
        with self._lock:
            if entry.insisting or entry.done.is_set():
                if abandon_now:
                    self._abandon_locked(job_id, entry)
                return
            entry.insisting = True
            if abandon_now:
                self._abandon_locked(job_id, entry)
        grace = STOP_GRACE_S if self._grace_s is None else self._grace_s

        def repeat() -> None:
            waited = 0.0
            while not entry.done.wait(RETRY_S):
                entry.cancel()
                waited += RETRY_S
                if waited >= grace:
                    with self._lock:
                        self._abandon_locked(job_id, entry)
                if waited >= max(grace, 600.0):  # give up re-interrupting a truly deaf executor
                    return

        threading.Thread(target=repeat, name="diavo-uws-interrupt", daemon=True).start()

    def _abandon_locked(self, job_id: str, entry: _Running) -> None:
        if entry.abandoned or entry.done.is_set() or self._stopping:
            return
        entry.abandoned = True
        log.warning("job %s doesn't stop; its worker is replaced", job_id)
        self._spawn_locked()

    # ------------------------------------------------------------ workers
    def _work(self) -> None:
        try:
            while True:
                job_id = self._queue.get()
                if job_id is None:
                    return
                try:
                    retired = self._run(job_id)
                except Exception:  # never lose a worker to a bookkeeping failure
                    if not self._stopping:  # at shutdown the store may already be closed
                        log.exception("job %s: worker failure", job_id)
                    retired = False
                if retired:
                    return
        finally:
            with self._lock:
                if threading.current_thread() in self._threads:
                    self._threads.remove(threading.current_thread())

    def _run(self, job_id: str) -> bool:
        """Run one job; True when the watchdog gave this worker's place to another thread."""
        entry = _Running(Cancel())
        with self._lock:
            self._queued.discard(job_id)
            if self._stopping:
                return False
            # Registered before the phase change, so an abort that sees EXECUTING finds it.
            self._running[job_id] = entry
        try:
            ctx = self._prepare(job_id, entry.cancel)
            if ctx is None:
                return False
            self._on_change(job_id)
            if ctx.timeout_s > 0:
                grace = (self._grace_s if self._grace_s is not None
                         else min(60.0, 5.0 + 0.05 * ctx.timeout_s))
                entry.timer = threading.Timer(ctx.timeout_s + grace, self._overdue,
                                              (job_id, entry, ctx.timeout_s))
                entry.timer.daemon = True
                entry.timer.start()
            outcome = self._outcome(ctx)
        finally:
            with self._lock:
                self._running.pop(job_id, None)
                entry.done.set()
            if entry.timer:
                entry.timer.cancel()
        self._record(job_id, outcome)
        with self._lock:
            return entry.abandoned

    def _prepare(self, job_id: str, cancel: Cancel) -> JobContext | None:
        """Files first, then QUEUED -> EXECUTING: a job seen EXECUTING has its files in place.
        None when the job was aborted or deleted meanwhile (or its files are unreadable)."""
        job = self._store.get(job_id)
        if job is None or job.phase != Phase.QUEUED:
            return None
        try:
            ctx = JobContext(job_id=job_id,
                             params=job.params(self._files.load_uploads(job_id, job.files)),
                             result_dir=self._files.fresh_result_dir(job_id), cancel=cancel,
                             timeout_s=float(job.duration_s if job.duration_s > 0 else self._hard_s),
                             owner=job.owner, base_url=job.base_url)
        except OSError as exc:
            log.exception("job %s: could not prepare its files", job_id)
            _, failed = self._store.transition(job_id, {Phase.QUEUED}, phase=Phase.ERROR,
                                               end_ms=now_ms(), error=f"internal error: {exc}")
            if failed is not None:
                self._on_change(job_id)
            return None
        before, after = self._store.transition(job_id, {Phase.QUEUED}, phase=Phase.EXECUTING,
                                               start_ms=now_ms())
        if after is None:
            if before is None:
                self._files.remove(job_id)
            else:
                self._files.clear_results(job_id)
            return None
        return ctx

    def _outcome(self, ctx: JobContext) -> dict:
        """The executor's result as the Job fields to store."""
        try:
            results = self._execute(ctx)
            return {"phase": Phase.COMPLETED, "results": self._stored(ctx.result_dir, results)}
        except QueryAborted:
            return {"phase": Phase.ABORTED}
        except QueryTimeout as exc:
            detail = f" ({exc})" if str(exc) else ""
            return {"phase": Phase.ERROR,
                    "error": f"the query ran longer than the job's execution duration of "
                             f"{ctx.timeout_s:g} s{detail}"}
        except DaliError as exc:
            return {"phase": Phase.ERROR, "error": exc.message or type(exc).__name__}
        except Exception as exc:
            log.exception("job %s failed", ctx.job_id)
            return {"phase": Phase.ERROR, "error": f"internal error: {exc or type(exc).__name__}"}

    @staticmethod
    def _stored(result_dir: Path, results: list[JobResult]) -> tuple[StoredResult, ...]:
        stored, seen = [], set()
        base = result_dir.resolve()
        for r in results or ():
            path = Path(r.path).resolve()
            if base not in path.parents or not path.is_file():
                raise RuntimeError(f"result {r.id!r} is not a file in the job's result directory")
            if r.id in seen:
                raise RuntimeError(f"result id {r.id!r} given twice")
            seen.add(r.id)
            stored.append(StoredResult(id=r.id, file=str(path.relative_to(base)), mime=r.mime,
                                       rows=r.rows, size=path.stat().st_size))
        return tuple(stored)

    def _record(self, job_id: str, outcome: dict) -> None:
        if outcome["phase"] != Phase.COMPLETED:
            outcome.setdefault("results", ())
        before, after = self._store.transition(job_id, {Phase.EXECUTING}, end_ms=now_ms(), **outcome)
        if before is None:  # deleted while running: the deletion may have raced our writes
            self._files.remove(job_id)
        elif after is None or after.phase != Phase.COMPLETED:
            self._files.clear_results(job_id)
        if after is not None:
            self._on_change(job_id)

    def _overdue(self, job_id: str, entry: _Running, timeout: float) -> None:
        """Deadline passed and the executor hasn't returned: fail the job, interrupt it, and
        replace its worker (which exits whenever the executor finally returns)."""
        with self._lock:
            if self._running.get(job_id) is not entry or self._stopping:
                return
        _, after = self._store.transition(
            job_id, {Phase.EXECUTING}, phase=Phase.ERROR, end_ms=now_ms(), results=(),
            error=f"the job ran longer than its execution duration of {timeout:g} s and was stopped")
        if after is not None:
            log.warning("job %s overran its execution duration", job_id)
            self._on_change(job_id)
        entry.cancel()
        self._insist(job_id, entry, abandon_now=True)
