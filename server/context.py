"""What every handler needs, built once by the app factory and kept on ``app.state.ctx``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diavo.server.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    model: Any    # archive.model.DataModel
    queries: Any  # query.executor.QueryService
    tap: Any      # query.tap.TapService
    jobs: Any     # uws.jobs.JobService
    started: Any = None  # datetime the service came up (VOSI availability upSince)
    writers: Any = None  # ThreadPoolExecutor of response writers (protocols.streaming)
