"""A real `lookout agent` process with no database, no Django settings and no secret key: it takes a region's run
from probes.<region>, probes a local target with the run's sealed secrets and its region's User-Agent, and sends
the result and its heartbeat home on `results`. Also as a broker user with only the contract's permissions."""

import os
import secrets
import shutil
import subprocess
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from celery import Celery
from kombu import Connection, Exchange, Queue

from lookout import __version__
from lookout.agent.keys import region_key_derive, secrets_seal
from lookout.agent.runs import spec_json
from lookout.probes.engine import ProbeSpec
from support.stack import LOOKOUT, base_environment, free_port, log_tail, processes_stop, wait_until
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

MATERIAL = "home-material-" + secrets.token_urlsafe(24)


def durable_queue(name: str) -> Queue:
    """As the home side declares a region's queue and `results` (lookout manage declarequeues)."""
    return Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)


@pytest.fixture
def region() -> str:
    return f"eu-west-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def broker_url() -> str:
    return os.environ["CELERY_BROKER_URL"]  # this run's own vhost (tests/conftest.py)


@pytest.fixture
def home(broker_url, region):
    """The home side's part: `results` and the region's queue declared, a publisher of runs, a reader of results."""
    queues = [durable_queue("results"), durable_queue(f"probes.{region}")]
    with Connection(broker_url) as connection:
        for queue in queues:
            queue(connection.default_channel).declare()
            queue(connection.default_channel).purge()
        yield Home(connection, region)
        queues[1](connection.default_channel).delete()


class Home:
    def __init__(self, connection: Connection, region: str) -> None:
        self.connection = connection
        self.region = region
        self.app = Celery("home-test", broker=connection.as_uri(include_password=True))
        self.app.conf.broker_transport_options = {"confirm_publish": True}
        self.results = connection.SimpleQueue(durable_queue("results"))

    def run_send(self, run: dict) -> None:
        self.app.send_task("lookout.agent.probe", kwargs={"run": run}, exchange=f"probes.{self.region}",
                           routing_key=f"probes.{self.region}", declare=[], task_id=run["task_id"],
                           expires=60)

    def messages(self, task: str, *, count: int = 1, timeout: float = 30) -> list:
        """The next `count` messages of this task on `results` (others are read and dropped)."""
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(found)} of {count} {task} messages arrived on results in {timeout} s")
            try:
                message = self.results.get(timeout=remaining)
            except self.results.Empty:
                continue
            message.ack()
            if message.headers.get("task") == task:
                found.append(message)
        return found


def agent_start(tmp_path, *, broker_url: str, region: str, key: str, name: str = "agent"):
    # Nothing of the home side: no DATABASE_URL, SECRET_KEY or DJANGO_SETTINGS_MODULE (base_environment drops them).
    env = base_environment(CELERY_BROKER_URL=broker_url, LOOKOUT_REGION=region, LOOKOUT_REGION_KEY=key,
                           LOOKOUT_ALLOW_PRIVATE_TARGETS="true", LOOKOUT_METRICS_PORT=str(free_port()),
                           LOOKOUT_METRICS_HOST="127.0.0.1")
    assert not {"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"} & set(env)
    log = tmp_path / f"{name}.log"
    with open(log, "w") as output:
        process = subprocess.Popen([*LOOKOUT, "agent", "-c", "4"], env=env, stdout=output, stderr=subprocess.STDOUT)
    return process, log, int(env["LOOKOUT_METRICS_PORT"])


def run_of(target_url: str, region: str, key: str) -> dict:
    spec = ProbeSpec(target_url + "health", headers={"Accept": "text/plain"}, expected_status=(200,), timeout=5)
    return {"monitor": 42, "region": region, "due": time.time(), "expires": time.time() + 60,
            "task_id": str(uuid.uuid4()), "spec": spec_json(spec),
            "sealed": secrets_seal(key, {"X-Probe-Secret": "s3cret-header"}, ("alice", "pa55word")),
            "token": "home-hmac-token", "recheck": False}


def probe_and_report(tmp_path, home: Home, http_target, *, broker_url: str, region: str, key: str) -> None:
    agent, log, metrics_port = agent_start(tmp_path, broker_url=broker_url, region=region, key=key)
    try:
        beat = home.messages("lookout.probes.remote.worker_seen", timeout=60)[0]
        run = run_of(http_target.url, region, key)
        home.run_send(run)

        message = home.messages("lookout.probes.remote.results_record")[0]

        hit = wait_until(lambda: http_target.hits, timeout=5)[0]
        assert hit.path == "/health"
        assert hit.headers["X-Probe-Secret"] == "s3cret-header"
        assert hit.headers["Authorization"] == "Basic YWxpY2U6cGE1NXdvcmQ="  # alice:pa55word
        assert hit.headers["User-Agent"] == f"Lookout/{__version__} (region {region})"
        _, kwargs, _ = message.decode()
        [result] = kwargs["results"]
        assert {key_: result[key_] for key_ in ("monitor", "region", "due", "task_id", "token", "recheck")} == {
            key_: run[key_] for key_ in ("monitor", "region", "due", "task_id", "token", "recheck")}
        assert (result["success"], result["status_code"], result["error"]) == (True, 200, "")
        assert result["worker"] == beat.decode()[1]["worker"]
        assert message.properties["delivery_mode"] == 2
        body = message.body if isinstance(message.body, str) else message.body.decode()
        assert "s3cret-header" not in body and "pa55word" not in body

        _, seen, _ = beat.decode()
        assert (seen["region"], seen["version"], seen["in_flight"]) == (region, __version__, 0)
        assert seen["worker"].startswith(f"lookout-agent-{region}@")
        assert abs(seen["at"] - time.time()) < 60
        assert beat.properties["delivery_mode"] == 1
        assert beat.properties["expiration"] == "60000"

        # The counter moves once the task's publish returned: just after home could read the result.
        probed = f'lookout_region_runs_total{{outcome="probed",region="{region}"}} 1.0'
        metrics = wait_until(lambda: (lambda text: probed in text and text)(
            requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text), timeout=5, what=probed)
        assert f'lookout_probes_total{{region="{region}",result="success",type="http"}} 1.0' in metrics
        assert f'lookout_region_runs_total{{outcome="refused",region="{region}"}} 0.0' in metrics
    except BaseException:
        print(log_tail(log))
        raise
    finally:
        processes_stop([agent])
    assert agent.returncode == 0, log_tail(log)


def test_an_agent_probes_a_region_s_run_and_sends_the_result_home(tmp_path, home, http_target, broker_url, region):
    key = region_key_derive(MATERIAL, region)

    probe_and_report(tmp_path, home, http_target, broker_url=broker_url, region=region, key=key)


@pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl to create a broker user")
def test_an_agent_needs_only_the_contract_s_broker_permissions(tmp_path, home, http_target, broker_url, region):
    user, password = f"lookout-agent-test-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    vhost = urlsplit(broker_url).path.lstrip("/") or "/"
    escaped = region.replace("-", "\\-")
    commands = [["add_user", user, password],
                ["set_permissions", "-p", vhost, user, f"^probes\\.{escaped}$", f"^(probes\\.{escaped}|results)$",
                 f"^probes\\.{escaped}$"]]
    try:
        for command in commands:
            subprocess.run(["rabbitmqctl", "-q", *command], check=True, capture_output=True, timeout=60)
        parts = urlsplit(broker_url)
        limited = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"))

        probe_and_report(tmp_path, home, http_target, broker_url=limited, region=region,
                         key=region_key_derive(MATERIAL, region))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)


def test_a_run_whose_result_cannot_be_sent_goes_back_to_its_queue_and_is_sent_later(tmp_path, home, http_target,
                                                                                    broker_url, region):
    key = region_key_derive(MATERIAL, region)
    agent, log, _ = agent_start(tmp_path, broker_url=broker_url, region=region, key=key)
    try:
        home.messages("lookout.probes.remote.worker_seen", timeout=60)
        # No `results` exchange (home has not declared it yet): the broker refuses the result, not the run.
        home.results.close()
        with Connection(broker_url) as admin:
            durable_queue("results")(admin.default_channel).delete()
            Exchange("results")(admin.default_channel).delete()
        run = run_of(http_target.url, region, key)
        home.run_send(run)
        wait_until(lambda: "the run goes back to its queue" in log.read_text(), timeout=20, what="a failed send")

        with Connection(broker_url) as again:
            durable_queue("results")(again.default_channel).declare()
            home.results = again.SimpleQueue(durable_queue("results"))
            message = home.messages("lookout.probes.remote.results_record", timeout=30)[0]
            message_body = message.decode()

        [result] = message_body[1]["results"]
        assert (result["task_id"], result["success"]) == (run["task_id"], True)
        assert len(http_target.hits) >= 2  # probed again once delivered again
    except BaseException:
        print(log_tail(log))
        raise
    finally:
        processes_stop([agent])


def test_an_agent_rides_out_a_broker_outage_and_probes_what_waited(tmp_path, home, http_target, broker_url, region):
    key = region_key_derive(MATERIAL, region)
    parts = urlsplit(broker_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    agent, log, _ = agent_start(tmp_path, broker_url=proxy.through(broker_url), region=region, key=key)
    try:
        home.messages("lookout.probes.remote.worker_seen", timeout=60)
        proxy.cut()
        run = run_of(http_target.url, region, key)
        home.run_send(run)  # home's own connection: the run waits in the region's queue
        time.sleep(5)
        assert agent.poll() is None, log_tail(log)
        proxy.restore()

        message = home.messages("lookout.probes.remote.results_record", timeout=60)[0]

        assert message.decode()[1]["results"][0]["task_id"] == run["task_id"]
        # The heartbeat resumes on the new connection too (at most 15 s after its last attempt).
        home.messages("lookout.probes.remote.worker_seen", timeout=30)
    except BaseException:
        print(log_tail(log, 20000))
        raise
    finally:
        processes_stop([agent])
        proxy.close()
