"""A batch of scheduled runs (lookout.probes.runs): each run probed and recorded once, under its own run id.

transaction=True: the process's batchers read and write with connections of their own (committed rows only).
"""

import threading
import time

import pytest

from lookout.monitors import services
from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.spec import MonitorSpec
from lookout.probes.runs import BatchInvalid, probe_batch_run
from lookout.probes.tasks import probe_batch

pytestmark = pytest.mark.django_db(transaction=True)


def monitor_for(owner, target, name: str) -> Monitor:
    return services.monitor_create(owner=owner, spec=MonitorSpec(name=name, url=target.url + name, interval=60))


def runs_of(monitors: list[Monitor], *, round_: str = "r1") -> list[list]:
    due = time.time()
    return [[monitor.pk, f"run-{monitor.pk}-{round_}", due] for monitor in monitors]


def recorded() -> list[tuple[int, str]]:
    return sorted(ProbeResult.objects.values_list("monitor_id", "task_id"))


def test_every_run_of_a_batch_is_probed_concurrently_and_recorded_once_with_its_run_id(alice, http_target):
    http_target.set(delay=1.0)
    monitors = [monitor_for(alice, http_target, f"m{n}") for n in range(8)]
    runs = runs_of(monitors)

    assert probe_batch_run(runs=runs, expires=time.time() + 60) == 8

    assert recorded() == sorted((monitor_id, task_id) for monitor_id, task_id, _ in runs)
    hits = sorted(hit.at for hit in http_target.hits)
    # Concurrently: every probe reached the target before the first one's answer (1 s later) ended it.
    assert len(hits) == 8 and hits[-1] - hits[0] < 1.0


def test_the_same_batch_twice_and_one_run_in_two_batches_are_recorded_once(alice, http_target):
    monitors = [monitor_for(alice, http_target, f"m{n}") for n in range(4)]
    runs = runs_of(monitors)

    probe_batch_run(runs=runs, expires=None)
    probe_batch_run(runs=runs, expires=None)  # the batch delivered again (say its worker died before the ack)
    # Two batches at once holding the same run (beat re-sent it after a lost confirm, in another batch).
    overlapping = [runs[:2] + runs_of(monitors[2:], round_="r2"), runs[1:2]]
    threads = [threading.Thread(target=probe_batch_run, kwargs={"runs": batch, "expires": None})
               for batch in overlapping]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    expected = [(monitor_id, task_id) for monitor_id, task_id, _ in runs + runs_of(monitors[2:], round_="r2")]
    assert recorded() == sorted(expected)


def test_runs_past_their_expiry_are_not_probed(alice, http_target):
    monitors = [monitor_for(alice, http_target, f"m{n}") for n in range(3)]

    assert probe_batch_run(runs=runs_of(monitors), expires=time.time() - 1) == 0

    assert http_target.hits == [] and recorded() == []


def test_a_paused_or_deleted_monitor_s_run_is_dropped(alice, http_target):
    kept, paused, deleted = (monitor_for(alice, http_target, name) for name in ("kept", "paused", "deleted"))
    runs = runs_of([kept, paused, deleted])
    services.monitor_pause(monitor=paused)
    deleted_id = deleted.pk
    services.monitor_delete(monitor=deleted)

    assert probe_batch_run(runs=runs, expires=None) == 1

    assert recorded() == [(kept.pk, f"run-{kept.pk}-r1")]
    assert [hit.path for hit in http_target.hits] == ["/kept"]
    assert not ProbeResult.objects.filter(monitor_id=deleted_id).exists()


def test_a_malformed_batch_is_refused_and_the_task_runs_as_a_worker_runs_it(alice, http_target):
    monitor = monitor_for(alice, http_target, "m")
    with pytest.raises(BatchInvalid):
        probe_batch_run(runs=[["not an id", "run-x", time.time()]], expires=None)

    probe_batch.apply(kwargs={"runs": runs_of([monitor]), "expires": time.time() + 60})

    assert recorded() == [(monitor.pk, f"run-{monitor.pk}-r1")]
