"""Probes record through their process's batchers: many at once, each durable by the time probe_run returns.

transaction=True: the batchers' threads have connections of their own, which see committed rows only.
"""

import threading
import time

import pytest
from django.db import DataError, connections

from lookout.monitors import services
from lookout.monitors.models import Monitor, MonitorStatus, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.probes.batching import Batcher
from lookout.probes.results import ProbeRecord, probe_results_record
from lookout.probes.services import probe_run

pytestmark = pytest.mark.django_db(transaction=True)


def monitor_for(owner, target, name: str, **fields) -> Monitor:
    return services.monitor_create(owner=owner, spec=MonitorSpec(name=name, url=target.url + name, interval=60,
                                                                 **fields))


def test_probes_finishing_together_are_each_recorded_and_committed_before_probe_run_returns(alice, http_target):
    http_target.set(delay=0.2, body=b"all good")  # in flight together: their results reach the writer together
    monitors = [monitor_for(alice, http_target, f"m{n}") for n in range(4)]
    broken = monitor_for(alice, http_target, "broken", keyword="missing", failure_threshold=1)
    seen: dict[int, tuple] = {}

    def probe_and_look(monitor: Monitor) -> None:
        outcome = probe_run(monitor_id=monitor.pk, task_id=f"task-{monitor.pk}")
        # This thread's own connection, not the writer's: the row is visible, so it was committed already.
        stored = ProbeResult.objects.filter(monitor=monitor).values_list("id", "task_id").first()
        seen[monitor.pk] = (outcome["result_id"], f"task-{monitor.pk}") == stored
        connections.close_all()

    threads = [threading.Thread(target=probe_and_look, args=(monitor,)) for monitor in [*monitors, broken]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert seen == {monitor.pk: True for monitor in [*monitors, broken]}
    statuses = dict(Monitor.objects.values_list("pk", "status"))
    assert statuses == {**{monitor.pk: MonitorStatus.UP for monitor in monitors}, broken.pk: MonitorStatus.DOWN}


def test_a_result_the_database_refuses_fails_its_own_probe_only(alice, http_target):
    monitors = [monitor_for(alice, http_target, f"m{n}") for n in range(4)]
    first_started, release = threading.Event(), threading.Event()

    def write_after_release(records: list[tuple[int, ProbeRecord]]) -> list[ProbeResult | None]:
        if not first_started.is_set():  # hold the first batch, so the others queue up as one
            first_started.set()
            assert release.wait(10)
        return probe_results_record(records=records)

    writer = Batcher(write_after_release, name="test-result-writes")
    outcomes: dict[int, object] = {}

    def write(monitor: Monitor, error: str) -> None:
        record = ProbeRecord(checked_at=monitor.created_at, success=not error, status_code=200,
                             response_time_ms=1.0, error=error, task_id=f"task-{monitor.pk}")
        try:
            outcomes[monitor.pk] = writer.run((monitor.pk, record))
        except Exception as exc:
            outcomes[monitor.pk] = exc

    threads = [threading.Thread(target=write, args=(monitors[0], ""))]
    threads[0].start()
    assert first_started.wait(10)
    # PostgreSQL text cannot hold NUL: this result fails the batch it is in, and only its own probe.
    errors = {monitors[1].pk: "", monitors[2].pk: "bad \x00 byte", monitors[3].pk: ""}
    threads += [threading.Thread(target=write, args=(monitor, errors[monitor.pk])) for monitor in monitors[1:]]
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while writer._queue.qsize() < 3:  # all three wait for the held batch (the queue is private: a test's view)
        assert time.monotonic() < deadline, "the results never reached the writer"
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(30)

    assert isinstance(outcomes.pop(monitors[2].pk), DataError)
    assert all(isinstance(result, ProbeResult) for result in outcomes.values())
    assert sorted(ProbeResult.objects.values_list("monitor_id", flat=True)) == sorted(outcomes)
