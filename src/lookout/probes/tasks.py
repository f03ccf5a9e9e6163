from typing import Any

from celery import shared_task

from lookout.probes.services import probe_run


# Scheduled probes store no Celery result (their ProbeResult row is the record); check-now asks for one.
@shared_task(name="lookout.probes.tasks.probe_monitor", ignore_result=True)
def probe_monitor(monitor_id: int, manual: bool = False) -> dict[str, Any] | None:
    return probe_run(monitor_id=monitor_id, task_id=probe_monitor.request.id or "", manual=manual)
