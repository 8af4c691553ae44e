"""The job service's public names in one place (what the app and the TAP executor import)."""
from diavo.server.uws.model import Job, JobContext, JobResult, Phase
from diavo.server.uws.service import JobService

__all__ = ["Job", "JobContext", "JobResult", "JobService", "Phase"]
