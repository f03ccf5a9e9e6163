"""Suspect regions: one region failing far more than the others loses its votes, and staff hear of it once each way."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from lookout.alerting.channels.base import Message
from lookout.alerting.channels.slack import slack_text
from lookout.alerting.channels.text import message_lines, message_subject
from lookout.alerting.guard import episode_open_get, guard_degraded, guard_sweep
from lookout.alerting.models import AlertEvent, DegradedEpisode, Notification
from lookout.config.celery_app import app
from lookout.monitors.models import ProbeResult
from lookout.regions.suspects import regions_suspect_sweep, suspect_regions
from lookout.regions.tasks import regions_sweep
from lookout.scheduling.periodic_tasks import periodic_tasks_seed
from support.alerting import staff_webhook_channel
from support.results import new_monitor

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.LOOKOUT_REGIONS = ["home", "eu", "us"]
    settings.LOOKOUT_HOME_REGION = "home"
    settings.LOOKOUT_REGION_SUSPECT_MIN_PERCENT = 50
    settings.LOOKOUT_REGION_SUSPECT_MARGIN_PERCENT = 30
    settings.LOOKOUT_REGION_SUSPECT_MIN_RESULTS = 20
    settings.LOOKOUT_REGION_WINDOW_SECONDS = 300


@pytest.fixture
def staff_channel(django_user_model):
    return staff_webhook_channel(django_user_model)


@pytest.fixture
def monitor(alice):
    return new_monitor(alice, regions=["home", "eu", "us"])


def results(monitor, *, region: str, total: int, failed: int, ago: float = 10.0) -> None:
    at = timezone.now() - timedelta(seconds=ago)
    ProbeResult.objects.bulk_create([
        ProbeResult(monitor=monitor, checked_at=at - timedelta(milliseconds=index), success=index >= failed,
                    status_code=200 if index >= failed else 503, response_time_ms=20.0,
                    task_id=f"t-{uuid.uuid4()}", region=region) for index in range(total)])


def events(event: str) -> list[Notification]:
    return list(Notification.objects.filter(event=event))


def test_it_makes_a_region_failing_everything_suspect_once_and_recovers_once(monitor, staff_channel):
    results(monitor, region="", total=30, failed=0)  # stored before regions existed: the home region's
    results(monitor, region="us", total=30, failed=3)
    results(monitor, region="eu", total=30, failed=30)

    assert regions_suspect_sweep() == {"eu": "suspect"}
    assert suspect_regions() == frozenset({"eu"})
    [alert] = events(AlertEvent.REGION_SUSPECT)
    assert alert.channel == staff_channel
    episode = alert.payload["episode"]
    assert (episode["region"], episode["results"], episode["failures"]) == ("eu", 30, 30)
    assert (episode["failure_percent"], episode["others_percent"]) == (100.0, 10.0)

    assert regions_suspect_sweep() == {}  # still suspect: no second alert
    assert len(events(AlertEvent.REGION_SUSPECT)) == 1

    ProbeResult.objects.filter(region="eu").update(success=True)
    assert regions_suspect_sweep() == {"eu": "recovered"}
    assert suspect_regions() == frozenset()
    [recovered] = events(AlertEvent.REGION_RECOVERED)
    assert recovered.payload["episode"]["region"] == "eu" and recovered.payload["episode"]["ended_at"]
    assert recovered.payload["occurred_at"] == recovered.payload["episode"]["ended_at"]
    assert regions_suspect_sweep() == {}
    assert len(events(AlertEvent.REGION_RECOVERED)) == 1 and len(events(AlertEvent.REGION_SUSPECT)) == 1


def test_it_runs_as_its_own_task(monitor, staff_channel):
    results(monitor, region="home", total=25, failed=0)
    results(monitor, region="eu", total=25, failed=25)

    assert regions_sweep.apply().get() == {"eu": "suspect"}


def test_it_never_makes_the_only_region_with_results_suspect(monitor, staff_channel):
    results(monitor, region="eu", total=50, failed=50)
    results(monitor, region="us", total=19, failed=0)  # below MIN_RESULTS: not a region to compare with

    assert regions_suspect_sweep() == {}
    assert not DegradedEpisode.objects.exists()


def test_it_never_makes_a_region_with_too_few_results_suspect(monitor, staff_channel):
    results(monitor, region="home", total=40, failed=0)
    results(monitor, region="eu", total=19, failed=19)

    assert regions_suspect_sweep() == {}


def test_it_needs_the_margin_and_the_minimum_share(monitor, staff_channel):
    results(monitor, region="home", total=40, failed=12)  # 30 %
    results(monitor, region="eu", total=40, failed=22)  # 55 %: above MIN_PERCENT, only 25 points above home
    results(monitor, region="us", total=40, failed=0)
    assert regions_suspect_sweep() == {}

    ProbeResult.objects.filter(region="home").update(success=True)  # home 0 %: eu 55 points above everyone
    assert regions_suspect_sweep() == {"eu": "suspect"}


def test_it_counts_only_the_window(monitor, staff_channel):
    results(monitor, region="home", total=30, failed=0)
    results(monitor, region="eu", total=30, failed=30, ago=301)

    assert regions_suspect_sweep() == {}


def test_the_mass_failure_guard_ignores_region_episodes(monitor, staff_channel):
    results(monitor, region="home", total=30, failed=0)
    results(monitor, region="eu", total=30, failed=30)
    regions_suspect_sweep()

    assert suspect_regions() == frozenset({"eu"})
    assert episode_open_get() is None and not guard_degraded()
    assert guard_sweep() == ""
    assert DegradedEpisode.objects.get().ended_at is None  # the guard's sweep left the region's episode alone


def test_migrate_seeds_the_sweep_on_the_alerts_queue(settings):
    assert "lookout.regions-sweep" in periodic_tasks_seed()
    task = PeriodicTask.objects.select_related("interval").get(name="lookout.regions-sweep")
    name, every = "lookout.regions.tasks.regions_sweep", settings.LOOKOUT_ALERT_SWEEP_SECONDS
    assert (task.task, task.interval.every, task.expire_seconds) == (name, every, every)
    assert app.amqp.router.route({}, name)["queue"].name == settings.LOOKOUT_ALERT_QUEUE


def test_the_alert_texts_name_the_region_and_its_figures(monitor, staff_channel):
    results(monitor, region="home", total=30, failed=0)
    results(monitor, region="eu", total=30, failed=30)
    regions_suspect_sweep()
    [alert] = events(AlertEvent.REGION_SUSPECT)

    message = Message(event=alert.event, event_id="e-1", payload=alert.payload)

    assert message_subject(message).startswith("Region eu suspect")
    assert "30 of 30 results failed (100.0 %)" in message_lines(message)[0]
    assert "at most 0.0 %" in message_lines(message)[0]
    assert alert.payload["link"].endswith("/api/v1/regions/")
    assert "Region eu suspect" in slack_text(message)
