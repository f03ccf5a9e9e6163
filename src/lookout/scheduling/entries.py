"""One schedule as beat holds it in memory: a PeriodicTask row reduced to what sending its runs needs.

Times are Unix seconds (floats): the scheduler compares and orders hundreds of thousands of them, and a
datetime per comparison would cost more than the rest of a dispatch. `last_run_at` in the row means the due
time of the last run sent (not when it was sent), so the next run is due exactly one interval later whatever
the lag was: schedules do not drift.
"""

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lookout.scheduling.regional import REGIONS_KWARG, Regional
from lookout.scheduling.schedules import PROBE_TASK

if TYPE_CHECKING:  # the publisher builds on entries, not the other way round
    from lookout.scheduling.publisher import Prepared

logger = logging.getLogger(__name__)

# Catch-up after beat was away (or the broker was): a run overdue by less than its period is still sent, late;
# an older one is skipped and the schedule continues at its next run, so a long outage never ends in a storm.
NEVER = math.inf
ROUTE = ("queue", "exchange", "routing_key", "priority")  # the options that route a task's messages


@dataclass(frozen=True, slots=True)
class IntervalRule:
    """Every `period` seconds: pure arithmetic, the common case."""

    period: float

    def next_after(self, due: float) -> float:
        return due + self.period

    def catch_up(self, due: float, *, now: float) -> float:
        # Past the run's own validity (one period): continue on the same grid at the next run, so schedules
        # that were spread over the interval stay spread after an outage.
        if due >= now - self.period:
            return due
        return due + math.ceil((now - due) / self.period) * self.period


@dataclass(frozen=True, slots=True)
class CalendarRule:
    """crontab, solar and clocked schedules, through the celery schedule object django-celery-beat builds."""

    schedule: Any
    period: float = 60.0  # an estimate of the gap between runs, used only to judge how late a run may be

    def next_after(self, due: float) -> float:
        after = datetime.fromtimestamp(due, UTC)
        try:
            if hasattr(self.schedule, "remaining_delta"):  # crontab: the exact fire time, in its own zone
                start, delta, _ = self.schedule.remaining_delta(after)
                fire_at: datetime = start + delta
                return fire_at.timestamp()
            remaining: timedelta | None = self.schedule.remaining_estimate(after)  # solar, clocked
        except Exception:  # a schedule that cannot name its next run (a clocked time long gone) has none
            logger.warning("schedule %r has no next run after %s", self.schedule, after, exc_info=True)
            return NEVER
        if remaining is None:
            return NEVER
        return (datetime.now(UTC) + remaining).timestamp()

    def catch_up(self, due: float, *, now: float) -> float:
        # A calendar run whose successor is also past is sent once now (like Celery's own schedules).
        if self.next_after(due) > now:
            return due
        return now


@dataclass(slots=True, eq=False)
class Entry:
    """A schedule and its next run. A changed row becomes a new Entry (continue_after links it to the old one)."""

    id: int
    name: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]  # queue, exchange, routing_key, priority, headers: as django-celery-beat passes them
    rule: IntervalRule | CalendarRule
    expire_seconds: int | None
    expires_at: float | None  # the row's `expires`: no run after this moment, the task is then disabled
    one_off: bool
    start_time: float | None
    last_due: float | None  # due time of the last run sent; None if it never ran
    due: float = field(default=NEVER)
    wake: float = field(default=NEVER)  # when the scheduler looks at it next: `due`, or a retry of it
    attempts: int = 0  # failed publishes of the current run
    prepared: "Prepared | None" = None  # its part of every message, kept by the publisher
    regional: Regional | None = None  # a monitor probed from other regions than the home one alone
    # A monitor's probe schedule (PROBE_TASK, args [monitor_id], no other kwargs): its runs travel in batches
    # (lookout.scheduling.batches); None for any other task, sent one message per run.
    monitor_id: int | None = None
    route: tuple[Any, ...] = ()  # queue, exchange, routing_key, priority: one tuple shared by the same routes
    run_expires: float = NEVER  # the current run's expiry, fixed when the scheduler takes the run
    run_key: tuple[Any, ...] = ()  # the current run's batch key (lookout.scheduling.regional.batch_key)

    def schedule_first(self, *, changed_at: float) -> None:
        """Set `due` from the row: the run after the last one, or the first one (catching up is the caller's)."""
        if self.start_time is not None and (self.last_due is None or self.last_due < self.start_time):
            # A new or resumed monitor (start_time = when it was saved): its first run is due at once.
            due = self.start_time
        elif self.last_due is not None:
            due = self.rule.next_after(self.last_due)
        else:
            # A row that never ran and has no start time: one period after it was saved, as in Celery.
            due = self.rule.next_after(changed_at)
        self.due = self.wake = due

    def continue_after(self, last_due: float) -> None:
        """The scheduler sent a run due at `last_due` that the row may not show yet: continue after it.

        Unless the row was restarted since (a resumed monitor's start_time is later): then it starts afresh.
        """
        if (self.last_due is not None and self.last_due >= last_due) or \
                (self.start_time is not None and self.start_time > last_due):
            return
        self.last_due = last_due
        self.due = self.wake = self.rule.next_after(last_due)

    def catch_up(self, *, now: float) -> None:
        """After beat was away or behind: a run more than a period late is skipped (see the rules' catch_up)."""
        self.due = self.wake = self.rule.catch_up(self.due, now=now)

    def overdue_at_once(self, *, now: float) -> None:
        """After a change (say, a shorter interval): a run already due is sent now, and the schedule continues
        from now (not from the old grid, which would send the next run sooner than one new interval later)."""
        starting = self.start_time is not None and self.due == self.start_time  # new or resumed: due when saved
        if self.due < now and not starting:
            self.due = self.wake = now

    def advance(self, *, now: float) -> None:
        """The current run was sent (or given up): the next one."""
        self.last_due = self.due
        self.attempts = 0
        self.due = self.wake = self.rule.catch_up(self.rule.next_after(self.due), now=now)

    def expires(self, *, now: float) -> float:
        """When the message of the current run expires: when the next run is due (or the row's expire_seconds)."""
        expires = self.rule.next_after(self.due)
        if self.expire_seconds:
            expires = min(expires, now + self.expire_seconds)
        return expires


def interval_seconds(every: int, period: str) -> float:
    return timedelta(**{period: every}).total_seconds()


class RowParser:
    """Turns PeriodicTask rows into entries, sharing what identical rows have in common.

    One parser per read: at 1M monitors the rows differ only in id, name, args and times, so the parsed kwargs,
    headers and route options are one object each, shared by every entry (never mutated), instead of 1M dicts.
    """

    def __init__(self) -> None:
        self._json: dict[str, Any] = {}
        self._options: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._routes: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def entry(self, row: dict[str, Any], rule: IntervalRule | CalendarRule) -> Entry | None:
        """An Entry from a PeriodicTask row (as selected by lookout.scheduling.rows, times in Unix seconds); None
        if it cannot run."""
        try:
            args = _args(row["args"])
            kwargs = self._shared_json(row["kwargs"] or "{}")
            headers = self._shared_json(row["headers"] or "{}")
        except ValueError:
            logger.error("schedule %s has arguments or headers that are not JSON: not scheduled", row["name"])
            return None
        if row["one_off"] and row["total_run_count"] > 0:
            return None  # ran already (django-celery-beat would disable it now)
        regional = None
        if REGIONS_KWARG in kwargs:
            kwargs = dict(kwargs)  # shared: popped from a copy
            regional = Regional.from_kwargs(kwargs.pop(REGIONS_KWARG))
        shared = (row["queue"], row["exchange"], row["routing_key"], row["priority"], id(headers))
        options = self._options.get(shared)
        if options is None:
            options = {key: row[key] for key in ROUTE if row[key] is not None and row[key] != ""}
            if headers:
                options["headers"] = headers
            self._options[shared] = options
            self._routes[shared] = tuple(options.get(key) for key in ROUTE)
        task = row["task"]
        batched = task == PROBE_TASK and not kwargs and len(args) == 1 and type(args[0]) is int
        entry = Entry(
            id=row["id"], name=row["name"], task=task, args=args, kwargs=kwargs, options=options, rule=rule,
            expire_seconds=row["expire_seconds"], expires_at=row["expires"], one_off=row["one_off"],
            start_time=row["start_time"], last_due=row["last_run_at"], regional=regional,
            monitor_id=args[0] if batched else None, route=self._routes[shared],
        )
        entry.schedule_first(changed_at=row["date_changed"] or time.time())
        return entry

    def _shared_json(self, text: str) -> Any:
        value = self._json.get(text)
        if value is None:
            value = self._json[text] = json.loads(text)
        return value


def _args(text: str | None) -> list[Any]:
    # A monitor's args are `[<its id>]`: read without the JSON parser (a third of a full read's time at 1M).
    if text and text[0] == "[" and text[-1] == "]" and text[1:-1].isdigit():
        return [int(text[1:-1])]
    value = json.loads(text or "[]")
    if not isinstance(value, list):
        raise ValueError("args must be a JSON list")
    return value


def entry_from_row(row: dict[str, Any], rule: IntervalRule | CalendarRule) -> Entry | None:
    """An Entry from one PeriodicTask row (times in Unix seconds); None if it cannot run."""
    return RowParser().entry(row, rule)


def timestamp(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # USE_TZ is on; a naive value can only be UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
