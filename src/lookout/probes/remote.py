"""Results from other regions: what their workers and agents send back over the broker (RESULT, docs/regions.md),
recorded by the home region's workers in the same batches, with the same once-per-task-id rule, as their own.

A result is taken only with the token of a run sent to that region (lookout.core.regions): an agent can report on
the runs it was given, never on another monitor, another region or a run nobody sent. Anything else is dropped
and logged; it is never retried, since it would be refused again.
"""

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from lookout.core.regions import run_token_valid
from lookout.monitors.models import RegionWorker
from lookout.probes.results import REDELIVERY_WINDOW, ProbeRecord
from lookout.probes.services import result_writes

logger = logging.getLogger(__name__)


class ResultRefused(ValueError):
    """A result that is not a well-formed answer to a run sent to its region."""


def remote_results_record(*, results: list[dict[str, Any]]) -> int:
    """Record the acceptable results (once each); returns how many were accepted. Returns once they committed."""
    records: list[tuple[int, ProbeRecord]] = []
    for value in results:
        try:
            monitor_id, record = _record(value)
        except (ResultRefused, KeyError, TypeError, ValueError) as exc:
            logger.warning("a result from region %r was refused: %s", _text(value, "region"), exc)
            continue
        records.append((monitor_id, record))
    if records:
        result_writes.run_many(records)
    # Who sent them is the heartbeats' to say (worker_seen, every 15 s): no upsert per results message.
    return len(records)


def region_worker_seen(*, region: str, worker: str, at: datetime, in_flight: int | None = None,
                       version: str | None = None) -> None:
    if region not in settings.LOOKOUT_REGIONS:
        return
    defaults: dict[str, Any] = {"last_seen": at}
    if in_flight is not None:
        defaults["in_flight"] = max(0, in_flight)
    if version is not None:
        defaults["version"] = version[:32]
    RegionWorker.objects.update_or_create(region=region, worker=worker[:255], defaults=defaults)


def _record(value: dict[str, Any]) -> tuple[int, ProbeRecord]:
    monitor_id, region, task_id = value["monitor"], value["region"], value["task_id"]
    if not isinstance(monitor_id, int) or not isinstance(region, str) or not isinstance(task_id, str):
        raise ResultRefused("monitor, region and task_id are missing or of the wrong type")
    if region not in settings.LOOKOUT_REGIONS or region == settings.LOOKOUT_HOME_REGION:
        raise ResultRefused(f"region {region!r} is not another region of this installation")
    due = float(value["due"]) if value.get("due") is not None else None
    if not run_token_valid(monitor_id=monitor_id, region=region, task_id=task_id, due=due, token=str(value["token"])):
        raise ResultRefused(f"monitor {monitor_id}'s run {task_id} was not sent to region {region!r}")
    # Older than the window in which a task id is recorded once: a replay, not a late result.
    if due is None or due < time.time() - REDELIVERY_WINDOW.total_seconds():
        raise ResultRefused(f"run {task_id} is not a recent run")
    tls_not_after = value.get("tls_not_after")
    return monitor_id, ProbeRecord(
        checked_at=_moment(value["checked_at"]), success=bool(value["success"]),
        status_code=value.get("status_code"), response_time_ms=float(value["response_time_ms"]),
        error=str(value.get("error") or ""), task_id=task_id, phases=dict(value.get("phases") or {}),
        tls=value.get("tls") or None, tls_not_after=_moment(tls_not_after) if tls_not_after else None,
        tls_fingerprint=str(value.get("tls_fingerprint") or ""),
        failed_condition=str(value.get("failed_condition") or ""), region=region,
        due=datetime.fromtimestamp(due, UTC),
        recheck=bool(value.get("recheck")),
    )


def _moment(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ResultRefused(f"{text!r} has no time zone")
    return moment


def _text(value: Any, key: str) -> str:
    return str(value.get(key, "")) if isinstance(value, dict) else ""
