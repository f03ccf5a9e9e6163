"""Batched runs (issue 18) through a real `lookout worker`, RabbitMQ and PostgreSQL: every run recorded once.

No beat here: the tests publish batch messages themselves in the contract's format (task
lookout.probes.tasks.probe_batch on `probes`, kwargs {"runs": [[monitor, task_id, due], ...], "expires": ...},
the message's id a uuid5 over its sorted run ids, its expiry the batch's, header lookout_due_at its earliest due),
so what the worker does with them is all that is tested. Results are read from the database, probes from the
targets' own logs of hits.
"""

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from celery import Celery
from kombu import Connection

from support.http_target import HttpTarget
from support.stack import LookoutStack, wait_until

pytestmark = pytest.mark.e2e

BATCH_TASK = "lookout.probes.tasks.probe_batch"
Run = tuple[int, str, float]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """api (to create monitors) and one worker; beat stays off, so every run is one the test published."""
    stack = LookoutStack(tmp_path_factory.mktemp("batched"), name=f"lookout_batched_{uuid.uuid4().hex[:8]}")
    try:
        stack.run("migrate")
        stack.token = stack.run("manage", "createapiuser", "e2e").strip()
        stack.start("api", "api", "--bind", f"127.0.0.1:{stack.api_port}")
        stack.start("worker", "worker", LOOKOUT_METRICS_PORT=str(stack.worker_metrics_port), LOOKOUT_DB_POOL_SIZE="4")
        wait_until(lambda: stack._ok(stack.api_port, "/readyz"), timeout=60, what="the API's /readyz")
        wait_until(lambda: stack._ok(stack.worker_metrics_port, "/readyz"), timeout=60, what="the worker")
        yield stack
    finally:
        stack.down()


def monitors_create(stack: LookoutStack, target: HttpTarget, count: int, prefix: str) -> list[int]:
    ids = []
    for index in range(count):
        response = stack.api("POST", "monitors/", json={
            "name": f"{prefix} {index}", "url": f"{target.url}{prefix}{index}", "interval": 60, "timeout": 10})
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def runs_for(monitor_ids: list[int], tag: str) -> list[Run]:
    due = time.time()
    return [(monitor_id, f"run-{tag}-{monitor_id}", due) for monitor_id in monitor_ids]


def batch_publish(stack: LookoutStack, runs: list[Run], *, expires: float | None) -> None:
    """One batch message as beat sends it."""
    sender = Celery(set_as_current=False)
    task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, ",".join(sorted(task for _, task, _ in runs))))
    # The connection given, not the broker URL: Celery prefers this process's CELERY_BROKER_URL (the test vhost).
    with Connection(stack.env["CELERY_BROKER_URL"]) as connection:
        sender.send_task(BATCH_TASK, kwargs={"runs": [list(run) for run in runs], "expires": expires},
                         task_id=task_id, queue="probes", connection=connection,
                         expires=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                         headers={"lookout_due_at": min(due for _, _, due in runs)})


def results_of(stack: LookoutStack, monitor_ids: list[int]) -> list[tuple[int, str]]:
    with psycopg.connect(stack.database_url.replace("postgres://", "postgresql://")) as db:
        return db.execute("SELECT monitor_id, task_id FROM monitors_proberesult WHERE monitor_id = ANY(%s)",
                          (monitor_ids,)).fetchall()


def test_each_run_of_a_batch_is_recorded_once_also_when_delivered_twice_or_in_two_batches(stack, targets):
    target = targets()
    ids = monitors_create(stack, target, 12, "once")
    first = runs_for(ids[:8], "a")
    second = [*first[:2], *runs_for(ids[8:], "b")]  # two runs of the first batch again, in another batch
    expires = time.time() + 60

    batch_publish(stack, first, expires=expires)
    batch_publish(stack, first, expires=expires)  # the same batch re-sent (a lost confirm)
    batch_publish(stack, second, expires=expires)

    expected = sorted({(monitor, task) for monitor, task, _ in first + second})
    wait_until(lambda: sorted(results_of(stack, ids)) == expected, timeout=30, what="every run recorded")
    time.sleep(1)  # anything still arriving would be a second result
    assert sorted(results_of(stack, ids)) == expected


def test_an_expired_batch_is_not_probed(stack, targets):
    target = targets()
    expired_ids, later_ids = monitors_create(stack, target, 3, "gone"), monitors_create(stack, target, 1, "later")

    batch_publish(stack, runs_for(expired_ids, "expired"), expires=time.time() - 1)
    batch_publish(stack, runs_for(later_ids, "later"), expires=time.time() + 60)  # published after it, on its queue

    wait_until(lambda: results_of(stack, later_ids), timeout=30, what="the later batch's result")
    assert results_of(stack, expired_ids) == []
    assert [hit.path for hit in target.hits] == ["/later0"]


def test_a_worker_killed_mid_batch_has_the_batch_delivered_again_and_each_run_recorded_once(stack, targets, report):
    fast, slow = targets(delay=0.2), targets(delay=3)
    fast_ids, slow_ids = monitors_create(stack, fast, 10, "fast"), monitors_create(stack, slow, 10, "slow")
    ids = fast_ids + slow_ids
    runs = runs_for(fast_ids, "kill") + runs_for(slow_ids, "kill")
    batch_publish(stack, runs, expires=time.time() + 120)

    wait_until(lambda: len(slow.hits) >= 10, timeout=30, what="every slow probe in flight")
    stack.processes["worker"].kill()  # SIGKILL: no chance to finish, record or acknowledge
    stack.processes["worker"].wait()
    stored_at_kill = len(results_of(stack, ids))
    stack.restart("worker")

    wait_until(lambda: {monitor for monitor, _ in results_of(stack, ids)} == set(ids), timeout=45,
               what="a result for every run")
    time.sleep(1.5)  # anything still arriving would be a second result
    results = results_of(stack, ids)
    report(f"worker SIGKILLed mid-batch with {stored_at_kill} of {len(ids)} runs recorded; after the restart "
           f"{len(results)} results, slow target hit {len(slow.hits)} times, fast {len(fast.hits)}")
    assert stored_at_kill == 0, "nothing of a batch is recorded before all its probes finished"
    assert Counter(monitor for monitor, _ in results) == Counter({monitor: 1 for monitor in ids})
    assert sorted(results) == sorted((monitor, task) for monitor, task, _ in runs)
    assert len(slow.hits) == 20, "the batch was delivered again and probed again"


def test_under_lookout_dev_a_batch_on_the_embedded_broker_is_probed_and_recorded(tmp_path, http_target):
    """`lookout dev`: the same gevent worker, on SQLite and kombu's SQLAlchemy broker, takes batches too."""
    import re
    import signal
    import subprocess

    import requests

    from support.stack import LOOKOUT, base_environment, free_port

    port = free_port()
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115
    dev = subprocess.Popen([*LOOKOUT, "dev", "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")],
                           env=base_environment(LOOKOUT_METRICS_PORT=str(free_port())), stdout=log,
                           stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def printed_token() -> str | None:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            match = re.search(r"API token:\s+(\w+)", (tmp_path / "dev.log").read_text())
            return match.group(1) if match else None

        headers = {"Authorization": f"Token {wait_until(printed_token, timeout=90, what='lookout dev')}"}
        api = f"http://127.0.0.1:{port}/api/v1"
        ids = []
        for index in range(3):
            # Hourly: beat runs each once now, then not for an hour, so the next probe of each is the batch's.
            created = requests.post(f"{api}/monitors/", headers=headers, timeout=10,
                                    json={"name": f"dev {index}", "url": f"{http_target.url}d{index}",
                                          "interval": 3600})
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        wait_until(lambda: len(http_target.hits) >= 3, timeout=60, what="the monitors' first runs from beat")
        first = len(http_target.hits)
        runs = runs_for(ids, "dev")
        sender = Celery(set_as_current=False)
        with Connection(f"sqla+sqlite:///{tmp_path / 'data' / 'broker.sqlite3'}") as connection:
            sender.send_task(BATCH_TASK, kwargs={"runs": [list(run) for run in runs], "expires": time.time() + 60},
                             task_id=str(uuid.uuid4()), queue="probes", connection=connection,
                             headers={"lookout_due_at": runs[0][2]})

        def successes(monitor_id: int) -> int:
            listed = requests.get(f"{api}/results/?monitor={monitor_id}", headers=headers, timeout=10).json()
            return sum(1 for result in listed["results"] if result["success"])

        # beat's first run and the batch's, each recorded
        wait_until(lambda: all(successes(monitor_id) == 2 for monitor_id in ids), timeout=60,
                   what="the batch's results")
        assert sorted(hit.path for hit in http_target.hits[first:]) == [f"/d{index}" for index in range(3)]
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
