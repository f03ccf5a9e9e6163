"""Beat sends each run of a monitor probed from several regions once to each region's queue (real PostgreSQL and
RabbitMQ): every copy shares the run's due time and expiry, has a task id of its own (the same on every send of that
run), and another region's copy carries the probe and a token only the home region can make."""

import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from lookout.config.celery_app import app as celery_app
from lookout.core.regions import run_token_valid
from lookout.observability.metrics import DUE_AT_HEADER
from lookout.scheduling.regional import AGENT_TASK, REGIONS_KWARG, run_task_id
from lookout.scheduling.scheduler import LookoutScheduler
from lookout.scheduling.schedules import regional_payload
from support.queues import QueueMessages


@pytest.fixture
def regions(settings):
    suffix = uuid.uuid4().hex[:6]
    names = ["home", f"eu-{suffix}", f"us-{suffix}"]
    settings.LOOKOUT_REGIONS, settings.LOOKOUT_HOME_REGION = names, "home"
    return names


@pytest.mark.django_db(transaction=True)
def test_each_run_goes_once_to_each_region_sharing_due_time_and_expiry(regions):
    home_queue = f"regional-test-{uuid.uuid4().hex[:8]}"
    bodies = QueueMessages([home_queue, *(f"probes.{region}" for region in regions[1:])])
    every = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)[0]
    payload = regional_payload(monitor_id=41, regions=regions, spec={"url": "http://127.0.0.1:9/", "type": "http"},
                               sealed={regions[1]: "sealed-for-eu"})
    task = PeriodicTask.objects.create(name=f"monitor:{uuid.uuid4().hex[:6]}", task="lookout.tests.noop",
                                       queue=home_queue, interval=every, args=json.dumps([41]),
                                       kwargs=json.dumps({REGIONS_KWARG: payload}), start_time=datetime.now(UTC))
    scheduler = LookoutScheduler(app=celery_app)
    try:
        end = time.monotonic() + 1.6
        while (left := end - time.monotonic()) > 0:
            time.sleep(max(0.0, min(scheduler.tick(), left)))
    finally:
        scheduler.close()
    time.sleep(0.3)
    bodies.close()

    by_due: dict[float, list[dict]] = {}
    for message in bodies.messages:
        by_due.setdefault(message["headers"][DUE_AT_HEADER], []).append(message)
    assert len(by_due) == 2  # at once, then one second later
    for due, copies in by_due.items():
        assert sorted(copy["queue"] for copy in copies) == sorted([home_queue, *(f"probes.{r}" for r in regions[1:])])
        assert len({copy["headers"]["expires"] for copy in copies}) == 1  # they expire together
        assert datetime.fromisoformat(copies[0]["headers"]["expires"]).timestamp() == pytest.approx(due + 1, abs=1e-3)
        assert len({copy["headers"]["id"] for copy in copies}) == 3
        home = next(copy for copy in copies if copy["queue"] == home_queue)
        assert home["body"][0] == [41] and home["body"][1] == {}  # the payload is beat's, not the probe's
        assert home["headers"]["id"] == run_task_id(task.pk, due)
        for copy in copies:
            if copy is home:
                continue
            region = copy["queue"].removeprefix("probes.")
            run = copy["body"][1]["run"]
            assert copy["headers"]["task"] == AGENT_TASK
            assert run["region"] == region and run["monitor"] == 41 and run["due"] == due
            assert run["task_id"] == copy["headers"]["id"] == run_task_id(task.pk, due, region)
            assert run["spec"]["url"] == "http://127.0.0.1:9/"
            assert run["sealed"] == ("sealed-for-eu" if region == regions[1] else "")
            assert run_token_valid(monitor_id=41, region=region, task_id=run["task_id"], due=due, token=run["token"])
            assert not run_token_valid(monitor_id=42, region=region, task_id=run["task_id"], due=due,
                                       token=run["token"])


def test_run_task_ids_differ_by_region_and_the_home_one_is_as_before(regions):
    due = 1_760_000_000.25
    ids = {run_task_id(7, due), run_task_id(7, due, regions[1]), run_task_id(7, due, regions[2])}

    assert len(ids) == 3
    assert run_task_id(7, due, "home") == run_task_id(7, due)
