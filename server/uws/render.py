"""UWS 1.1 XML documents (job, job list, results, parameters) through vo_models.uws.

Models are built with only the elements we mean to write and serialised with
``exclude_unset``: absent optional elements (runId, errorSummary) stay absent, while the
nillable required ones (ownerId, startTime, endTime) are written as ``xsi:nil``. Element order is
the models' declaration order, which is UWS.xsd's.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pydantic_xml import element
from vo_models.uws import ErrorSummary, Jobs, Parameter, Parameters, ResultReference, Results, ShortJobDescription
from vo_models.uws import Job as JobDoc
from vo_models.uws.models import BaseXmlModel
from vo_models.uws.types import ErrorType, ExecutionPhase, UWSVersion
from vo_models.xlink import XlinkType

from diavo.server.uws.model import Job, to_datetime

XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class JobParameters(Parameters):
    """All of a job's parameters as one list: ours are open-ended, not one field per name."""

    def __init__(self, **data) -> None:
        # Parameters.__init__ regroups values by model field; a plain list needs none of that.
        BaseXmlModel.__init__(self, **data)

    items: list[Parameter] = element(tag="parameter", default_factory=list)


def _dump(model) -> bytes:
    return XML_HEAD + model.to_xml(skip_empty=False, exclude_unset=True, encoding="UTF-8")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _time(ms: int | None):
    return None if ms is None else to_datetime(ms)


def parameter_list(job: Job, job_url: str) -> JobParameters:
    """Plain parameters by value (ids lower-case), inline files by reference to their URL."""
    file_names = {part.upper() for part in job.files}
    items = [Parameter(id=_clean(name.lower()), value=_clean(value))
             for name, value in job.pairs if name not in file_names]
    items += [Parameter(id=_clean(part), value=f"{job_url}/parameters/{quote(part, safe='')}",
                        by_reference=True)
              for part in job.files]
    return JobParameters(items=items)


def result_list(job: Job, job_url: str) -> Results:
    refs = [ResultReference(id=r.id, type=XlinkType.SIMPLE, href=f"{job_url}/results/{r.id}",
                            mime_type=r.mime, **({"size": r.size} if r.size is not None else {}))  # type: ignore[arg-type]
            for r in job.results]
    return Results(results=refs)


def job_document(job: Job, job_url: str) -> bytes:
    fields: dict[str, Any] = dict(job_id=job.job_id, owner_id=job.owner,
                                  phase=ExecutionPhase(job.phase.value), quote=None,
                  creation_time=to_datetime(job.creation_ms), start_time=_time(job.start_ms),
                  end_time=_time(job.end_ms), execution_duration=job.duration_s,
                  destruction=to_datetime(job.destruction_ms),
                  parameters=parameter_list(job, job_url), results=result_list(job, job_url),
                  version=UWSVersion.V1_1)
    if job.run_id is not None:
        fields["run_id"] = _clean(job.run_id)
    if job.error is not None:
        fields["error_summary"] = ErrorSummary(message=_clean(job.error), type=ErrorType.FATAL,
                                               has_detail=True)
    return _dump(JobDoc[JobParameters](**fields))  # type: ignore[misc]  # vo-models' generic Job


def jobs_document(jobs: list[Job], jobs_url: str) -> bytes:
    refs = []
    for job in jobs:
        fields: dict[str, Any] = dict(job_id=job.job_id, type=XlinkType.SIMPLE, href=f"{jobs_url}/{job.job_id}",
                      phase=ExecutionPhase(job.phase.value), owner_id=job.owner,
                      creation_time=to_datetime(job.creation_ms))
        if job.run_id is not None:
            fields["run_id"] = _clean(job.run_id)
        refs.append(ShortJobDescription(**fields))
    return _dump(Jobs(jobref=refs, version=UWSVersion.V1_1))


def results_document(job: Job, job_url: str) -> bytes:
    return _dump(result_list(job, job_url))


def parameters_document(job: Job, job_url: str) -> bytes:
    return _dump(parameter_list(job, job_url))
