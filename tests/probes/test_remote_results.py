"""Results from other regions (RESULT over the broker), recorded by the home region: only with the token of a run
sent to that region, once per task id, and the sender counted as a worker of its region."""

from datetime import UTC, datetime, timedelta

import pytest

from lookout.core.regions import run_token
from lookout.monitors.models import ProbeResult
from lookout.probes.remote import remote_results_record
from support.results import new_monitor

pytestmark = pytest.mark.django_db(transaction=True)  # recorded by the writer threads, on their own connections


@pytest.fixture(autouse=True)
def three_regions(settings):
    settings.LOOKOUT_REGIONS, settings.LOOKOUT_HOME_REGION = ["home", "eu-west", "us-east"], "home"


def result(monitor_id: int, *, region: str = "eu-west", task_id: str = "run-1", token: str | None = None,
           success: bool = True, worker: str = "agent-1") -> dict:
    due = datetime.now(UTC) - timedelta(seconds=1)
    return {"monitor": monitor_id, "region": region, "due": due.timestamp(), "task_id": task_id,
            "token": token if token is not None else run_token(monitor_id=monitor_id, region=region, task_id=task_id,
                                                               due=due.timestamp()),
            "recheck": False, "worker": worker, "checked_at": (due + timedelta(milliseconds=5)).isoformat(),
            "success": success, "status_code": 200 if success else 503, "response_time_ms": 12.5,
            "error": "" if success else "HTTP 503", "phases": {"connect": 1.0}, "tls": None, "tls_not_after": None,
            "tls_fingerprint": "", "failed_condition": ""}


def test_a_result_of_a_run_sent_to_its_region_is_recorded_with_its_region(alice):
    monitor = new_monitor(alice, regions=["home", "eu-west"])

    accepted = remote_results_record(results=[result(monitor.pk)])

    assert accepted == 1
    stored = ProbeResult.objects.get(monitor=monitor)
    assert stored.region == "eu-west" and stored.task_id == "run-1" and stored.response_time_ms == 12.5


def test_a_result_delivered_twice_is_recorded_once(alice):
    monitor = new_monitor(alice, regions=["home", "eu-west"])

    remote_results_record(results=[result(monitor.pk)])
    remote_results_record(results=[result(monitor.pk), result(monitor.pk)])

    assert ProbeResult.objects.filter(monitor=monitor).count() == 1


@pytest.mark.parametrize("change", [
    {"token": "0" * 64},  # made up
    {"region": "us-east"},  # eu-west's token, claimed for another region
    {"region": "home"},  # home results are recorded by home workers, never over the broker
    {"region": "mars"},
])
def test_a_result_without_the_token_of_a_run_sent_to_its_region_is_refused(alice, change):
    monitor = new_monitor(alice, regions=["home", "eu-west", "us-east"])
    value = {**result(monitor.pk), **change}

    assert remote_results_record(results=[value]) == 0
    assert not ProbeResult.objects.exists()


def test_a_result_cannot_claim_another_round_or_replay_an_old_one(alice):
    monitor = new_monitor(alice, regions=["home", "eu-west"])
    moved = result(monitor.pk)
    moved["due"] += 60
    old_due = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    old = {**result(monitor.pk), "due": old_due,
           "token": run_token(monitor_id=monitor.pk, region="eu-west", task_id="run-1", due=old_due)}

    assert remote_results_record(results=[moved, old]) == 0


def test_a_token_is_for_one_monitor_only(alice):
    mine, other = new_monitor(alice, regions=["home", "eu-west"]), new_monitor(alice, regions=["home", "eu-west"])
    value = {**result(mine.pk), "monitor": other.pk}

    assert remote_results_record(results=[value]) == 0


def test_a_malformed_result_is_refused_and_the_rest_of_its_message_recorded(alice):
    monitor = new_monitor(alice, regions=["home", "eu-west"])

    accepted = remote_results_record(results=[{"monitor": "x"}, {**result(monitor.pk), "checked_at": "yesterday"},
                                              result(monitor.pk, task_id="run-2")])

    assert accepted == 1 and ProbeResult.objects.get().task_id == "run-2"
