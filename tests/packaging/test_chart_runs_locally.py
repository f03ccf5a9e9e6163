"""Run what the chart renders: its migrate, wait-for-migrations, api, worker and beat containers, as local processes.

Each process gets exactly the command, args and environment Kubernetes would give the container: the rendered
ConfigMap and Secrets resolved, the keygen hook's Secret produced by running the chart's own key generator,
and only the in-cluster service URLs pointed at this machine's PostgreSQL and RabbitMQ (a fresh database and
vhost). Then the chart's own probe paths and ports must answer, and a monitor created through the API must
get probed.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from support.chart import VENV_BIN, container_env, monitor_through_api, one, pod_spec, probe_targets, render
from support.fake_kubernetes import FakeKubernetes
from support.http_target import HttpTarget
from support.stack import (
    base_environment,
    database_create,
    database_drop,
    free_port,
    vhost_create,
    vhost_delete,
    wait_until,
)

pytestmark = pytest.mark.e2e


class RenderedProcesses:
    def __init__(self, workdir: Path, objects: list, secrets: dict[str, dict[str, str]]) -> None:
        self.workdir = workdir
        self.objects = objects
        self.secrets = secrets
        self.processes: dict[str, subprocess.Popen] = {}

    def environment(self, name: str, item, container: dict) -> dict[str, str]:
        env = container_env(container, self.objects, self.secrets)
        # emptyDir mounts become directories of this test; /tmp is writable here as it is.
        volumes = {volume["name"]: volume for volume in pod_spec(item)["volumes"]}
        for mount in container.get("volumeMounts", []):
            if "emptyDir" in volumes[mount["name"]] and mount["mountPath"] != "/tmp":
                local = self.workdir / f"{name}-{mount['name']}"
                local.mkdir(exist_ok=True)
                env = {key: value.replace(mount["mountPath"], str(local)) for key, value in env.items()}
        environment = base_environment(**env)
        environment["PATH"] = f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"  # `lookout` as in the image
        environment["PGAPPNAME"] = f"chart-{name}"
        return environment

    def argv(self, container: dict) -> list[str]:
        return [*container["command"], *container.get("args", [])]

    def start(self, name: str, item, container: dict) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 (kept open for the process's life)
        process = subprocess.Popen(self.argv(container), env=self.environment(name, item, container), stdout=log,
                                   stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        self.processes[name] = process
        return process

    def run(self, name: str, item, container: dict, argv: list[str] | None = None) -> str:
        """The container's own command, or `argv` in its environment (what `kubectl exec` does)."""
        done = subprocess.run(argv or self.argv(container), env=self.environment(name, item, container),
                              capture_output=True, text=True, timeout=180, cwd=self.workdir)
        assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if name != "wait-for-migrations" and process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def answers(port: int, path: str) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def local_services():
    name = f"lookout_chart_{uuid.uuid4().hex[:8]}"
    yield name, database_create(name), vhost_create(name)
    database_drop(name)
    vhost_delete(name)


def test_the_rendered_containers_run_answer_their_probes_and_probe_a_monitor(tmp_path, local_services):
    if not shutil.which("sh"):
        pytest.fail("the wait-for-migrations init container needs sh")
    name, database_url, broker_url = local_services
    values = {
        "api": {"port": free_port(), "workers": 1, "threads": 2},
        "worker": {"metricsPort": free_port(), "concurrency": 10},
        "beat": {"metricsPort": free_port()},
        "config": {"minInterval": 1, "allowPrivateTargets": True},
    }
    objects = render(values)

    # The keygen hook's Secret, made by the chart's own generator; then the bundled services' in-cluster URLs
    # point at this machine's PostgreSQL and RabbitMQ.
    fake = FakeKubernetes(tmp_path)
    try:
        config = one(objects, "ConfigMap", "lookout-keygen").body["data"]
        (tmp_path / "keygen.py").write_text(config["keygen.py"])
        (tmp_path / "keys.json").write_text(config["keys.json"])
        subprocess.run([sys.executable, str(tmp_path / "keygen.py"), str(tmp_path / "keys.json"),
                        "--serviceaccount", str(fake.serviceaccount)], env=fake.environment, check=True, timeout=60)
        generated = fake.data("lookout-generated")
    finally:
        fake.close()
    assert "lookout-postgresql.lookout.svc" in generated["DATABASE_URL"]
    generated.update(DATABASE_URL=database_url, CELERY_BROKER_URL=broker_url)

    api = one(objects, "Deployment", "lookout-api")
    worker = one(objects, "Deployment", "lookout-worker")
    beat = one(objects, "Deployment", "lookout-beat")
    migrate = next(item for item in objects if item.kind == "Job" and "migrate" in item.name)
    containers = {key: pod_spec(item)["containers"][0] for key, item in
                  (("api", api), ("worker", worker), ("beat", beat), ("migrate", migrate))}
    wait_for_migrations = pod_spec(api)["initContainers"][0]

    processes = RenderedProcesses(tmp_path, objects, {"lookout-generated": generated})
    target = HttpTarget()
    try:
        # Init containers hold the workloads back until the migrations Job has run.
        waiting = processes.start("wait-for-migrations", api, wait_for_migrations)
        time.sleep(4)
        assert waiting.poll() is None, f"it should wait for migrations:\n{processes.log('wait-for-migrations')}"
        processes.run("migrate", migrate, containers["migrate"])
        assert waiting.wait(timeout=60) == 0, processes.log("wait-for-migrations")

        for key, item in (("api", api), ("worker", worker), ("beat", beat)):
            processes.start(key, item, containers[key])
        for key in ("api", "worker", "beat"):
            for probe, (port, path) in probe_targets(containers[key]).items():
                wait_until(lambda port=port, path=path: processes.assert_running() or answers(port, path),
                           timeout=90, what=f"{key} {probe} http://127.0.0.1:{port}{path}")

        # As NOTES.txt says: the token comes from `lookout manage createapiuser` in the api container.
        token = processes.run("createapiuser", api, containers["api"],
                              ["lookout", "manage", "createapiuser", "chart"])
        token = token.strip().splitlines()[-1]
        base = f"http://127.0.0.1:{values['api']['port']}"
        results = monitor_through_api(base, token, name="chart", url=target.url)

        # beat dispatched, a worker probed and recorded: the whole loop, read back through the API.
        wait_until(lambda: processes.assert_running() or len(results()) >= 2, timeout=30, what="results")

        # The chart always sets the metrics token: /metrics needs it on every port.
        metrics_token = generated["LOOKOUT_METRICS_TOKEN"]
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
        assert requests.get(f"{base}/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {metrics_token}"}).status_code == 200
        beat_port = values["beat"]["metricsPort"]

        def scraped_monitors() -> str | None:
            # The per-monitor series come from a snapshot beat's refresher renders once beat dispatches.
            scraped = requests.get(f"http://127.0.0.1:{beat_port}/metrics", timeout=10,
                                   headers={"Authorization": f"Bearer {metrics_token}"})
            assert scraped.status_code == 200
            return scraped.text if "lookout_monitor_up" in scraped.text else None

        wait_until(scraped_monitors, timeout=20, what="beat's per-monitor series")
        assert requests.get(f"http://127.0.0.1:{beat_port}/healthz", timeout=5).text.startswith("active")

        # Read from the target's own log, not from Lookout's view of itself.
        assert len(target.hits) >= 1, f"the target saw no probe; last result: {results()[0]}"
        assert results()[0]["success"] is True, results()[0]
    finally:
        target.close()
        processes.stop()
