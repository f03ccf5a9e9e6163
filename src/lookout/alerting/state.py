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


def monitor_state_next(*, monitor: Monitor, result: ProbeResult) -> MonitorStateChange:
    """An enabled monitor's state after one more in-order result (the caller holds its row lock)."""
    step = state_step(
        health=monitor.health, consecutive_failures=monitor.consecutive_failures,
        consecutive_successes=monitor.consecutive_successes, streak_started_at=monitor.streak_started_at,
        failure_threshold=monitor.failure_threshold, recovery_threshold=monitor.recovery_threshold,
        success=result.success, checked_at=result.checked_at,
    )
    # The sweep keeps status=maintenance in step with the windows; a transition, which decides whether an
    # alert goes out, asks the windows themselves.
    in_maintenance = monitor.status == MonitorStatus.MAINTENANCE
    if step.went_down or step.went_up:
        in_maintenance = maintenance_active(monitor=monitor, now=timezone.now())
    return MonitorStateChange(step=step, in_maintenance=in_maintenance, fields={
        "health": step.health,
        "consecutive_failures": step.consecutive_failures,
        "consecutive_successes": step.consecutive_successes,
        "streak_started_at": step.streak_started_at,
        "status": MonitorStatus.MAINTENANCE if in_maintenance else step.health,
    })


def monitor_state_apply(*, monitor: Monitor, change: MonitorStateChange, result: ProbeResult) -> None:
    """Open or close the monitor's incident (with its alerts) once the row holds change.fields.

    After the update, because the mass-failure guard counts failing monitors from those rows.
    """
    if change.step.went_down:
        incident_open(monitor=monitor, started_at=change.step.streak_started_at, detected_at=result.checked_at,
                      cause=result_cause(result), in_maintenance=change.in_maintenance)
    elif change.step.went_up:
        incident_close(monitor=monitor, ended_at=change.step.streak_started_at)


def result_cause(result: ProbeResult) -> str:
    if result.error:
        return result.error
    return f"HTTP {result.status_code}" if result.status_code else "failed"
