"""A minimal UWS 1.1 client over raw HTTP (requests), for checks pyvo does not make."""
from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from lxml import etree

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
FINAL = ("COMPLETED", "ERROR", "ABORTED", "ARCHIVED")


@dataclass
class JobInfo:
    job_id: str
    phase: str
    run_id: str | None
    error: str | None
    results: dict[str, str]  # result id -> href
    parameters: dict[str, str]


def submit(session: requests.Session, tap_url: str, params: dict, run: bool = False,
           files: dict | None = None, headers: dict | None = None) -> str:
    """POST /async; returns the job URL under ``tap_url`` (whatever host the Location names)."""
    data = {"LANG": "ADQL", **params}
    if run:
        data["PHASE"] = "RUN"
    r = session.post(tap_url + "/async", data=data, files=files, headers=headers, allow_redirects=False,
                     timeout=60)
    if r.status_code != 303:
        raise AssertionError(f"job creation answered {r.status_code}, not 303: {r.text[:300]}")
    return tap_url + "/async/" + r.headers["location"].rstrip("/").rsplit("/", 1)[-1]


def run(session: requests.Session, job_url: str) -> None:
    r = session.post(job_url + "/phase", data={"PHASE": "RUN"}, allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text[:300]


def abort(session: requests.Session, job_url: str) -> None:
    r = session.post(job_url + "/phase", data={"PHASE": "ABORT"}, allow_redirects=False, timeout=60)
    assert r.status_code == 303, r.text[:300]


def info(session: requests.Session, job_url: str) -> JobInfo:
    r = session.get(job_url, timeout=60)
    assert r.status_code == 200, f"{job_url}: {r.status_code}"
    job = etree.fromstring(r.content)
    err = job.find(UWS + "errorSummary")
    return JobInfo(
        job_id=job.findtext(UWS + "jobId"),
        phase=job.findtext(UWS + "phase"),
        run_id=job.findtext(UWS + "runId"),
        error=None if err is None else (err.findtext(UWS + "message") or "").strip(),
        results={el.get("id"): el.get(XLINK_HREF) for el in job.iter(UWS + "result")},
        parameters={el.get("id"): (el.text or "") for el in job.iter(UWS + "parameter")},
    )


def phase(session: requests.Session, job_url: str) -> str:
    r = session.get(job_url + "/phase", timeout=60)
    assert r.status_code == 200, f"{job_url}/phase: {r.status_code}"
    return r.text.strip()


def wait_for(session: requests.Session, job_url: str, phases=FINAL, timeout_s: float = 120.0) -> str:
    """Block (UWS WAIT, then polling) until the job reaches one of ``phases``."""
    deadline = time.monotonic() + timeout_s
    current = phase(session, job_url)
    while current not in phases:
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_url} still {current} after {timeout_s:.0f} s (wanted {phases})")
        if current in ("QUEUED", "EXECUTING"):
            session.get(job_url, params={"WAIT": "5", "PHASE": current}, timeout=60)
        else:
            time.sleep(0.1)
        current = phase(session, job_url)
    return current


def listing(session: requests.Session, tap_url: str, **params) -> dict[str, str]:
    """Job id -> phase from GET /async."""
    r = session.get(tap_url + "/async", params=params, timeout=60)
    assert r.status_code == 200, r.text[:300]
    root = etree.fromstring(r.content)
    return {el.get("id"): el.findtext(UWS + "phase") for el in root.iter(UWS + "jobref")}
