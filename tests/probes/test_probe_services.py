"""probe_run against a real loopback HTTP server, recording into the real database.

transaction=True: probe_run reads and writes through its process's batchers, whose threads have database
connections of their own: they see committed rows only, so these tests must not run inside the test transaction.
"""

import threading
import uuid

import pytest
from django.conf import settings
from django.db import connections
from prometheus_client import REGISTRY

from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorStatus, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.probes.services import probe_run, result_writes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def loopback_targets_allowed(monkeypatch, settings):
    # These monitors probe 127.0.0.1; say so, for when target safety refuses private targets by default.
    monkeypatch.setenv("LOOKOUT_ALLOW_PRIVATE_TARGETS", "1")
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = True


def monitor_for(owner, target, **fields) -> Monitor:
    return services.monitor_create(owner=owner, spec=MonitorSpec(name="target", url=target.url + "health",
                                                                 interval=60, **fields))


def probes_total(result: str) -> float:
    return REGISTRY.get_sample_value("lookout_probes_total", {"type": "http", "result": result,
                                                             "region": settings.LOOKOUT_REGION}) or 0.0


def test_a_healthy_target_is_recorded_as_a_success_and_the_monitor_is_up(alice, http_target):
    monitor = monitor_for(alice, http_target)

    outcome = probe_run(monitor_id=monitor.pk, task_id="scheduled-1")

    assert [hit.path for hit in http_target.hits] == ["/health"]
    assert outcome is not None and outcome["success"] is True and outcome["status_code"] == 200
    result = ProbeResult.objects.get(monitor=monitor)
    assert (result.success, result.status_code, result.task_id, result.error) == (True, 200, "scheduled-1", "")
    assert result.response_time_ms > 0
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.UP
    assert monitor.last_checked_at == result.checked_at
    assert monitor.last_response_time_ms == result.response_time_ms


def test_a_503_target_is_recorded_as_a_failure_and_the_monitor_is_down(alice, http_target):
    http_target.set(status=503)
    monitor = monitor_for(alice, http_target, failure_threshold=1)  # one failure confirms it (default: two)

    outcome = probe_run(monitor_id=monitor.pk, task_id="scheduled-2")

    assert outcome is not None and outcome["success"] is False
    result = ProbeResult.objects.get(monitor=monitor)
    assert (result.success, result.status_code) == (False, 503)
    assert "503" in result.error
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.DOWN


def test_a_paused_monitors_scheduled_probe_is_skipped_but_a_manual_check_still_probes(alice, http_target):
    monitor = monitor_for(alice, http_target)
    services.monitor_pause(monitor=monitor)

    assert probe_run(monitor_id=monitor.pk, task_id="scheduled-3") is None
    assert http_target.hits == []
    assert not ProbeResult.objects.filter(monitor=monitor).exists()

    outcome = probe_run(monitor_id=monitor.pk, task_id="manual-1", manual=True)

    assert outcome is not None and outcome["success"] is True
    assert len(http_target.hits) == 1
    assert ProbeResult.objects.get(monitor=monitor).task_id == "manual-1"
    monitor.refresh_from_db()
    assert monitor.status == MonitorStatus.PAUSED  # a manual check does not unpause


def test_a_probe_for_a_deleted_monitor_does_nothing(alice, http_target):
    monitor = monitor_for(alice, http_target)
    services.monitor_delete(monitor=monitor)

    assert probe_run(monitor_id=monitor.pk, task_id="late") is None
    assert http_target.hits == []


def test_the_monitors_method_headers_and_keyword_are_used(alice, http_target):
    http_target.set(body=b"all systems nominal")
    monitor = monitor_for(alice, http_target, method="HEAD", headers={"X-Probe": "lookout"}, keyword="nominal")

    probe_run(monitor_id=monitor.pk, task_id=str(uuid.uuid4()))

    hit = http_target.hits[0]
    assert hit.method == "HEAD"
    assert hit.headers.get("X-Probe") == "lookout"
    # HEAD has no body, so the keyword cannot be found.
    assert ProbeResult.objects.get(monitor=monitor).success is False


def database_sessions() -> int:
    """Sessions on the test database other than the one asking (from a thread of its own, as a watcher is)."""
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]
    finally:
        connection.close()


def test_no_database_connection_is_held_while_the_probe_waits(alice, http_target):
    monitors = [monitor_for(alice, http_target) for _ in range(5)]
    connections["default"].close()  # the test's own, from creating the monitors
    sessions_while_waiting: list[int] = []
    http_target.set(delay=0.5)
    watcher = threading.Timer(0.25, lambda: sessions_while_waiting.append(database_sessions()))

    watcher.start()
    probes = [threading.Thread(target=probe_run, kwargs={"monitor_id": monitor.pk, "task_id": str(uuid.uuid4())})
              for monitor in monitors]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join(10)
    watcher.join()

    # The probes' threads hold none. The batcher that read their monitors may still hold its one connection (kept
    # while busy, given back after lookout.probes.batching.KEEP_SECONDS idle): one for the process, not one per probe.
    assert sessions_while_waiting[0] <= 1
    assert ProbeResult.objects.filter(monitor__in=monitors).count() == 5


def test_each_probe_counts_in_the_fleet_wide_metric(alice, http_target):
    monitor = monitor_for(alice, http_target)
    successes, failures = probes_total("success"), probes_total("failure")

    probe_run(monitor_id=monitor.pk, task_id="t1")
    http_target.set(status=500)
    probe_run(monitor_id=monitor.pk, task_id="t2")

    assert probes_total("success") == successes + 1
    assert probes_total("failure") == failures + 1
    assert REGISTRY.get_sample_value("lookout_probe_duration_seconds_count",
                                     {"type": "http", "result": "success", "region": settings.LOOKOUT_REGION}) >= 1


def test_a_check_now_result_is_written_at_once_while_a_scheduled_one_waits_for_company(alice, http_target,
                                                                                       monkeypatch):
    # A linger far longer than the joins below: a result that waited for company would fail the test.
    monkeypatch.setattr(result_writes, "_linger_seconds", 60.0)
    monitor = monitor_for(alice, http_target)
    outcomes: dict[str, dict | None] = {}

    def run(task_id: str, manual: bool) -> None:
        outcomes[task_id] = probe_run(monitor_id=monitor.pk, task_id=task_id, manual=manual)

    scheduled = threading.Thread(target=run, args=("scheduled-waits", False), daemon=True)
    scheduled.start()
    scheduled.join(2)
    assert scheduled.is_alive() and not ProbeResult.objects.filter(task_id="scheduled-waits").exists()

    manual = threading.Thread(target=run, args=("check-now", True))
    manual.start()
    manual.join(20)  # ends the lingering batch too: both are written together
    scheduled.join(20)

    assert not manual.is_alive() and not scheduled.is_alive()
    assert outcomes["check-now"]["success"] is True and outcomes["scheduled-waits"]["success"] is True
    assert set(ProbeResult.objects.filter(monitor=monitor).values_list("task_id", flat=True)) == {
        "scheduled-waits", "check-now"}
