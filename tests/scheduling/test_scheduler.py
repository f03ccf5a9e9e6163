"""Lookout's beat scheduler on the real PostgreSQL and RabbitMQ: when runs are sent, what changes do to them,
restarts, failed publishes and broker outages.

In-process tests drive LookoutScheduler.tick() as celery beat's loop does, on committed rows (changes reach the
scheduler through PostgreSQL's NOTIFY, which only a commit sends), each on a queue of its own that the test
reads back. The SIGKILL test runs real `lookout beat` processes.
"""

import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from prometheus_client import REGISTRY

from lookout.config.celery_app import app as celery_app
from lookout.observability.metrics import DUE_AT_HEADER
from lookout.scheduling import publisher as publisher_module
from lookout.scheduling import scheduler as scheduler_module
from lookout.scheduling.entries import CalendarRule, Entry, IntervalRule
from lookout.scheduling.regional import batch_task_id, run_task_id
from lookout.scheduling.scheduler import LookoutScheduler
from support.queues import QueueMessages
from support.stack import LookoutStack, wait_until
from support.tcp_proxy import TcpProxy

TASK = "lookout.scheduling.tests.noop"  # never consumed: the tests read the messages themselves


class Receiver(QueueMessages):
    """A queue's messages as these tests read them: schedule name, due time, expiry, task and id (they expire in
    the broker when their next run is due, so they are consumed as they arrive)."""

    def __init__(self, broker: str, queue: str) -> None:
        super().__init__([queue], broker=broker)

    def take(self) -> list[dict]:
        return [{"name": headers["periodic_task_name"], "due": headers[DUE_AT_HEADER], "expires": headers["expires"],
                 "task": headers["task"], "id": headers["id"]}
                for headers in (message["headers"] for message in super().take())]


@pytest.fixture
def queue():
    name = f"scheduler-test-{uuid.uuid4().hex[:8]}"
    receiver = Receiver(celery_app.conf.broker_url, name)
    receiver.name = name
    yield receiver
    receiver.close()


def schedule(queue: Receiver, *, every: float = 1, last_run_at: datetime | None = None, start: bool = True,
             crontab: CrontabSchedule | None = None, name: str | None = None) -> PeriodicTask:
    interval = None if crontab else IntervalSchedule.objects.get_or_create(
        every=every, period=IntervalSchedule.SECONDS)[0]
    return PeriodicTask.objects.create(
        name=name or f"test:{uuid.uuid4().hex[:8]}", task=TASK, queue=queue.name, interval=interval, crontab=crontab,
        args=json.dumps([1]), expire_seconds=None, last_run_at=last_run_at,
        start_time=datetime.now(UTC) if start and last_run_at is None else None)


def run(scheduler: LookoutScheduler, seconds: float) -> None:
    """celery beat's loop: tick, then sleep as long as the scheduler asks."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(max(0.0, min(scheduler.tick(), left)))


def received(queue: Receiver) -> list[dict]:
    """Messages received since the last call, in arrival order: periodic task name, due time, expiry."""
    return queue.take()


def dues(messages: list[dict], name: str) -> list[float]:
    return [message["due"] for message in messages if message["name"] == name]


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("lookout_beat_dispatches_total", {"task": TASK, "outcome": outcome}) or 0.0


# --- the rules: pure arithmetic ----------------------------------------------------------------------------------


def entry(rule, *, last_due: float | None = None, start_time: float | None = None) -> Entry:
    subject = Entry(id=1, name="t", task=TASK, args=[], kwargs={}, options={}, rule=rule, expire_seconds=None,
                    expires_at=None, one_off=False, start_time=start_time, last_due=last_due)
    subject.schedule_first(changed_at=0.0)
    return subject


def test_the_next_interval_run_follows_the_due_time_not_the_send_time():
    subject = entry(IntervalRule(60), last_due=1000.0)
    assert subject.due == 1060.0

    subject.advance(now=1065.0)  # sent 5 s late

    assert (subject.last_due, subject.due) == (1060.0, 1120.0)


def test_after_a_long_outage_an_interval_schedule_skips_to_its_next_run_on_its_own_grid():
    subject = entry(IntervalRule(60), last_due=1000.0)

    subject.catch_up(now=1000.0 + 600 + 7)  # ten minutes away

    assert subject.due == 1000.0 + 660  # the next run on its grid, not everything at once now


def test_a_run_less_than_a_period_late_is_still_sent_after_a_short_outage():
    subject = entry(IntervalRule(60), last_due=1000.0)

    subject.catch_up(now=1090.0)

    assert subject.due == 1060.0


def test_a_new_or_resumed_schedule_is_due_at_its_start_time_and_ignores_older_sends():
    subject = entry(IntervalRule(60), last_due=1000.0, start_time=5000.0)
    assert subject.due == 5000.0

    subject.continue_after(4990.0)  # a send from before the resume, not yet written back when it was read

    assert subject.due == 5000.0


def test_a_shorter_interval_after_a_change_sends_an_overdue_run_at_once():
    subject = entry(IntervalRule(1), last_due=1000.0)

    subject.overdue_at_once(now=1050.0)

    assert subject.due == 1050.0


def test_a_crontabs_next_run_follows_its_own_time_zone():
    # Kolkata is UTC+05:30: its minute 30 is minute 0 in UTC, so a zone mix-up is off by half an hour.
    cron = CrontabSchedule(minute="30", hour="*", day_of_month="*", month_of_year="*", day_of_week="*",
                           timezone=ZoneInfo("Asia/Kolkata"))
    after = datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
    next_run = CalendarRule(cron.schedule).next_after(after.timestamp())

    assert next_run == datetime(2026, 3, 1, 11, 0, tzinfo=UTC).timestamp()


def test_a_daily_crontab_runs_at_its_hour_in_its_zone():
    cron = CrontabSchedule(minute="0", hour="9", day_of_month="*", month_of_year="*", day_of_week="*",
                           timezone=ZoneInfo("Europe/Paris"))
    after = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # 10:00 in Paris (summer time): today's 9:00 has passed
    next_run = CalendarRule(cron.schedule).next_after(after.timestamp())

    assert next_run == datetime(2026, 7, 2, 7, 0, tzinfo=UTC).timestamp()


# --- sending -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_interval_runs_are_sent_when_due_one_interval_apart_each_expiring_at_the_next(beat, queue):
    task = schedule(queue, every=1)
    scheduler = beat()

    run(scheduler, 3.5)

    messages = received(queue)
    sent = dues(messages, task.name)
    assert len(sent) == 4, messages  # at once (start_time), then after 1, 2 and 3 s
    assert sent[0] == pytest.approx(task.start_time.timestamp(), abs=1e-3)
    assert [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)] == [1.0, 1.0, 1.0]
    assert [datetime.fromisoformat(m["expires"]).timestamp() for m in messages] == pytest.approx(
        [due + 1 for due in sent], abs=1e-3)
    assert all(m["task"] == TASK for m in messages)


@pytest.mark.django_db(transaction=True)
def test_a_crontab_run_is_due_at_its_fire_time_and_expires_at_the_next(beat, queue):
    cron = CrontabSchedule.objects.create(minute="*", hour="*", day_of_month="*", month_of_year="*",
                                          day_of_week="*", timezone="Asia/Kolkata")
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    task = schedule(queue, crontab=cron, last_run_at=minute - timedelta(minutes=1))
    scheduler = beat()

    run(scheduler, 0.5)
    scheduler.sync()

    [message] = received(queue)
    assert message["due"] == minute.timestamp()
    assert datetime.fromisoformat(message["expires"]) == minute + timedelta(minutes=1)
    task.refresh_from_db()
    assert task.last_run_at == minute  # the due time of the run sent, written back
    assert task.total_run_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_change_applies_within_a_second_and_a_deleted_schedule_stops(beat, queue):
    slow = schedule(queue, every=60)
    gone = schedule(queue, every=1)
    scheduler = beat()
    run(scheduler, 1.5)
    assert len(dues(received(queue), slow.name)) == 1

    slow.interval = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)[0]
    slow.save()
    gone.delete()
    changed = time.time()
    run(scheduler, 1.0)

    messages = received(queue)
    assert dues(messages, slow.name), "the shorter interval did not apply within a second"
    # At most a run sent before the deletion was read (changes are read every CHANGE_POLL_SECONDS).
    assert all(due < changed + scheduler_module.CHANGE_POLL_SECONDS + 0.1 for due in dues(messages, gone.name))
    run(scheduler, 1.5)
    assert dues(received(queue), gone.name) == []


@pytest.mark.django_db(transaction=True)
def test_a_disabled_schedule_stops_and_resumes_at_once_when_enabled(beat, queue):
    task = schedule(queue, every=60)
    scheduler = beat()
    run(scheduler, 0.5)
    assert len(received(queue)) == 1

    task.enabled = False
    task.save()
    run(scheduler, 0.5)
    task.enabled, task.start_time, task.last_run_at = True, datetime.now(UTC), None
    task.save()
    run(scheduler, 0.5)

    assert dues(received(queue), task.name) == [pytest.approx(task.start_time.timestamp(), abs=1e-3)]


@pytest.mark.django_db(transaction=True)
def test_a_graceful_restart_neither_resends_nor_skips_a_run(beat, queue):
    tasks = [schedule(queue, every=2) for _ in range(5)]
    first = beat()
    run(first, 4.5)
    first.close()
    time.sleep(1.0)  # beat is away; a run due meanwhile is sent late, once
    second = beat()
    run(second, 4.5)

    messages = received(queue)
    for task in tasks:
        sent = dues(messages, task.name)
        assert len(sent) >= 5, sent
        assert [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)] == [2.0] * (len(sent) - 1), sent


@pytest.mark.django_db(transaction=True)
def test_a_stop_requested_during_a_batch_finishes_it_records_it_and_never_takes_the_lock_again(beat, queue,
                                                                                              monkeypatch):
    tasks = [schedule(queue, every=60) for _ in range(5)]
    scheduler = beat()
    publish = scheduler._publisher.publish
    answers = []

    def publish_signalled(entries, *, now):
        answers.append(scheduler.stop_request())  # SIGTERM arrives while the batch is being written
        return publish(entries, now=now)

    monkeypatch.setattr(scheduler._publisher, "publish", publish_signalled)
    with pytest.raises(SystemExit):
        run(scheduler, 2.0)
    assert answers == [False], "the handler must not unwind a batch in flight"
    scheduler.close()  # what celery beat's loop does on SystemExit

    assert sorted(message["name"] for message in received(queue)) == sorted(task.name for task in tasks)
    for task in tasks:
        task.refresh_from_db()
        assert task.last_run_at is not None and task.total_run_count == 1
    assert not scheduler.lock.ensure_held() and not scheduler.lock.held
    assert scheduler.stop_request() is False  # still closing: a second SIGTERM changes nothing
    other = beat()
    assert other.lock.ensure_held(), "the stopped beat's lock was not freed"


def test_a_runs_task_id_is_the_same_for_every_send_of_it_and_differs_between_runs():
    due = 1_764_700_000.123456
    assert run_task_id(7, due) == run_task_id(7, due + 2e-6) == run_task_id(7, due - 2e-6)
    assert len({run_task_id(7, due), run_task_id(7, due + 1), run_task_id(8, due)}) == 3
    # The same ids as before (uuid5 of "<schedule>:<due in 10 ms steps>"), now computed without uuid.UUID.
    namespace = uuid.UUID("5d1f0c1e-6b7a-4c59-9a51-6c6f6f6b6f75")
    for schedule_id in range(200):
        due = 1_764_700_000 + schedule_id * 0.37
        assert run_task_id(schedule_id, due) == str(uuid.uuid5(namespace, f"{schedule_id}:{round(due * 100)}"))
    ids = [run_task_id(n, due) for n in range(5)]
    assert batch_task_id(ids) == batch_task_id(ids[::-1]) == str(
        uuid.uuid5(uuid.UUID("0c7b0e55-95d2-4a55-8f0e-6261746368ed"), ",".join(sorted(ids))))


def broker_through(proxy: TcpProxy, monkeypatch) -> None:
    """Beat reaches the broker through the proxy (Celery reads the environment before its settings)."""
    vhost = celery_app.conf.broker_url.rsplit("/", 1)[1]
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}")
    assert str(proxy.port) in celery_app.connection_for_write().as_uri()


@pytest.mark.django_db(transaction=True)
def test_a_publish_that_fails_transiently_is_retried_not_lost(beat, queue, monkeypatch):
    # Quick retries, so a run due during a 0.6 s cut is retried within its 1 s period.
    monkeypatch.setattr(scheduler_module, "RETRY_PAUSES", (0.2,))
    monkeypatch.setattr(publisher_module, "RECONNECT_PAUSES", (0.1,))
    proxy = TcpProxy("127.0.0.1", 5672)
    try:
        tasks = [schedule(queue, every=1) for _ in range(3)]
        broker_through(proxy, monkeypatch)
        scheduler = beat()
        run(scheduler, 1.5)
        failed_before = counted("failed")

        proxy.cut()
        run(scheduler, 0.6)
        proxy.restore()
        run(scheduler, 2.0)
    finally:
        proxy.close()

    assert counted("failed") > failed_before
    messages = received(queue)
    for task in tasks:
        # Every run, including those due while the broker was unreachable (a run whose confirm was lost with
        # the connection may arrive twice: at least once, never lost).
        sent = sorted(set(dues(messages, task.name)))
        assert [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)] == [1.0] * (len(sent) - 1), sent
        assert len(sent) >= 4


@pytest.mark.django_db(transaction=True)
def test_during_a_broker_outage_due_runs_are_skipped_not_queued_into_a_storm(beat, queue, monkeypatch):
    monkeypatch.setattr(publisher_module, "RECONNECT_PAUSES", (0.2,))
    proxy = TcpProxy("127.0.0.1", 5672)
    try:
        tasks = [schedule(queue, every=1) for _ in range(5)]
        broker_through(proxy, monkeypatch)
        scheduler = beat()
        run(scheduler, 1.2)
        skipped_before = counted("skipped")

        cut = time.time()
        proxy.cut()
        run(scheduler, 5.0)
        proxy.restore()
        restored = time.time()
        run(scheduler, 2.0)
    finally:
        proxy.close()

    assert counted("skipped") > skipped_before
    messages = received(queue)
    for task in tasks:
        sent = dues(messages, task.name)
        # Runs due more than their period (1 s) before the broker came back were dropped, not sent late.
        assert not [due for due in sent if cut + 0.3 < due < restored - 1.3], (sent, cut, restored)
        assert [due for due in sent if due > restored], "probing did not resume"


@pytest.mark.django_db(transaction=True)
def test_ticks_reads_and_dispatches_are_measured(beat, queue):
    schedule(queue, every=60)
    schedule(queue, every=60)
    ticks = REGISTRY.get_sample_value("lookout_beat_tick_duration_seconds_count") or 0.0
    reads = REGISTRY.get_sample_value("lookout_beat_schedule_reloads_total") or 0.0
    sent = counted("sent")
    scheduler = beat()

    run(scheduler, 0.5)

    assert REGISTRY.get_sample_value("lookout_beat_tick_duration_seconds_count") > ticks
    assert REGISTRY.get_sample_value("lookout_beat_last_tick_timestamp_seconds") == pytest.approx(time.time(), abs=5)
    assert REGISTRY.get_sample_value("lookout_beat_schedule_reloads_total") == reads + 1
    assert REGISTRY.get_sample_value("lookout_beat_schedules") >= 2
    assert counted("sent") == sent + 2


# --- a real beat, killed --------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_after_a_sigkill_at_most_one_run_per_schedule_is_repeated_or_skipped(tmp_path):
    stack = LookoutStack(tmp_path, name=f"lookout_sched_{uuid.uuid4().hex[:8]}")
    names = [f"kill:{index}" for index in range(20)]
    queue = "killtest"
    receiver = None
    try:
        stack.run("migrate")
        receiver = Receiver(stack.env["CELERY_BROKER_URL"], queue)  # messages expire: consume as they come
        with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://"), autocommit=True) as db:
            interval = db.execute("INSERT INTO django_celery_beat_intervalschedule (every, period) "
                                  "VALUES (5, 'seconds') RETURNING id").fetchone()[0]
            for index, name in enumerate(names):  # first runs spread over the 5 s interval
                db.execute(
                    "INSERT INTO django_celery_beat_periodictask (name, task, interval_id, args, kwargs, queue, "
                    "enabled, one_off, total_run_count, date_changed, description, headers, start_time) "
                    "VALUES (%s, %s, %s, '[1]', '{}', %s, true, false, 0, now(), '', '{}', "
                    "now() + make_interval(secs => %s))", (name, TASK, interval, queue, 2 + index * 0.25))
        stack.start("beat", "beat")
        wait_until(lambda: receiver.messages, timeout=30, what="the first runs")
        time.sleep(6)
        stack.processes["beat"].send_signal(signal.SIGKILL)
        stack.processes.pop("beat").wait()
        stack.start("beat2", "beat")
        time.sleep(9)
        stack.assert_running()
        messages = [(message["name"], message["due"]) for message in receiver.take()]
    finally:
        if receiver is not None:
            receiver.close()
        stack.down()

    for name in names:
        sent = sorted(due for message_name, due in messages if message_name == name)
        gaps = [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)]
        assert len(sent) >= 3, (name, sent)
        # 0: a run sent again (sent in the last second before the kill, not yet written back); 10: one skipped.
        assert set(gaps) <= {0.0, 5.0, 10.0}, (name, gaps)
        assert gaps.count(0.0) + gaps.count(10.0) <= 1, (name, gaps)
