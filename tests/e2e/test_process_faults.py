"""Processes dying and the broker going away, with real `lookout` processes: nothing lost, nothing stored twice,
no storm afterwards.

One stack for the module. Worker, beat and api reach RabbitMQ through one proxy (`broker`), so the test can
take the broker away from all of them without touching the machine's RabbitMQ, which other runs share: `cut()`
resets every connection and refuses new ones until `restore()`, as a RabbitMQ restart does (its clients see
their connections drop, then refused connections until it is back). The api reaches PostgreSQL through a proxy
of its own (`api_database`), slowed in the api drain test so requests are still in flight when it is stopped.
Results are read from the database; probes from the targets' own logs of hits.
"""

import re
import signal
import threading
import time
import uuid
from collections import Counter

import psycopg
import pytest
import requests
from celery import Celery
from kombu import Connection

from support.http_target import HttpTarget
from support.stack import LookoutStack, wait_until
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

RECOVERY_LIMIT_SECONDS = 20
PROBE_TASK = "lookout.probes.tasks.probe_monitor"
# A message received: beat's batch of runs (probe_batch), or a single run (probe_monitor: check-now, sent again).
RECEIVED = re.compile(r"Task lookout\.probes\.tasks\.probe_(?:batch|monitor)\[([0-9a-f-]+)\] received")
RECORDED_ALREADY = re.compile(r"(\d+) probe results were recorded already")


@pytest.fixture(scope="module")
def broker():
    proxy = TcpProxy("127.0.0.1", 5672)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def api_database():
    proxy = TcpProxy("127.0.0.1", 5432)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, broker, api_database):
    stack = LookoutStack(tmp_path_factory.mktemp("faults"), name=f"lookout_faults_{uuid.uuid4().hex[:8]}",
                         env={"LOOKOUT_WORKER_CONCURRENCY": "50"})
    try:
        broker_url = {"CELERY_BROKER_URL": broker.through(stack.env["CELERY_BROKER_URL"])}
        yield stack.up(api={**broker_url, "DATABASE_URL": api_database.through(stack.database_url)},
                       worker=broker_url, beat=broker_url)
    finally:
        stack.down()


def monitors_create(stack: LookoutStack, target: HttpTarget, count: int, **fields) -> list[int]:
    ids = []
    for index in range(count):
        response = stack.api("POST", "monitors/", json={"name": f"fault {index}", "url": f"{target.url}m{index}",
                                                        **fields})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def results_of(stack: LookoutStack, monitor_ids: list[int]) -> list[tuple[int, str]]:
    """(monitor id, task id) of every stored result of these monitors."""
    with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://")) as db:
        return db.execute("SELECT monitor_id, task_id FROM monitors_proberesult WHERE monitor_id = ANY(%s)",
                          (monitor_ids,)).fetchall()


def recorded_already(stack: LookoutStack) -> int:
    """Results the worker recognised as stored already (probes delivered again), from its logs."""
    return sum(int(count) for count in RECORDED_ALREADY.findall(stack.logs("worker")))


def monitors_pause(stack: LookoutStack, monitor_ids: list[int]) -> None:
    """Done with them: they stop loading the worker for the next test."""
    for monitor_id in monitor_ids:
        assert stack.api("POST", f"monitors/{monitor_id}/pause/").status_code == 200


def test_a_worker_killed_mid_batch_has_its_probes_delivered_again_and_each_result_stored_once(stack, targets,
                                                                                              report):
    fast, slow = targets(delay=0.3), targets(delay=3)
    # One run each in this test (interval 60 s): every monitor must end with exactly one result.
    fast_ids = monitors_create(stack, fast, 20, interval=60, timeout=10)
    slow_ids = monitors_create(stack, slow, 20, interval=60, timeout=10)
    ids = fast_ids + slow_ids
    wait_until(lambda: len(slow.hits) >= 20, timeout=30, what="every slow probe in flight")
    # Killed while the fast probes' results are being written and acknowledged and the slow ones are in flight.
    wait_until(lambda: results_of(stack, fast_ids), timeout=15, interval=0.01, what="the first results")
    worker = stack.processes["worker"]
    worker.kill()  # SIGKILL: no chance to finish, acknowledge or say goodbye
    worker.wait()
    killed = time.monotonic()
    stored_at_kill = len(results_of(stack, ids))
    hits_at_kill = len(fast.hits) + len(slow.hits)
    stack.restart("worker")
    restarted = time.monotonic() - killed
    wait_until(lambda: {monitor for monitor, _ in results_of(stack, ids)} == set(ids), timeout=30,
               what="a result for every monitor")
    all_stored = time.monotonic() - killed
    time.sleep(1.5)  # anything still arriving would be a second result

    received = Counter(RECEIVED.findall(stack.logs("worker")))
    delivered_again = sum(1 for count in received.values() if count > 1)
    suppressed_by_kill = recorded_already(stack)
    probed_again = len(fast.hits) + len(slow.hits) - hits_at_kill

    # The kill seldom lands between a batch's commit and its acknowledgements, so that case is also made on
    # purpose: five stored probes' messages sent again with their task ids, as the broker redelivers them.
    fast_hits = len(fast.hits)
    again = [(monitor, task) for monitor, task in results_of(stack, fast_ids)][:5]
    sender = Celery(set_as_current=False)
    # The connection given, not the broker URL: Celery prefers this process's CELERY_BROKER_URL (the test vhost).
    with Connection(stack.env["CELERY_BROKER_URL"]) as connection:
        for monitor, task in again:
            sender.send_task(PROBE_TASK, args=[monitor], task_id=task, queue="probes", connection=connection)
    try:
        wait_until(lambda: recorded_already(stack) >= suppressed_by_kill + len(again), timeout=20,
                   what="the probes sent again to be recognised")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; hits {len(fast.hits) - fast_hits}:\n{stack.log('worker')}") from None

    results = results_of(stack, ids)
    report(f"worker SIGKILLed with {stored_at_kill} of {len(ids)} results stored and {hits_at_kill} probes "
           f"started: {delivered_again} messages delivered again ({probed_again} probed again), "
           f"{suppressed_by_kill} of them stored already before the kill (not stored twice); worker ready again "
           f"{restarted:.1f} s after the kill, every result stored {all_stored:.1f} s after it; "
           f"{len(again)} stored probes sent again on purpose: probed again {len(fast.hits) - fast_hits}, "
           f"stored again 0 of {recorded_already(stack) - suppressed_by_kill} recognised")
    per_monitor = Counter(monitor for monitor, _ in results)
    assert per_monitor == Counter({monitor: 1 for monitor in ids}), per_monitor
    assert len({task for _, task in results}) == len(ids)
    # Beat batches the runs due together: the slow probes came in one message or a few, each delivered again whole.
    assert delivered_again >= 1, "every message with a slow probe in flight at the kill is delivered again"
    assert len(slow.hits) == 40, "every slow probe, in flight at the kill, runs again"
    monitors_pause(stack, ids)


def test_a_worker_stopped_with_sigterm_finishes_its_probes_first(stack, targets, report):
    slow = targets(delay=3)
    ids = monitors_create(stack, slow, 10, interval=60, timeout=10)
    wait_until(lambda: len(slow.hits) >= 10, timeout=30, what="every probe in flight")
    worker = stack.processes["worker"]
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    drained = time.monotonic() - signalled
    stored_by_exit = len(results_of(stack, ids))
    stack.restart("worker")
    wait_until(lambda: {monitor for monitor, _ in results_of(stack, ids)} == set(ids), timeout=30,
               what="a result for every monitor")
    time.sleep(1.0)

    results = results_of(stack, ids)
    report(f"worker SIGTERMed with 10 probes in flight (3 s each): exited after {drained:.2f} s with "
           f"{stored_by_exit} of 10 results stored; {len(slow.hits) - 10} probed again after the restart")
    assert worker.returncode == 0, stack.log("worker")
    assert Counter(monitor for monitor, _ in results) == Counter({monitor: 1 for monitor in ids})
    assert stored_by_exit == 10, "a warm shutdown finishes the probes in flight and stores their results"
    monitors_pause(stack, ids)


def test_the_api_stopped_with_sigterm_answers_the_requests_in_flight(stack, api_database, targets, report):
    target = targets()
    api_database.delay = 0.02  # every round trip to PostgreSQL ~40 ms: a creation takes seconds
    answers: dict[str, requests.Response | Exception] = {}

    def create(name: str) -> None:
        try:
            answers[name] = stack.api("POST", "monitors/", json={"name": name, "url": target.url, "interval": 60},
                                      timeout=30)
        except requests.RequestException as exc:
            answers[name] = exc

    names = [f"drain {index}" for index in range(6)]  # within the api's 2 workers x 4 threads
    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # every request accepted and waiting on the database
        api = stack.processes["api"]
        signalled = time.monotonic()
        api.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        answered = time.monotonic() - signalled
        api.wait(timeout=30)
        drained = time.monotonic() - signalled
    finally:
        api_database.delay = 0.0
    stack.restart("api")

    statuses = {name: getattr(answer, "status_code", repr(answer)) for name, answer in answers.items()}
    report(f"api SIGTERMed with {len(names)} requests in flight: all answered {answered:.2f} s after the signal, "
           f"exited {drained:.2f} s after it; answers {sorted(Counter(statuses.values()).items())}")
    assert statuses == {name: 201 for name in names}, statuses
    stored = {monitor["name"] for monitor in stack.api("GET", "monitors/?page_size=200").json()["results"]}
    assert set(names) <= stored
    assert api.returncode == 0, stack.log("api")
    assert "Traceback" not in stack.logs("api")


def test_after_the_broker_restarts_probing_resumes_within_20_s_without_a_storm(stack, broker, targets, report):
    target = targets()
    interval, count = 2, 10  # 5 probes due a second
    ids = monitors_create(stack, target, count, interval=interval)
    wait_until(lambda: len(target.hits) >= 3 * count, timeout=30, what="steady probing")
    cut_at = time.time()
    broker.cut()
    try:
        # Without the broker the API still manages monitors; only check-now answers 503 (nothing was queued).
        ready = requests.get(f"{stack.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["broker"].startswith("unavailable"), ready.text
        assert stack.api("PATCH", f"monitors/{ids[0]}/", json={"name": "renamed"}).status_code == 200
        assert stack.api("POST", f"monitors/{ids[0]}/check/").status_code == 503
        time.sleep(max(0.0, cut_at + 6 - time.time()))
        during = len(target.hits_between(cut_at + 1, time.time()))
    finally:
        broker.restore()
    back_at = time.time()
    first = wait_until(lambda: target.hits_between(back_at, time.time()), timeout=RECOVERY_LIMIT_SECONDS + 10,
                       interval=0.05, what="a probe after the broker came back")[0].at
    recovery = first - back_at
    window = 10.0
    time.sleep(max(0.0, first + window - time.time()))
    after = target.hits_between(first, first + window)
    per_monitor = Counter(hit.path for hit in after)
    rates = [len(target.hits_between(first + second, first + second + 2)) / 2 for second in range(0, 10, 2)]
    check = stack.api("POST", f"monitors/{ids[0]}/check/")
    report(f"broker away {back_at - cut_at:.1f} s ({during} probes meanwhile): first probe {recovery:.2f} s after "
           f"it was back (limit {RECOVERY_LIMIT_SECONDS} s); then {len(after)} probes in {window:g} s "
           f"(schedule: {count * window / interval:g}), per 2 s window {rates} probes/s (due {count / interval:g}/s), "
           f"most for one monitor {max(per_monitor.values())}")
    assert recovery < RECOVERY_LIMIT_SECONDS
    # No storm: at most one late run per monitor on top of what its schedule says for the window.
    assert max(per_monitor.values()) <= window / interval + 1, per_monitor
    assert len(after) <= count * (window / interval + 1)
    assert set(per_monitor) == {f"/m{index}" for index in range(count)}, "every monitor probed again"
    assert check.status_code == 202, check.text
    stack.assert_running()
