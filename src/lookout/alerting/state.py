"""The monitor state machine: confirmed down/up transitions from runs of probe results.

`state_step` is pure (tested alone); `monitor_state_next` and `monitor_state_apply` use it inside
probe_result_record's transaction, under the monitor's row lock, so concurrent results for one monitor are
applied one at a time, and an incident opens (and its alerts are created) in the same commit as the result
that confirmed it.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from lookout.alerting.incidents import incident_close, incident_open
from lookout.alerting.maintenance import maintenance_active
from lookout.monitors.models import Monitor, MonitorHealth, MonitorStatus, ProbeResult


@dataclass(frozen=True)
class StateStep:
    health: str
    consecutive_failures: int
    consecutive_successes: int
    streak_started_at: datetime
    went_down: bool
    went_up: bool


def state_step(*, health: str, consecutive_failures: int, consecutive_successes: int,
               streak_started_at: datetime | None, failure_threshold: int, recovery_threshold: int,
               success: bool, checked_at: datetime) -> StateStep:
    """The state after one more (in-order) result.

    Down after `failure_threshold` failures in a row; up again after `recovery_threshold` successes in a row.
    A pending monitor (new, or never confirmed) is up after one success: there is nothing to recover from.
    """
    if success:
        successes, failures = consecutive_successes + 1, 0
        continuing = consecutive_successes > 0
        needed = recovery_threshold if health == MonitorHealth.DOWN else 1
        new_health = MonitorHealth.UP if successes >= needed else health
    else:
        successes, failures = 0, consecutive_failures + 1
        continuing = consecutive_failures > 0
        new_health = MonitorHealth.DOWN if failures >= failure_threshold else health
    return StateStep(
        health=new_health, consecutive_failures=failures, consecutive_successes=successes,
        streak_started_at=streak_started_at if continuing and streak_started_at else checked_at,
        went_down=new_health == MonitorHealth.DOWN and health != MonitorHealth.DOWN,
        went_up=new_health == MonitorHealth.UP and health == MonitorHealth.DOWN,
    )


@dataclass(frozen=True)
class MonitorStateChange:
    step: StateStep
    in_maintenance: bool
    fields: dict[str, Any]  # Monitor fields to update
    # A monitor of several regions: the regions whose failures decided the round, of how many were counted.
    regions: tuple[str, ...] = ()
    regions_total: int = 0


# The monitor fields state_step reads and writes: a round of several regions starts from them (its base).
STATE_FIELDS = ("health", "consecutive_failures", "consecutive_successes", "streak_started_at")


def monitor_state_next(*, monitor: Monitor, result: ProbeResult) -> MonitorStateChange:
    """An enabled monitor's state after one more in-order result (the caller holds its row lock)."""
    return monitor_state_after(monitor=monitor, base={name: getattr(monitor, name) for name in STATE_FIELDS},
                               success=result.success, checked_at=result.checked_at)


def monitor_state_after(*, monitor: Monitor, base: dict[str, Any], success: bool, checked_at: datetime,
                        degraded: bool = False, regions: tuple[str, ...] = (),
                        regions_total: int = 0) -> MonitorStateChange:
    """An enabled monitor's state after one more result (or round) from the state `base` (STATE_FIELDS).

    A round of several regions that some failed, fewer than confirm, is a success that shows as degraded.
    """
    step = state_step(
        health=base["health"], consecutive_failures=base["consecutive_failures"],
        consecutive_successes=base["consecutive_successes"], streak_started_at=base["streak_started_at"],
        failure_threshold=monitor.failure_threshold, recovery_threshold=monitor.recovery_threshold,
        success=success, checked_at=checked_at,
    )
    # The sweep keeps status=maintenance in step with the windows; a transition, which decides whether an
    # alert goes out, asks the windows themselves.
    in_maintenance = monitor.status == MonitorStatus.MAINTENANCE
    if step.went_down or step.went_up:
        in_maintenance = maintenance_active(monitor=monitor, now=timezone.now())
    status = step.health
    if in_maintenance:
        status = MonitorStatus.MAINTENANCE
    elif degraded and step.health == MonitorHealth.UP:
        status = MonitorStatus.DEGRADED
    return MonitorStateChange(step=step, in_maintenance=in_maintenance, regions=regions, regions_total=regions_total,
                              fields={
        "health": step.health,
        "consecutive_failures": step.consecutive_failures,
        "consecutive_successes": step.consecutive_successes,
        "streak_started_at": step.streak_started_at,
        "status": status,
    })


def monitor_state_apply(*, monitor: Monitor, change: MonitorStateChange, result: ProbeResult) -> None:
    """Open or close the monitor's incident (with its alerts) once the row holds change.fields.

    After the update, because the mass-failure guard counts failing monitors from those rows.
    """
    if change.step.went_down:
        incident_open(monitor=monitor, started_at=change.step.streak_started_at, detected_at=result.checked_at,
                      cause=result_cause(result), in_maintenance=change.in_maintenance,
                      regions=list(change.regions), regions_total=change.regions_total)
    elif change.step.went_up:
        incident_close(monitor=monitor, ended_at=change.step.streak_started_at)


def result_cause(result: ProbeResult) -> str:
    if result.error:
        return result.error
    return f"HTTP {result.status_code}" if result.status_code else "failed"
