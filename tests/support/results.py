"""A monitor and probe records as tests of recording need them (results stored through the real services)."""

import uuid
from datetime import datetime

from lookout.monitors import services
from lookout.monitors.models import Monitor
from lookout.monitors.spec import MonitorSpec
from lookout.probes.results import ProbeRecord


def new_monitor(owner, **fields) -> Monitor:
    return services.monitor_create(owner=owner, spec=MonitorSpec(**{"name": "Example", "url": "https://example.com/",
                                                                    "interval": 60, **fields}))


def record(*, at: datetime, success: bool = True, elapsed_ms: float = 42.0, task_id: str | None = None,
           **fields) -> ProbeRecord:
    """A probe's report: a 200 when it succeeded, else a 503; a task id of its own unless given (a task's result
    is recorded once)."""
    return ProbeRecord(checked_at=at, success=success, status_code=200 if success else 503,
                       response_time_ms=elapsed_ms, error="" if success else "HTTP 503",
                       task_id=task_id or f"t-{uuid.uuid4()}", **fields)
