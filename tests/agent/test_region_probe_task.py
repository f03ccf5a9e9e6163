"""The region's probe task in this process: what it sends home, and what becomes of a run it cannot finish."""

import threading
import time

import pytest
from celery.exceptions import Reject

from lookout import __version__
from lookout.agent import context, tasks
from lookout.agent.keys import region_key_derive, secrets_seal
from lookout.agent.publishing import RESULTS_TASK, ResultPublisher
from lookout.agent.runs import RunInvalid, spec_json
from lookout.probes.engine import ProbeSpec, TargetPolicy

KEY = region_key_derive("material-" + "q" * 30, "eu-west")


@pytest.fixture
def region():
    before = context.configured()
    yield context.configure(region="eu-west", key=KEY, policy=TargetPolicy(allow_private=True))
    context._current = before


class Recorder:
    def __init__(self, error: Exception | None = None) -> None:
        self.results: list[dict] = []
        self.error = error

    def publish(self, result: dict) -> None:
        if self.error is not None:
            raise self.error
        self.results.append(result)


@pytest.fixture
def publisher(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(tasks, "results_publisher", lambda app: recorder)
    monkeypatch.setattr(tasks, "UNSENT_PAUSE_SECONDS", 0)
    return recorder


def run_of(url: str, **fields) -> dict:
    return {"monitor": 3, "region": "eu-west", "due": time.time(), "expires": None, "task_id": "task-3",
            "spec": spec_json(ProbeSpec(url, timeout=5)), "sealed": secrets_seal(KEY, {"X-Secret": "v"}, None),
            "token": "tok", "recheck": False, **fields}


def test_it_probes_with_the_region_s_user_agent_and_secrets_and_hands_the_result_on(region, publisher, http_target):
    tasks.region_probe(run=run_of(http_target.url))

    [hit] = http_target.hits
    assert (hit.headers["User-Agent"], hit.headers["X-Secret"]) == (f"Lookout/{__version__} (region eu-west)", "v")
    [result] = publisher.results
    assert (result["monitor"], result["task_id"], result["success"], result["status_code"]) == (3, "task-3", True, 200)
    assert tasks.in_flight() == 0


def test_a_result_that_cannot_be_sent_sends_the_run_back_to_its_queue(region, publisher, http_target):
    publisher.error = ConnectionError("broker gone")

    with pytest.raises(Reject) as rejected:
        tasks.region_probe(run=run_of(http_target.url))

    assert rejected.value.requeue is True
    assert tasks.in_flight() == 0


def test_a_run_for_another_region_is_refused_unprobed(region, publisher, http_target):
    with pytest.raises(RunInvalid, match="region 'us-east'"):
        tasks.region_probe(run=run_of(http_target.url, region="us-east"))

    assert http_target.hits == [] and publisher.results == []


def test_a_run_sealed_under_another_key_is_refused_unprobed(region, publisher, http_target):
    other = region_key_derive("material-" + "q" * 30, "us-east")

    with pytest.raises(RunInvalid, match="another key"):
        tasks.region_probe(run=run_of(http_target.url, sealed=secrets_seal(other, {"X-Secret": "v"}, None)))

    assert http_target.hits == [] and publisher.results == []


def test_without_a_configured_region_it_says_what_is_missing(publisher, http_target):
    before = context.configured()
    context._current = None
    try:
        with pytest.raises(RuntimeError, match="configure"):
            tasks.region_probe(run=run_of(http_target.url))
    finally:
        context._current = before


class SlowApp:
    """Stands in for the Celery app: each publish takes a while (a confirm round trip), or fails."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[tuple[str, dict, dict]] = []
        self.fail = fail

    def send_task(self, name: str, *, kwargs: dict, **options) -> None:
        time.sleep(0.2)
        if self.fail:
            raise ConnectionError("not confirmed")
        self.sent.append((name, kwargs, options))


def publish_at_once(publisher: ResultPublisher, count: int) -> list[BaseException | None]:
    errors: list[BaseException | None] = [None] * count

    def one(i: int) -> None:
        try:
            publisher.publish({"monitor": i})
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    threads[0].start()
    time.sleep(0.05)  # the first batch starts alone; the others arrive while it is being confirmed
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(10)
    return errors


def test_results_finishing_together_go_home_in_one_persistent_undeclared_message():
    app = SlowApp()

    errors = publish_at_once(ResultPublisher(app), 6)  # type: ignore[arg-type]

    assert errors == [None] * 6
    assert [len(kwargs["results"]) for _, kwargs, _ in app.sent] == [1, 5]
    name, _, options = app.sent[0]
    assert name == RESULTS_TASK
    assert (options["exchange"], options["routing_key"], options["declare"], options["delivery_mode"]) == (
        "results", "results", [], 2)


def test_a_failed_publish_fails_every_caller_of_its_batch():
    errors = publish_at_once(ResultPublisher(SlowApp(fail=True)), 4)  # type: ignore[arg-type]

    assert all(isinstance(error, ConnectionError) for error in errors)


def test_inside_the_django_worker_s_app_a_result_goes_to_results_as_from_an_agent(region, http_target):
    """`lookout worker --region X` runs the same task on the home Celery app: its results take the same way."""
    from kombu import Connection, Exchange, Queue

    from lookout.config.celery_app import app

    queue = Queue("results", Exchange("results", type="direct", durable=True), routing_key="results", durable=True)
    with Connection(app.conf.broker_url) as connection:
        queue(connection.default_channel).declare()
        queue(connection.default_channel).purge()
        run = run_of(http_target.url)

        tasks.region_probe.apply(kwargs={"run": run})  # apply: the task as a worker runs it, bound to this app

        message = connection.SimpleQueue(queue).get(timeout=10)
        message.ack()
    assert message.headers["task"] == RESULTS_TASK
    assert message.properties["delivery_mode"] == 2
    assert message.decode()[1]["results"][0]["task_id"] == "task-3"
