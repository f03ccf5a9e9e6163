"""Batched runs, as beat sends them (real PostgreSQL and RabbitMQ, the scheduler driven in this process as
celery beat's loop drives it): monitors' probe runs travel several to a message, and the test consumes the
broker's raw messages (no worker) and checks every run inside them.

- every run of every monitor arrives exactly once, with its own run id (run_task_id) and due time;
- the runs of a message expire together: same floor(due) and floor(expires), the message's expiry (Celery header,
  broker TTL, body) that of its earliest run, its lookout_due_at the earliest due, its id from its runs' ids;
- a batch sent again after a lost confirm carries the same ids; a graceful restart neither re-sends nor skips;
- a change (interval, pause, delete) applies; other regions get lookout.agent.probe_batch with each RUN.
"""

import json
import math
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from lookout.core.regions import run_token_valid
from lookout.observability.metrics import DUE_AT_HEADER
from lookout.scheduling.regional import AGENT_BATCH_TASK, BATCH_TASK, REGIONS_KWARG, batch_task_id, run_task_id
from lookout.scheduling.scheduler import LookoutScheduler
from lookout.scheduling.schedules import PROBE_TASK, regional_payload
from support.queues import QueueMessages

pytestmark = pytest.mark.django_db(transaction=True)  # committed rows: changes reach beat through NOTIFY

BATCH = 7  # small, so a second's runs of a handful of monitors take several messages


@pytest.fixture
def probes():
    name = f"batched-test-{uuid.uuid4().hex[:8]}"
    raw = QueueMessages([name])
    raw.name = name
    yield raw
    raw.close()


@pytest.fixture(autouse=True)
def small_batches(settings):
    settings.LOOKOUT_RUN_BATCH_SIZE = BATCH


def monitors(queue: str, count: int, *, every: int = 1, kwargs: dict | None = None,
             first: int = 1000) -> list[PeriodicTask]:
    """Probe schedules as the monitor services write them (args [monitor id]), due at once."""
    interval = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)[0]
    now = datetime.now(UTC)
    return [PeriodicTask.objects.create(name=f"monitor:{first + n}", task=PROBE_TASK, queue=queue, interval=interval,
                                        args=json.dumps([first + n]), kwargs=json.dumps(kwargs or {}),
                                        expire_seconds=every, start_time=now) for n in range(count)]


def run(scheduler: LookoutScheduler, seconds: float) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(max(0.0, min(scheduler.tick(), left)))


def runs_of(messages: list[dict]) -> dict[int, list[tuple[float, str]]]:
    """monitor id -> [(due, run task id)] in due order, from the batch messages' bodies."""
    runs: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for message in messages:
        assert message["headers"]["task"] == BATCH_TASK
        for monitor_id, task_id, due in message["body"][1]["runs"]:
            runs[monitor_id].append((due, task_id))
    return {monitor_id: sorted(found) for monitor_id, found in runs.items()}


def assert_every_second_once(found: list[tuple[float, str]]) -> None:
    dues = [due for due, _ in found]
    assert [round(b - a, 6) for a, b in zip(dues, dues[1:], strict=False)] == [1.0] * (len(dues) - 1), dues


def test_every_run_arrives_once_in_batches_whose_runs_expire_together(beat, probes):
    tasks = monitors(probes.name, 20)
    run(beat(), 3.2)
    messages = probes.take()

    runs = runs_of(messages)
    assert sorted(runs) == sorted(json.loads(task.args)[0] for task in tasks)
    for task in tasks:
        found = runs[json.loads(task.args)[0]]
        assert len(found) >= 3
        assert_every_second_once(found)
        assert [task_id for _, task_id in found] == [run_task_id(task.pk, due) for due, _ in found]
    assert len(messages) < sum(len(found) for found in runs.values())  # batched, not one message per run
    for message in messages:
        headers, body = message["headers"], message["body"]
        batch = body[1]["runs"]
        assert body[0] == [] and 1 <= len(batch) <= BATCH
        dues = [due for _, _, due in batch]
        assert headers[DUE_AT_HEADER] == min(dues)
        # Each run expires when its next run is due (interval 1 s): the batch when its earliest does.
        assert body[1]["expires"] == pytest.approx(min(dues) + 1, abs=1e-6)
        assert len({math.floor(due) for due in dues}) == 1 and len({math.floor(due + 1) for due in dues}) == 1
        assert datetime.fromisoformat(headers["expires"]).timestamp() == pytest.approx(body[1]["expires"], abs=1e-3)
        assert 0 < float(message["properties"]["expiration"]) <= 1000  # the broker's TTL, in ms, until then
        assert headers["id"] == batch_task_id([task_id for _, task_id, _ in batch])
    all_ids = [task_id for found in runs.values() for _, task_id in found]
    assert len(all_ids) == len(set(all_ids))


def test_a_batch_sent_again_after_a_lost_confirm_carries_the_same_ids(beat, probes, monkeypatch):
    monitors(probes.name, 5, every=30)
    scheduler = beat()
    publisher = scheduler._publisher
    wait = publisher._confirms_wait
    lost = []

    def confirm_lost(count: int) -> None:
        if not lost:  # the first batch reaches the broker, its confirm never reaches beat
            lost.append(count)
            raise TimeoutError("confirm lost")
        wait(count)

    monkeypatch.setattr(publisher, "_confirms_wait", confirm_lost)
    run(scheduler, 1.5)  # the retry comes 0.5 s later
    messages = probes.take()

    assert lost and len(messages) == 2
    first, again = messages
    assert first["headers"]["id"] == again["headers"]["id"]
    assert first["body"][1]["runs"] == again["body"][1]["runs"]
    assert len(first["body"][1]["runs"]) == 5


def test_a_graceful_restart_neither_resends_nor_skips_a_run(beat, probes):
    tasks = monitors(probes.name, 12)
    first = beat()
    run(first, 2.6)
    first.close()
    time.sleep(0.7)  # beat is away; the run due meanwhile is sent late, once
    second = beat()
    run(second, 2.6)
    second.close()  # records its last runs

    runs = runs_of(probes.take())
    for task in tasks:
        found = runs[json.loads(task.args)[0]]
        assert len(found) >= 5
        assert_every_second_once(found)
        task.refresh_from_db()
        assert task.last_run_at.timestamp() == pytest.approx(found[-1][0], abs=1e-5)


def test_an_interval_change_a_pause_and_a_delete_apply(beat, probes):
    changed, paused, deleted, kept = monitors(probes.name, 4)
    scheduler = beat()
    run(scheduler, 1.2)
    probes.take()
    changed.interval = IntervalSchedule.objects.get_or_create(every=3, period=IntervalSchedule.SECONDS)[0]
    changed.expire_seconds = 3
    changed.save()
    paused.enabled = False
    paused.save()
    deleted.delete()
    time.sleep(0.3)  # the change's NOTIFY and its pick-up by the next tick
    run(scheduler, 0.4)
    probes.take()  # runs due before the change was seen
    run(scheduler, 4.0)
    runs = runs_of(probes.take())

    assert 1000 + 1 not in runs and 1000 + 2 not in runs  # paused, deleted
    assert len(runs[1000 + 3]) >= 4
    dues = [due for due, _ in runs[1000]]
    assert len(dues) in (1, 2) and all(round(b - a, 6) == 3.0 for a, b in zip(dues, dues[1:], strict=False))


def test_another_regions_runs_travel_in_agent_batches_each_run_as_before(beat, settings):
    suffix = uuid.uuid4().hex[:6]
    regions = settings.LOOKOUT_REGIONS = ["home", f"eu-{suffix}"]
    settings.LOOKOUT_HOME_REGION = "home"
    home_queue = f"batched-test-{suffix}"
    raw = QueueMessages([home_queue, f"probes.{regions[1]}"])
    try:
        tasks = []
        for monitor_id in (51, 52, 53):
            payload = regional_payload(monitor_id=monitor_id, regions=regions, spec={"url": "http://127.0.0.1:9/"},
                                       sealed={regions[1]: f"sealed-{monitor_id}"})
            tasks += monitors(home_queue, 1, first=monitor_id, kwargs={REGIONS_KWARG: payload})
        run(beat(), 1.5)
        messages = raw.take()
    finally:
        raw.close()

    home = [message for message in messages if message["queue"] == home_queue]
    agents = [message for message in messages if message["queue"] != home_queue]
    home_runs = runs_of(home)
    assert sorted(home_runs) == [51, 52, 53]
    by_task = {task.pk: json.loads(task.args)[0] for task in tasks}
    region_runs = []
    for message in agents:
        assert message["headers"]["task"] == AGENT_BATCH_TASK
        runs = message["body"][1]["runs"]
        assert message["headers"]["id"] == batch_task_id([run["task_id"] for run in runs])
        assert message["headers"][DUE_AT_HEADER] == min(run["due"] for run in runs)
        region_runs += runs
    assert sorted(run["monitor"] for run in region_runs) == sorted(
        monitor_id for monitor_id, found in home_runs.items() for _ in found)
    for run_ in region_runs:
        schedule_id = next(pk for pk, monitor_id in by_task.items() if monitor_id == run_["monitor"])
        assert run_["region"] == regions[1] and run_["sealed"] == f"sealed-{run_['monitor']}"
        assert run_["task_id"] == run_task_id(schedule_id, run_["due"], regions[1])
        assert run_["expires"] == pytest.approx(run_["due"] + 1, abs=1e-6)
        assert (run_["due"], run_task_id(schedule_id, run_["due"])) in home_runs[run_["monitor"]]
        assert run_token_valid(monitor_id=run_["monitor"], region=regions[1], task_id=run_["task_id"],
                               due=run_["due"], token=run_["token"])


def test_a_run_whose_schedule_changes_while_its_batch_waits_is_sent_once_or_not_at_all(beat, probes, settings):
    settings.LOOKOUT_BEAT_LINGER_SECONDS = 1.0  # the batch waits: the changes land meanwhile
    changed, deleted, kept = monitors(probes.name, 3, every=30)
    scheduler = beat()
    scheduler.tick()  # reads, takes the three runs, waits for the batch to fill
    assert probes.take() == []
    changed.interval = IntervalSchedule.objects.get_or_create(every=31, period=IntervalSchedule.SECONDS)[0]
    changed.save()
    deleted.delete()
    time.sleep(0.3)  # their NOTIFYs
    run(scheduler, 1.5)

    runs = runs_of(probes.take())
    assert sorted(runs) == [1000, 1002]
    assert len(runs[1000]) == 1 and len(runs[1002]) == 1
