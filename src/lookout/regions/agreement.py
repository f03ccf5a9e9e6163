"""Rounds: how the results of one run from a monitor's regions decide its state.

A run is sent to every region of the monitor with one due time; the results with that due time are its round.
The round is *failed* once at least `confirm` of the counted regions (suspect ones are not) failed it, and *ok* once
so many succeeded that `confirm` failures can no longer come together; until then it is undecided and the monitor's
state does not move. A region that never reports is unknown, never a failure: when the next round begins, an
undecided round is decided by what it has (ok if any region succeeded, nothing at all if none did). The state
machine (lookout.alerting.state) then takes each decided round as one result: failure_threshold failed rounds in a
row are down, recovery_threshold ok rounds are up again; an ok round some region failed shows as degraded.

The round lives in the monitor's `round` (JSON) under its row lock: its due time, the state before it (`base`),
each region's vote, its decision and whether it asked for a re-check. A failure in a scheduled round makes every
region probe again at once (a re-check round), and so does a failed re-check round while the monitor is not down
yet: a confirmed outage is detected within seconds of the first failure, not failure_threshold intervals later.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lookout.alerting.state import STATE_FIELDS, MonitorStateChange, monitor_state_after
from lookout.monitors.models import Monitor, MonitorHealth, MonitorStatus
from lookout.monitors.rules import confirm_needed, monitor_regions

# Two due times closer than this are one round (a due time survives JSON and restarts to the microsecond).
_SAME_DUE = 0.005
OK = "ok"
FAILED = "failed"


@dataclass(frozen=True)
class Vote:
    """What one result did to its monitor's round: the state changes to apply (in order) and whether every
    region is to re-check now."""

    changes: tuple[MonitorStateChange, ...] = ()
    recheck: bool = False


def multi_region(monitor: Monitor) -> bool:
    return len(monitor_regions(monitor)) > 1


def vote(*, monitor: Monitor, region: str, success: bool, due: datetime | None, recheck: bool,
         checked_at: datetime, suspects: frozenset[str]) -> Vote:
    """Count one region's result in the monitor's round; the caller holds the row lock and saves `round` and the
    changes' fields. A check-now (no due time) or a result of an older round votes in no round."""
    if due is None:
        return Vote()
    due_at = due.timestamp()
    current = dict(monitor.round or {})
    changes: list[MonitorStateChange] = []
    if not current or due_at > current["due"] + _SAME_DUE:
        if current and not current.get("decided"):
            closing = _closed(monitor, current, suspects=suspects, checked_at=checked_at)
            if closing is not None:
                changes.append(closing)
                _state_set(monitor, closing)
        current = {"due": due_at, "base": _state_json(monitor), "votes": {}, "decided": "", "recheck": recheck,
                   "rechecked": False}
    elif due_at < current["due"] - _SAME_DUE:
        return Vote()  # a late result of a round already over: stored, and shown per region, but it decides nothing
    current["votes"] = {**current["votes"], region: success}
    decided = current["decided"] or _decision(monitor, current, suspects=suspects, final=False)
    if decided and not current["decided"]:
        current["decided"] = decided
        change = _change(monitor, current, decided, suspects=suspects, checked_at=checked_at)
        changes.append(change)
        _state_set(monitor, change)
    elif current["decided"] == OK and not success and region in _counted(monitor, suspects=suspects) and \
            monitor.status == MonitorStatus.UP:
        monitor.status = MonitorStatus.DEGRADED  # a failure after the round was ok already: up, but not everywhere
    again = not success and region not in suspects and not current["rechecked"] and \
        monitor.health != MonitorHealth.DOWN and (not current["recheck"] or current["decided"] == FAILED)
    if again:
        current["rechecked"] = True
    monitor.round = current
    return Vote(changes=tuple(changes), recheck=again)


def _counted(monitor: Monitor, *, suspects: frozenset[str]) -> list[str]:
    regions = monitor_regions(monitor)
    counted = [region for region in regions if region not in suspects]
    return counted or regions  # every region suspect: better all of them than none


def _confirm(monitor: Monitor, counted: list[str]) -> int:
    return min(confirm_needed(regions=len(monitor_regions(monitor)), confirm=monitor.confirm), len(counted))


def _decision(monitor: Monitor, current: dict[str, Any], *, suspects: frozenset[str], final: bool) -> str:
    counted = _counted(monitor, suspects=suspects)
    votes = {region: ok for region, ok in current["votes"].items() if region in counted}
    failures = sum(1 for ok in votes.values() if not ok)
    successes = len(votes) - failures
    confirm = _confirm(monitor, counted)
    if failures >= confirm:
        return FAILED
    if successes > len(counted) - confirm or (final and successes):
        return OK
    return ""


def _closed(monitor: Monitor, current: dict[str, Any], *, suspects: frozenset[str],
            checked_at: datetime) -> MonitorStateChange | None:
    """An undecided round, decided by the votes it got: the regions that did not report are unknown."""
    decided = _decision(monitor, current, suspects=suspects, final=True)
    return _change(monitor, current, decided, suspects=suspects, checked_at=checked_at) if decided else None


def _change(monitor: Monitor, current: dict[str, Any], decided: str, *, suspects: frozenset[str],
            checked_at: datetime) -> MonitorStateChange:
    counted = _counted(monitor, suspects=suspects)
    failed = tuple(region for region in counted if current["votes"].get(region) is False)
    return monitor_state_after(monitor=monitor, base=_state_from_json(current["base"]), success=decided == OK,
                               checked_at=checked_at, degraded=decided == OK and bool(failed), regions=failed,
                               regions_total=len(counted))


def _state_set(monitor: Monitor, change: MonitorStateChange) -> None:
    for name, value in change.fields.items():
        setattr(monitor, name, value)


def _state_json(monitor: Monitor) -> dict[str, Any]:
    started = monitor.streak_started_at
    return {**{name: getattr(monitor, name) for name in STATE_FIELDS},
            "streak_started_at": started.timestamp() if started else None}


def _state_from_json(base: dict[str, Any]) -> dict[str, Any]:
    started = base.get("streak_started_at")
    return {**base, "streak_started_at": datetime.fromtimestamp(started, UTC) if started is not None else None}
