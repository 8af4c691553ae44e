"""Job records in SQLite: one row per job, one transaction per state change.

Phase changes are compare-and-set (``transition`` names the phases a change is allowed from), so
a worker finishing a job, a client aborting it and the deadline watchdog can race without one
overwriting another's outcome. One connection serves all threads behind a lock; every statement
is short, so the lock is never held for long. WAL lets readers in other processes (backups,
``sqlite3`` at the shell) look without blocking the service.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from diavo.server.uws.model import Job, Phase, StoredResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    owner TEXT,
    phase TEXT NOT NULL,
    creation_ms INTEGER NOT NULL,
    start_ms INTEGER,
    end_ms INTEGER,
    duration_s INTEGER NOT NULL,
    destruction_ms INTEGER NOT NULL,
    pairs TEXT NOT NULL,
    files TEXT NOT NULL,
    results TEXT NOT NULL,
    error TEXT,
    base_url TEXT
);
CREATE INDEX IF NOT EXISTS jobs_creation ON jobs (creation_ms);
CREATE INDEX IF NOT EXISTS jobs_destruction ON jobs (destruction_ms);
CREATE INDEX IF NOT EXISTS jobs_phase ON jobs (phase);
"""
_COLUMNS = ("job_id", "owner", "phase", "creation_ms", "start_ms", "end_ms", "duration_s",
            "destruction_ms", "pairs", "files", "results", "error", "base_url")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM jobs"


def _row(job: Job) -> tuple:
    return (job.job_id, job.owner, Phase(job.phase).value, job.creation_ms, job.start_ms,
            job.end_ms, job.duration_s, job.destruction_ms, json.dumps([list(p) for p in job.pairs]),
            json.dumps(job.files), json.dumps([r.__dict__ for r in job.results]), job.error,
            job.base_url)


def _job(row: tuple) -> Job:
    (job_id, owner, phase, creation, start, end, duration, destruction, pairs, files, results,
     error, base) = row
    return Job(job_id=job_id, owner=owner, phase=Phase(phase), creation_ms=creation,
               start_ms=start, end_ms=end, duration_s=duration, destruction_ms=destruction,
               pairs=tuple((k, v) for k, v in json.loads(pairs)), files=json.loads(files),
               results=tuple(StoredResult(**r) for r in json.loads(results)), error=error,
               base_url=base)


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the job store is closed")
        return self._db

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._conn().execute(_SELECT + " WHERE job_id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def find(self, *, visible_to: str | None, phases: Iterable[Phase] | None = None,
             after_ms: int | None = None, last: int | None = None) -> list[Job]:
        """Jobs a requester may see, newest first, filtered as the UWS job list allows."""
        where: list[str] = ["(owner IS NULL OR owner = ?)"]
        args: list[object] = [visible_to]
        if phases is not None:
            names = sorted({Phase(p).value for p in phases})
            where.append(f"phase IN ({', '.join('?' * len(names))})" if names else "0")
            args += names
        else:
            where.append("phase <> ?")
            args.append(Phase.ARCHIVED.value)
        if after_ms is not None:
            where.append("creation_ms > ?")
            args.append(after_ms)
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY creation_ms DESC, rowid DESC"
        if last is not None:
            sql += " LIMIT ?"
            args.append(last)
        with self._lock:
            rows = self._conn().execute(sql, args).fetchall()
        return [_job(r) for r in rows]

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn().execute("SELECT job_id FROM jobs")}

    def expired(self, now_ms: int) -> list[str]:
        with self._lock:
            rows = self._conn().execute("SELECT job_id FROM jobs WHERE destruction_ms <= ?",
                                        (now_ms,)).fetchall()
        return [r[0] for r in rows]

    # ----------------------------------------------------------------- writes
    def insert(self, job: Job) -> None:
        with self._lock:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(_COLUMNS))})", _row(job))

    def transition(self, job_id: str, allowed: Iterable[Phase] | None, **changes) -> tuple[Job | None, Job | None]:
        """Apply ``changes`` (Job field values) if the job is in one of the ``allowed`` phases
        (any phase when None). Returns (job before, job after); after is None when nothing
        changed, before is None when there is no such job."""
        allowed = None if allowed is None else {Phase(p) for p in allowed}
        with self._lock:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(_SELECT + " WHERE job_id = ?", (job_id,)).fetchone()
                if row is None:
                    return None, None
                before = _job(row)
                if allowed is not None and before.phase not in allowed:
                    return before, None
                after = replace(before, **changes)
                conn.execute(f"UPDATE jobs SET {', '.join(c + ' = ?' for c in _COLUMNS[1:])} "
                             "WHERE job_id = ?", (*_row(after)[1:], job_id))
        return before, after

    def delete(self, job_id: str) -> Job | None:
        with self._lock:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                row = conn.execute(_SELECT + " WHERE job_id = ?", (job_id,)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        return _job(row) if row else None

    def fail_unfinished(self, messages: dict[Phase, str], end_ms: int,
                        keep: Iterable[str] = ()) -> list[str]:
        """Jobs left in one of the phases of ``messages`` become ERROR with that message
        (used at start-up and shutdown: their worker is gone). ``keep`` names jobs to leave."""
        keep = set(keep)
        changed = []
        with self._lock:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for phase, message in messages.items():
                    rows = conn.execute("SELECT job_id FROM jobs WHERE phase = ?",
                                        (Phase(phase).value,)).fetchall()
                    for (job_id,) in rows:
                        if job_id in keep:
                            continue
                        conn.execute("UPDATE jobs SET phase = ?, error = ?, end_ms = ?, results = '[]' "
                                     "WHERE job_id = ?", (Phase.ERROR.value, message, end_ms, job_id))
                        changed.append(job_id)
        return changed
