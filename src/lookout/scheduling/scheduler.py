"""Lookout's beat scheduler: reads django-celery-beat's PeriodicTask rows, sends each run on time, at scale.

A replacement for django-celery-beat's DatabaseScheduler reading the same tables, built for 100k schedules:
- its own heap of next runs: a dispatch is a heap pop and push, never a pass over the whole schedule;
- reads everything once (when it takes the single-beat lock), then only the rows that changed: PostgreSQL
  notifies changed ids (triggers of migration scheduling/0001, LISTEN on the lock's own connection), SQLite
  (`lookout dev`) is polled. A change applies in place within CHANGE_POLL_SECONDS;
- publishes in batches with publisher confirms (lookout.scheduling.publisher); a run counts as sent only once
  the broker confirmed it. Monitors' probe runs travel several to a message (runs of the same route, due
  second and expiry second, at most LOOKOUT_RUN_BATCH_SIZE; a batch waits up to LOOKOUT_BEAT_LINGER_SECONDS to
  fill), so 16.7k runs a second are a few hundred messages, not 16.7k. A failed publish is retried within
  RETRY_WINDOW_SECONDS (never past the run's own period), then skipped: a broker outage does not end in a storm
  of stale probes;
- writes last_run_at (= the due time of the last run sent) and total_run_count back every FLUSH_SECONDS in one
  statement (from a thread of its own while dispatching; at a stop, before the lock is released), so a restart
  resumes where the last one stopped: after a graceful stop nothing is sent twice or skipped, after a SIGKILL at
  most the runs of the last FLUSH_SECONDS (and of a write in flight) are sent again, under the same run ids;
- next runs follow the due time, not the send time: schedules do not drift by their lag;
- every message expires when the next run is due, and carries its due time (DUE_AT_HEADER) for the workers'
  schedule-lag histogram;
- only the beat holding the single-beat lock (lookout.scheduling.lock) dispatches; any other beat waits;
- SIGTERM/SIGINT (stop_request, installed by lookout.process_signals) never unwinds a batch being written or
  confirmed: beat finishes it (its confirms waited for at most STOP_CONFIRM_SECONDS), records what the broker
  took, releases the lock for good and exits. Celery's own handler closed the publishing connection and the
  lock inside the signal handler and raised SystemExit wherever the loop was; inside py-amqp's socket read an
  OSError (EBADF, the socket it had just closed) replaced the SystemExit, the publisher took it for a broker
  error, and beat took the lock again, read every schedule and went on dispatching until it was SIGKILLed.
"""

import gc
import heapq
import itertools
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from celery.beat import Scheduler
from django.conf import settings
from django.db import DatabaseError, connection
from django_celery_beat.models import PeriodicTasks

from lookout.observability.metrics import BEAT_DISPATCHES, beat_metrics
from lookout.scheduling import rows
from lookout.scheduling.entries import NEVER, Entry
from lookout.scheduling.lock import NoLock, SchedulerLock, current_lock_set, scheduler_lock_for
from lookout.scheduling.publisher import Publisher
from lookout.scheduling.regional import batch_key

logger = logging.getLogger(__name__)

CHANGE_POLL_SECONDS = 0.2
FLUSH_SECONDS = 1.0
# Runs taken per publish (one confirm wait): single-run messages, or as many as fit in batch messages.
BATCH_SIZE = 500
RUNS_PER_PUBLISH = 1000  # ten batch messages: one confirm wait a few ms long, also through a slow link
# Time spent sending per tick before beat looks at changes, the lock and its bookkeeping again.
TICK_BUDGET_SECONDS = 0.25
RETRY_WINDOW_SECONDS = 10.0
RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0)
# More changed ids than this at once (a bulk update): one full read is cheaper than a long id list.
FULL_READ_ABOVE = 5000
# After SIGTERM, how long the batch in flight may still wait for its confirms: with the flush, the lock's release
# and Python's exit, beat is gone within a few seconds (Kubernetes' grace period is 30 s; ours: exit in 5 s).
STOP_CONFIRM_SECONDS = 2.0


class LookoutScheduler(Scheduler):
    max_interval: int  # Scheduler.__init__ sets it (beat_max_loop_interval, else Celery's default): never None

    def __init__(self, app: Any, *, lazy: bool = False, **kwargs: Any) -> None:  # beat passes keywords only
        self.lock: SchedulerLock | NoLock = scheduler_lock_for(settings.DATABASES["default"],
                                                               listen=rows.NOTIFY_CHANNEL)
        if not lazy:  # `celery beat` also builds a lazy instance, only to print its banner
            current_lock_set(self.lock)
        self._publisher = Publisher(app)
        self._entries: dict[int, Entry] = {}
        # (wake time, tie-breaker, entry id); stale items skipped. Ids, not entries: a tuple of numbers only is
        # dropped from the garbage collector's tracking, so a million of them cost its full passes nothing.
        self._queue: list[tuple[float, int, int]] = []
        self._order = itertools.count()
        self._marks: dict[int, rows.RunMark] = {}
        self._retired: list[int] = []
        self._changed: set[int] = set()
        self._read_all = False
        self._dispatching = False
        self._change_marker: Any = None
        self._next_change_poll = 0.0
        self._next_flush = 0.0
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[tuple[dict[int, rows.RunMark], list[int]] | None] | None = None
        self._counters: dict[tuple[str, str], Any] = {}
        # Probe runs taken from the queue, waiting for their batch to fill: batch key -> (opened at, entries).
        self._pending: dict[tuple[Any, ...], tuple[float, list[Entry]]] = {}
        self._batch_size: int = settings.LOOKOUT_RUN_BATCH_SIZE
        self._linger: float = settings.LOOKOUT_BEAT_LINGER_SECONDS
        self._busy = False  # inside tick() or close(): a signal must not unwind it (see stop_request)
        self._stopping = False
        super().__init__(app, lazy=lazy, **kwargs)

    # --- Celery's scheduler interface ------------------------------------------------------------------------

    def setup_schedule(self) -> None:
        # Nothing to read yet: the schedule is read when this beat takes the lock (_start_dispatching).
        pass

    @property
    def info(self) -> str:
        return "    . lookout: incremental reads, batched confirmed publishing, single-beat lock"

    def should_sync(self) -> bool:
        return False  # tick() writes its bookkeeping every FLUSH_SECONDS itself

    def sync(self) -> None:
        if self._dispatching:
            self._flush()

    def close(self) -> None:
        self._busy = True  # a second SIGTERM while recording the last runs must not cut the write short
        self._stopping = True
        try:
            self.sync()
        finally:
            self._dispatching = False
            if self._writer is not None:
                self._writer.submit(_connection_close)  # the writer thread's own connection
                self._writer.shutdown(wait=True)
                self._writer = None
            self._publisher.close()
            self.lock.release()  # for good: a closed scheduler never takes the lock again

    def stop_request(self) -> bool:
        """Asked to stop (SIGTERM, SIGINT): whether the caller (the signal handler) may unwind beat's loop now.

        Not while a tick or close() runs: a batch being written or confirmed, schedules being read or runs being
        recorded are finished first; the tick then returns at once and raises SystemExit itself.
        """
        # No logging here: a handler may run in the middle of the loop's own logging call.
        if not self._stopping:
            self._stopping = True
            self._publisher.stop_soon(within=STOP_CONFIRM_SECONDS)
        return not self._busy

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._busy = True
        try:
            delay = self._tick()
        finally:
            self._busy = False
        if self._stopping:
            logger.info("stopping: no batch in flight any more")
            # Beat's loop ends on SystemExit (as after Celery's own handler); it then calls close().
            raise SystemExit()
        return delay

    def _tick(self) -> float:
        started = time.monotonic()
        if self._stopping:
            return 0.0
        if not self.lock.ensure_held():
            if self._dispatching:
                self._stop_dispatching()
            return min(self.lock.poll_seconds, self.max_interval)
        try:
            if not self._dispatching:
                self._start_dispatching()
            elif started >= self._next_change_poll:
                self._changes_apply()
        except DatabaseError as exc:
            logger.warning("reading schedules failed (%s): trying again", exc)
            connection.close()  # Django reconnects on the next query
            return self.max_interval
        if not self._dispatching:  # the lock's session died while reading notifications
            return self.max_interval
        self._dispatch_due(deadline=started + TICK_BUDGET_SECONDS)
        if time.monotonic() >= self._next_flush:
            self._flush(wait=False)
        metrics = beat_metrics()
        metrics.tick_duration.observe(time.monotonic() - started)
        metrics.last_tick.set(time.time())
        return self._delay()

    # --- holding and losing the lock ---------------------------------------------------------------------------

    def _start_dispatching(self) -> None:
        # Whatever was read before (another beat may have been sending since) is stale: read everything.
        self._changed.clear()
        self._read_all = False
        started = time.monotonic()
        if not self.lock.requires_lock:
            self._change_marker = PeriodicTasks.last_change()  # before the read: a later change is polled
        self._entries_replace(rows.entries_read())
        self._dispatching = True
        self._next_change_poll = time.monotonic() + CHANGE_POLL_SECONDS
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        logger.info("dispatching %d schedules (read in %.1fs)", len(self._entries), time.monotonic() - started)

    def _stop_dispatching(self) -> None:
        # Runs this beat sent are worth recording even now: the write never moves a newer last_run_at back.
        self._flush()
        self._dispatching = False
        self._entries.clear()
        self._queue.clear()
        self._pending.clear()
        self._marks.clear()
        self._retired.clear()

    # --- changes -----------------------------------------------------------------------------------------------

    def _changes_apply(self) -> None:
        self._next_change_poll = time.monotonic() + CHANGE_POLL_SECONDS
        if self.lock.requires_lock:
            payloads = self.lock.notifications()
            if payloads is None:
                self._stop_dispatching()
                return
            for payload in payloads:
                if payload == rows.NOTIFY_ALL:
                    self._read_all = True
                else:
                    self._changed.add(int(payload))
        else:
            marker = PeriodicTasks.last_change()
            if marker != self._change_marker:
                self._change_marker = marker
                self._read_all = True  # SQLite serves `lookout dev`: a handful of rows, read them all
        if self._read_all or len(self._changed) > FULL_READ_ABOVE:
            self._entries_replace(rows.entries_read())
        elif self._changed:
            self._entries_update(self._changed, rows.entries_read(self._changed))
        # Only once the read succeeded: a failed read keeps the ids for the next attempt.
        self._changed.clear()
        self._read_all = False

    def _entries_replace(self, fresh: dict[int, Entry]) -> None:
        # Everything at once (taking over, or a change of shared definitions): runs missed by more than a
        # period are skipped on each schedule's own grid, so schedules spread over their interval stay spread.
        now = time.time()
        for entry in fresh.values():
            self._carry_over(entry)
            entry.catch_up(now=now)
        self._entries = fresh
        self._queue = [(entry.wake, next(self._order), entry.id) for entry in fresh.values() if entry.wake != NEVER]
        heapq.heapify(self._queue)
        # A million long-lived entries: the collector's full passes would walk them all, again and again, for
        # nothing (entries hold no reference cycles). Frozen, they are left out; refcounting still frees them.
        gc.freeze()
        metrics = beat_metrics()
        metrics.reloads.inc()
        metrics.schedules.set(len(fresh))

    def _entries_update(self, ids: set[int], fresh: dict[int, Entry]) -> None:
        now = time.time()
        for entry_id in ids:
            entry = fresh.get(entry_id)
            if entry is None:  # deleted or disabled
                self._entries.pop(entry_id, None)
                continue
            self._carry_over(entry)
            entry.overdue_at_once(now=now)
            self._entries[entry_id] = entry
            self._push(entry)
        beat_metrics().schedules.set(len(self._entries))

    def _carry_over(self, entry: Entry) -> None:
        # The row's last_run_at may lag this beat's latest send by up to FLUSH_SECONDS.
        previous = self._entries.get(entry.id)
        if previous is not None and previous.last_due is not None:
            entry.continue_after(previous.last_due)

    # --- sending -----------------------------------------------------------------------------------------------

    def _dispatch_due(self, *, deadline: float) -> None:
        while not self._stopping:  # a stop asked for meanwhile: no new batch
            now = time.time()
            batch = self._due_batch(now)
            if not batch:
                return
            outcomes = self._publisher.publish(batch, now=now)
            now = time.time()
            counts: dict[tuple[str, str], int] = {}
            for entry, sent in zip(batch, outcomes, strict=True):
                outcome = self._sent(entry, now=now) if sent else self._failed(entry, now=now)
                key = (entry.task, outcome)
                counts[key] = counts.get(key, 0) + 1
            for (task, outcome), count in counts.items():
                self._count(task, outcome, count)
            if time.monotonic() >= deadline:
                return

    def _due_batch(self, now: float) -> list[Entry]:
        """Runs to publish now: single-run ones as they fall due, probe runs once their batch is full or has
        waited LOOKOUT_BEAT_LINGER_SECONDS."""
        batch: list[Entry] = []
        queue = self._queue
        entries = self._entries
        pending = self._pending
        size = self._batch_size
        taken = singles = 0
        while queue and queue[0][0] <= now and taken < RUNS_PER_PUBLISH and singles < BATCH_SIZE:
            wake, _, entry_id = heapq.heappop(queue)
            entry = entries.get(entry_id)
            if entry is None or entry.wake != wake:
                continue  # gone, or queued again since (a changed schedule is a new entry, queued anew)
            if entry.expires_at is not None and now >= entry.expires_at:
                self._retire(entry)
                continue
            entry.run_expires = entry.expires(now=now)
            entry.wake = NEVER  # taken: another queue item of the same run (after a change) finds it so
            taken += 1
            if entry.monitor_id is None:
                batch.append(entry)
                singles += 1
                continue
            key = entry.run_key = batch_key(entry)
            group = pending.get(key)
            if group is None:
                group = pending[key] = (now, [])
            group[1].append(entry)
            if len(group[1]) >= size:
                del pending[key]
                batch += self._current(group[1])
        for key, (opened, group_entries) in list(pending.items()):
            if now >= opened + self._linger:
                del pending[key]
                batch += self._current(group_entries)
        return batch

    def _current(self, waiting: list[Entry]) -> list[Entry]:
        # A run whose schedule changed (or went) while its batch filled: its new entry is queued and sent instead.
        entries = self._entries
        return [entry for entry in waiting if entries.get(entry.id) is entry]

    def _sent(self, entry: Entry, *, now: float) -> str:
        mark = self._marks.get(entry.id)
        self._marks[entry.id] = rows.RunMark(entry.due, mark.runs + 1) if mark else rows.RunMark(entry.due, 1)
        if entry.one_off:
            self._retire(entry)
            return "sent"
        entry.advance(now=now)
        self._push(entry)
        return "sent"

    def _failed(self, entry: Entry, *, now: float) -> str:
        entry.attempts += 1
        pause = RETRY_PAUSES[min(entry.attempts, len(RETRY_PAUSES)) - 1]
        if now + pause - entry.due > min(RETRY_WINDOW_SECONDS, entry.rule.period):
            # Too late to be worth sending: the next run is the one that counts.
            self._count(entry.task, "failed")
            entry.advance(now=now)
            self._push(entry)
            return "skipped"
        entry.wake = now + pause
        heapq.heappush(self._queue, (entry.wake, next(self._order), entry.id))
        return "failed"

    def _push(self, entry: Entry) -> None:
        entry.wake = entry.due
        if entry.wake != NEVER:
            heapq.heappush(self._queue, (entry.wake, next(self._order), entry.id))

    def _retire(self, entry: Entry) -> None:
        self._entries.pop(entry.id, None)
        self._retired.append(entry.id)

    def _count(self, task: str, outcome: str, count: int = 1) -> None:
        counter = self._counters.get((task, outcome))
        if counter is None:
            counter = self._counters[(task, outcome)] = BEAT_DISPATCHES.labels(task=task, outcome=outcome)
        counter.inc(count)

    # --- bookkeeping -------------------------------------------------------------------------------------------

    def _flush(self, *, wait: bool = True) -> None:
        """Write the runs sent since the last write. In the tick (wait=False) the write runs in a thread of its
        own: at 16.7k runs a second it is a 16.7k-row UPDATE every second (~0.3 s of PostgreSQL's time), which
        beat's loop must not wait for; at most one write is in flight, the next one takes what came meanwhile."""
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        if self._writing is not None:
            if not wait and not self._writing.done():
                return
            self._written(self._writing)
        marks, self._marks = self._marks, {}
        retired, self._retired = self._retired, []
        if not marks and not retired:
            return
        if wait or connection.vendor != "postgresql":  # SQLite (lookout dev): one writer, a handful of rows
            self._written(_completed(_record(marks, retired)))
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookout-beat-bookkeeping")
        self._writing = self._writer.submit(_record, marks, retired)

    def _written(self, future: "Future[tuple[dict[int, rows.RunMark], list[int]] | None]") -> None:
        self._writing = None
        failed = future.result()  # _record catches what a database raises
        if failed is None:
            return
        marks, retired = failed
        for entry_id, mark in marks.items():  # merge with what was sent meanwhile
            later = self._marks.get(entry_id)
            self._marks[entry_id] = rows.RunMark(max(mark.due, later.due), mark.runs + later.runs) \
                if later else mark
        self._retired = retired + self._retired

    def _delay(self) -> float:
        monotonic = time.monotonic()
        wake = self._queue[0][0] - time.time() if self._queue else self.max_interval
        if self._pending:
            wake = min(wake, min(opened for opened, _ in self._pending.values()) + self._linger - time.time())
        return max(0.0, min(wake, self._next_change_poll - monotonic, self._next_flush - monotonic,
                            self.max_interval))


def _record(marks: dict[int, rows.RunMark], retired: list[int]) -> tuple[dict[int, rows.RunMark], list[int]] | None:
    """One write of beat's bookkeeping; what could not be written (to merge back and write again), or None."""
    try:
        rows.runs_record(marks)
        if retired:
            rows.schedules_disable(retired)
    except DatabaseError as exc:
        logger.warning("recording %d sent runs failed (%s): trying again", len(marks), exc)
        connection.close()  # this thread's: Django reconnects on its next query
        return marks, retired
    return None


def _connection_close() -> None:
    # Looked up in the calling thread (Django's connections are per thread): `connection.close` bound in another
    # thread would close that thread's connection instead.
    connection.close()


def _completed(value: tuple[dict[int, rows.RunMark], list[int]] | None) -> \
        "Future[tuple[dict[int, rows.RunMark], list[int]] | None]":
    future: Future[tuple[dict[int, rows.RunMark], list[int]] | None] = Future()
    future.set_result(value)
    return future
