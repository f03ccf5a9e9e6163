"""Push (heartbeat) monitors: their target calls Lookout; a sweep records a failure when a heartbeat is overdue."""

from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.utils import timezone as django_timezone

from lookout.monitors.models import Monitor, MonitorType, ProbeResult
from lookout.monitors.services import push_deadline
from lookout.probes.results import ProbeRecord, probe_result_record


def push_receive(*, token: str) -> ProbeResult | None:
    """A heartbeat: the push monitor is up, its next one is due within interval + grace."""
    monitor = Monitor.objects.filter(push_token=token, type=MonitorType.PUSH).first()
    if monitor is None:
        return None
    now = django_timezone.now()
    with transaction.atomic():
        result = probe_result_record(monitor_id=monitor.pk, record=ProbeRecord(
            checked_at=now, success=True, status_code=None, response_time_ms=0.0, error="", task_id=""))
        Monitor.objects.filter(pk=monitor.pk, enabled=True).update(push_deadline=push_deadline(monitor=monitor,
                                                                                               after=now))
    return result


def _overdue_error(*, monitor_id: int) -> str:
    # The last heartbeat is the last successful result: the deadline moves on at every sweep (and at a resume),
    # so it tells when the heartbeat was due, not when the last one came.
    last = (ProbeResult.objects.filter(monitor_id=monitor_id, success=True).order_by("-checked_at")
            .values_list("checked_at", flat=True).first())
    if last is None:  # never, or longer ago than the results are kept
        return "no heartbeat on record (interval + grace passed)"
    return f"no heartbeat since {last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC (interval + grace passed)"


def push_sweep(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Record a failure for every push monitor whose heartbeat is overdue; returns how many."""
    now = now or django_timezone.now()
    overdue = 0
    while True:
        # The partial index on push_deadline makes this cheap however many push monitors exist.
        due = list(Monitor.objects.filter(type=MonitorType.PUSH, enabled=True, push_deadline__lt=now)
                   .order_by("push_deadline").values_list("pk", "interval", "push_deadline")[:batch])
        for pk, interval, deadline in due:
            with transaction.atomic():
                # Conditional: a heartbeat (or another sweep) that moved the deadline meanwhile wins.
                moved = Monitor.objects.filter(pk=pk, push_deadline=deadline).update(
                    push_deadline=now + timedelta(seconds=interval or 60))
                if moved:
                    probe_result_record(monitor_id=pk, record=ProbeRecord(
                        checked_at=now, success=False, status_code=None, response_time_ms=0.0,
                        error=_overdue_error(monitor_id=pk), task_id=""))
                    overdue += 1
        if len(due) < batch:
            return overdue
