"""Rounds of several regions decide a monitor's state: down when `confirm` of them fail, degraded when fewer do,
unknown regions never count as failures, suspect regions are not counted; recorded through the real service."""

import uuid
from datetime import datetime, timedelta

import pytest

from lookout.alerting.models import AlertEvent, DegradedEpisode, Incident, Notification
from lookout.monitors.models import Monitor, MonitorRegion, MonitorStatus, ProbeResult
from lookout.probes import results
from lookout.probes.results import ProbeRecord
from support.alerting import T0, monitor_for, webhook_channel

REGIONS = ["home", "eu-west", "us-east"]
MINUTE = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def three_regions(settings):
    settings.LOOKOUT_REGIONS = REGIONS
    settings.LOOKOUT_HOME_REGION = "home"


def vote(monitor: Monitor, region: str, *, success: bool, due: datetime, recheck: bool = False,
         after: timedelta = timedelta(milliseconds=50)) -> ProbeResult:
    result = results.probe_result_record(monitor_id=monitor.pk, record=ProbeRecord(
        checked_at=due + after, success=success, status_code=200 if success else 503, response_time_ms=20.0,
        error="" if success else "HTTP 503", task_id=f"t-{uuid.uuid4()}", region=region, due=due, recheck=recheck))
    assert result is not None
    return result


def round_of(monitor: Monitor, due: datetime, votes: dict[str, bool]) -> None:
    for region, success in votes.items():
        vote(monitor, region, success=success, due=due)


def three(owner, **fields) -> Monitor:
    return monitor_for(owner, regions=REGIONS, failure_threshold=1, **fields)


@pytest.mark.django_db
def test_one_region_failing_makes_the_monitor_degraded_with_no_incident(alice, webhook):
    monitor = three(alice, channels=[webhook_channel(alice, webhook.url)])

    round_of(monitor, T0, {"home": True, "eu-west": False, "us-east": True})

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DEGRADED and monitor.health == "up"
    assert not Incident.objects.exists() and not Notification.objects.exists()


@pytest.mark.django_db
def test_two_of_three_failing_is_down_naming_both_regions(alice, webhook):
    monitor = three(alice, channels=[webhook_channel(alice, webhook.url)])
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})

    round_of(monitor, T0 + MINUTE, {"eu-west": False, "home": True, "us-east": False})

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN
    incident = Incident.objects.get()
    assert sorted(incident.regions) == ["eu-west", "us-east"] and incident.regions_total == 3
    (down,) = Notification.objects.filter(event=AlertEvent.MONITOR_DOWN)
    assert down.payload["incident"]["confirmed"] in ("down from eu-west and us-east, 2 of 3",
                                                     "down from us-east and eu-west, 2 of 3")


@pytest.mark.django_db
def test_a_round_is_down_as_soon_as_confirm_regions_failed_before_the_last_reports(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})

    round_of(monitor, T0 + MINUTE, {"eu-west": False, "us-east": False})

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN
    vote(monitor, "home", success=True, due=T0 + MINUTE)  # the late success changes nothing: 2 of 3 failed
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN and Incident.objects.get().ended_at is None


@pytest.mark.django_db
def test_a_success_does_not_decide_a_round_that_can_still_fail(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})
    round_of(monitor, T0 + MINUTE, {"home": False, "eu-west": False, "us-east": False})  # down
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN

    vote(monitor, "home", success=True, due=T0 + 2 * MINUTE)  # 1 of 3: two failures could still come

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN and Incident.objects.get().ended_at is None
    vote(monitor, "eu-west", success=True, due=T0 + 2 * MINUTE)  # 2 of 3 up: no longer confirmable
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.UP and Incident.objects.get().ended_at is not None


@pytest.mark.django_db
def test_a_region_that_does_not_report_is_unknown_never_a_failure(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})

    for minute in range(1, 5):  # us-east's agent is gone; eu-west fails, home is fine
        round_of(monitor, T0 + minute * MINUTE, {"home": True, "eu-west": False})

    monitor.refresh_from_db()
    assert monitor.health == "up" and monitor.status == MonitorStatus.DEGRADED
    assert not Incident.objects.exists()


@pytest.mark.django_db
def test_an_undecided_round_with_no_success_moves_nothing_when_the_next_begins(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})

    round_of(monitor, T0 + MINUTE, {"eu-west": False})  # two regions silent: not confirmed, not fine either
    round_of(monitor, T0 + 2 * MINUTE, {"eu-west": False})

    monitor.refresh_from_db()
    assert monitor.health == "up" and monitor.consecutive_failures == 0 and not Incident.objects.exists()


@pytest.mark.django_db
def test_failure_threshold_counts_rounds_not_results(alice):
    monitor = monitor_for(alice, regions=REGIONS, failure_threshold=2)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})

    round_of(monitor, T0 + MINUTE, {"home": False, "eu-west": False, "us-east": False})
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.UP and monitor.consecutive_failures == 1

    round_of(monitor, T0 + 2 * MINUTE, {"home": False, "eu-west": False, "us-east": True})
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN and Incident.objects.count() == 1


@pytest.mark.django_db
def test_a_suspect_region_is_not_counted(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": True, "us-east": True})
    DegradedEpisode.objects.create(region="us-east", started_at=T0, failing=10, probed=10)

    round_of(monitor, T0 + MINUTE, {"home": True, "eu-west": False, "us-east": False})

    monitor.refresh_from_db()
    # Of home and eu-west (majority of 3 is 2, capped at the 2 counted): one failure is not down.
    assert monitor.status == MonitorStatus.DEGRADED and not Incident.objects.exists()


@pytest.mark.django_db
def test_a_late_result_of_an_older_round_is_stored_but_decides_nothing(alice):
    monitor = three(alice)
    round_of(monitor, T0 + MINUTE, {"home": True, "eu-west": True, "us-east": True})

    vote(monitor, "eu-west", success=False, due=T0)

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.UP
    assert ProbeResult.objects.filter(monitor=monitor, region="eu-west").count() == 2


@pytest.mark.django_db
def test_each_regions_latest_result_is_kept_for_the_detail(alice):
    monitor = three(alice)
    round_of(monitor, T0, {"home": True, "eu-west": False, "us-east": True})
    round_of(monitor, T0 + MINUTE, {"home": True, "eu-west": True})

    states = {state.region: state for state in MonitorRegion.objects.filter(monitor=monitor)}
    assert {region: state.status for region, state in states.items()} == \
        {"home": "up", "eu-west": "up", "us-east": "up"}
    assert states["us-east"].checked_at < states["eu-west"].checked_at


@pytest.mark.django_db
def test_a_single_region_monitor_moves_on_every_result_as_before(alice):
    monitor = monitor_for(alice, failure_threshold=2)

    for minute in range(2):
        vote(monitor, "home", success=False, due=T0 + minute * MINUTE)

    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN and monitor.round == {}
    assert not MonitorRegion.objects.exists()
