"""UWS 1.1 asynchronous jobs: SQLite records, job files on disk, a worker pool, WAIT.

``JobService`` is the whole of it for the rest of the server; the REST binding lives in
``diavo.server.protocols.uws``.
"""
from diavo.server.uws.jobs import Job, JobContext, JobResult, JobService, Phase

__all__ = ["Job", "JobContext", "JobResult", "JobService", "Phase"]
