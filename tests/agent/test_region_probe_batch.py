"""A region's batch of runs (lookout.agent.probe_batch): each run probed, its results sent home together."""

import time

import pytest
from celery.exceptions import Reject
from kombu import Connection, Exchange, Queue

from lookout.agent import context, tasks
from lookout.agent.keys import region_key_derive, secrets_seal
from lookout.agent.publishing import RESULTS_TASK
from lookout.agent.runs import spec_json
from lookout.probes.engine import ProbeSpec, TargetPolicy

KEY = region_key_derive("material-" + "q" * 30, "eu-west")


@pytest.fixture
def region():
    before = context.configured()
    yield context.configure(region="eu-west", key=KEY, policy=TargetPolicy(allow_private=True))
    context._current = before


def run_of(url: str, monitor: int, **fields) -> dict:
    return {"monitor": monitor, "region": "eu-west", "due": time.time(), "expires": time.time() + 60,
            "task_id": f"task-{monitor}", "spec": spec_json(ProbeSpec(f"{url}m{monitor}", timeout=5)),
            "sealed": secrets_seal(KEY, {"X-Secret": "v"}, None), "token": f"tok-{monitor}", "recheck": False,
            **fields}


def test_a_batch_s_results_go_home_through_the_broker_and_runs_it_cannot_probe_are_left_out(region, http_target):
    from lookout.config.celery_app import app

    queue = Queue("results", Exchange("results", type="direct", durable=True), routing_key="results", durable=True)
    runs = [run_of(http_target.url, monitor) for monitor in range(1, 6)]
    runs.append(run_of(http_target.url, 6, region="us-east"))  # another region's: refused
    runs.append(run_of(http_target.url, 7, expires=time.time() - 1))  # past its own expiry: skipped
    with Connection(app.conf.broker_url) as connection:
        queue(connection.default_channel).declare()
        queue(connection.default_channel).purge()

        tasks.region_probe_batch.apply(kwargs={"runs": runs})  # as a worker runs it, bound to this app

        results: list[dict] = []
        simple = connection.SimpleQueue(queue)
        while len(results) < 5:
            message = simple.get(timeout=10)
            message.ack()
            assert message.headers["task"] == RESULTS_TASK and message.properties["delivery_mode"] == 2
            results += message.decode()[1]["results"]
    assert sorted((result["task_id"], result["token"], result["success"]) for result in results) == [
        (f"task-{monitor}", f"tok-{monitor}", True) for monitor in range(1, 6)]
    assert sorted(hit.path for hit in http_target.hits) == [f"/m{monitor}" for monitor in range(1, 6)]
    assert all(hit.headers["X-Secret"] == "v" for hit in http_target.hits)
    assert tasks.in_flight() == 0 and tasks.runs_in_flight() == 0


class Failing:
    def publish_many(self, results: list[dict]) -> None:
        raise ConnectionError("broker gone")


def test_results_that_cannot_be_sent_send_the_whole_batch_back_to_its_queue(region, http_target, monkeypatch):
    monkeypatch.setattr(tasks, "results_publisher", lambda app: Failing())
    monkeypatch.setattr(tasks, "UNSENT_PAUSE_SECONDS", 0)

    with pytest.raises(Reject) as rejected:
        tasks.region_probe_batch(runs=[run_of(http_target.url, 1), run_of(http_target.url, 2)])

    assert rejected.value.requeue is True
    assert len(http_target.hits) == 2 and tasks.in_flight() == 0
