"""What a UWS job is: its stored record, what a running job is given, what it hands back.

Times are whole milliseconds since the epoch (UTC) everywhere below the HTTP layer, so one
formatter gives the job document and the text/plain resources exactly the same string.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path

from diavo.server.engine.base import Cancel
from diavo.server.errors import UsageFault
from diavo.server.params import Params

__all__ = ["Phase", "ACTIVE", "FINISHED", "Job", "StoredResult", "JobContext", "JobResult",
           "now_ms", "format_time", "parse_time", "to_datetime"]

class Phase(str, Enum):
    """UWS 1.1's execution phases (the standard's own spellings).

    Declared here rather than taken from vo_models so that the job model, and every route that
    names a phase, does not import vo_models' pydantic-xml documents at start (0.3 s); only
    rendering a job document does, and it converts by value.
    """

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ABORTED = "ABORTED"
    ARCHIVED = "ARCHIVED"


#: Phases in which a job may still change by itself; WAIT blocks only in these.
ACTIVE = frozenset({Phase.PENDING, Phase.QUEUED, Phase.EXECUTING})
#: Phases a job never leaves.
FINISHED = frozenset({Phase.COMPLETED, Phase.ERROR, Phase.ABORTED, Phase.ARCHIVED})


@dataclass(frozen=True)
class StoredResult:
    """A result file of a completed job, relative to the job's result directory."""

    id: str
    file: str
    mime: str
    rows: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class Job:
    """One job record as stored; a snapshot, never updated in place."""

    job_id: str
    owner: str | None
    phase: Phase
    creation_ms: int
    duration_s: int
    destruction_ms: int
    #: Parameters as (NAME upper-cased, value), in the order received.
    pairs: tuple[tuple[str, str], ...] = ()
    #: Inline (multipart) parameters: part name as sent -> file name in the job's upload dir.
    files: dict[str, str] = field(default_factory=dict)
    start_ms: int | None = None
    end_ms: int | None = None
    results: tuple[StoredResult, ...] = ()
    error: str | None = None
    #: The public base URL the job was created through (for URLs the executor writes).
    base_url: str | None = None

    @property
    def run_id(self) -> str | None:
        values = [v for k, v in self.pairs if k == "RUNID"]
        return values[-1] if values else None

    def params(self, files: dict[str, bytes] | None = None) -> Params:
        return Params(list(self.pairs), dict(files or {}))

    def result(self, result_id: str) -> StoredResult | None:
        return next((r for r in self.results if r.id == result_id), None)


@dataclass
class JobContext:
    """Everything the executor needs to run one job, handed over outside any lock."""

    job_id: str
    #: The stored parameters, inline upload files loaded back into ``params.files``.
    params: Params
    #: Where result files must be written (created, empty).
    result_dir: Path
    #: Called by the service to interrupt the job (PHASE=ABORT, deletion, shutdown, deadline).
    cancel: Cancel
    #: The job's execution duration in seconds (never 0: unlimited is clamped to the hard limit).
    timeout_s: float
    owner: str | None = None
    #: The public base URL of the request that created the job, when known.
    base_url: str | None = None


@dataclass(frozen=True)
class JobResult:
    """One result the executor produced: a file inside ``JobContext.result_dir``."""

    id: str
    path: Path
    mime: str
    rows: int | None = None


# --------------------------------------------------------------------------- time
def now_ms() -> int:
    return int(time.time() * 1000)


def to_datetime(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)


def format_time(ms: int | None) -> str:
    """ISO-8601 in UTC with 'T' and 'Z' and milliseconds, as vo_models writes job documents."""
    if ms is None:
        return ""
    return to_datetime(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"
                  r"\s*(Z|z|UTC|[+-]\d\d:?\d\d)?")


def parse_time(text: str, name: str) -> int:
    """An ISO-8601 instant (UTC when no zone is given) as epoch milliseconds."""
    m = _ISO.fullmatch((text or "").strip())
    if not m:
        raise UsageFault(f"{name} must be an ISO-8601 date and time such as 2025-01-31T12:00:00Z, "
                         f"not {text!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                      int(second or 0), int((frac or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError as exc:
        raise UsageFault(f"{name}: {exc}") from None
    if zone and zone[0] in "+-":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return int((dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(milliseconds=1))
