"""Build the three images from their Dockerfiles and run what the chart renders in them, under podman.

The base image is Debian bookworm from Debian's packages (mmdebstrap, cached by its inputs; registry images cannot
be pulled here), passed as the Dockerfiles' PYTHON_IMAGE. The chart is rendered by the real Helm library with
values pointing at this machine's PostgreSQL and RabbitMQ (a fresh database and vhost) and at the images just
built. Then, as the kubelet would run them (command, args, environment from the rendered ConfigMap and Secrets,
user, read-only root, emptyDir mounts): the keygen hook, which makes the keys Secret through a stand-in
Kubernetes API; each Deployment's init containers, which wait for the migrations Job's pod; the api, worker and
beat containers, until their HTTP probes answer; the `helm test` pod; a monitor created through that api, probed
by that worker; and SIGTERM to each container, which must exit 0 within its grace period.
"""

import json
import threading
import time
import uuid

import pytest
import requests

from support.chart import REPO, Rendered, is_hook, monitor_through_api, one, pod_spec, probe_targets, render
from support.fake_kubernetes import FakeKubernetes
from support.http_target import HttpTarget
from support.podman import Podman, base_image, pip_build_mounts, podman_or_fail, run_options
from support.stack import database_create, database_drop, free_port, vhost_create, vhost_delete, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.podman]
PROCESSES = ("api", "worker", "beat")
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
def report(capsys):
    """Prints a figure into the test's output, past pytest's capture."""
    def figure(line: str) -> None:
        with capsys.disabled():
            print(f"\n[images under podman] {line}", end="")

    return figure


@pytest.fixture
def podman():
    return podman_or_fail()


@pytest.fixture
def images(podman, tmp_path, report):
    """{process: image} built from services/Dockerfile and services/<process>/Dockerfile; removed afterwards."""
    base, base_seconds = base_image(podman, tmp_path / "mmdebstrap.log")
    report(f"base image {base}: {podman.image_size(base) / 1e6:.0f} MB, ready in {base_seconds:.1f} s")
    tag = f"test-{uuid.uuid4().hex[:8]}"
    runtime = f"localhost/lookout-runtime:{tag}"
    built = {process: f"localhost/lookout-{process}:{tag}" for process in PROCESSES}
    mounts = pip_build_mounts(tmp_path)
    try:
        shared = podman.build(tag=runtime, dockerfile=REPO / "services" / "Dockerfile", context=REPO,
                              build_args={"PYTHON_IMAGE": base}, mounts=mounts, log=tmp_path / "build-runtime.log")
        report(f"shared build (services/Dockerfile): {shared:.1f} s")
        for process, image in built.items():
            own = podman.build(tag=image, dockerfile=REPO / "services" / process / "Dockerfile", context=REPO,
                               build_args={"LOOKOUT_RUNTIME": runtime}, mounts=[],
                               log=tmp_path / f"build-{process}.log")
            report(f"{image}: {podman.image_size(image) / 1e6:.0f} MB, built in {shared + own:.1f} s "
                   f"(shared build {shared:.1f} s + its own {own:.1f} s)")
        yield built
    finally:
        podman("rmi", "--force", *built.values(), runtime, check=False)


@pytest.fixture
def local_services():
    name = f"lookout_podman_{uuid.uuid4().hex[:8]}"
    yield database_create(name), vhost_create(name)
    database_drop(name)
    vhost_delete(name)


class Pods:
    """Containers of the rendered pods under podman, named after this run; all removed by `remove()`."""

    def __init__(self, podman: Podman, objects: list[Rendered], secrets: dict[str, dict[str, str]]) -> None:
        self.podman = podman
        self.objects = objects
        self.secrets = secrets
        self.run_id = uuid.uuid4().hex[:8]
        self.names: list[str] = []

    def start(self, item: Rendered, container: dict, **options) -> str:
        name = f"lookout-test-{self.run_id}-{item.name}-{container['name']}"
        self.podman("run", "--detach", "--name", name, *self.podman.limits,
                    *run_options(item, container, self.objects, secrets=self.secrets, **options))
        self.names.append(name)
        return name

    def wait(self, name: str, timeout: float) -> int:
        """The container's exit code once it has exited (AssertionError after `timeout`)."""
        wait_until(lambda: self.state(name)["Status"] == "exited", timeout=timeout, interval=0.5,
                   what=f"{name} to exit:\n{self.logs(name)}")
        return self.state(name)["ExitCode"]

    def run(self, item: Rendered, container: dict, timeout: float = 180, **options) -> str:
        """Start the container, wait for it to exit 0 (a Job's pod, a hook); its output."""
        name = self.start(item, container, **options)
        code = self.wait(name, timeout)
        assert code == 0, f"{name} exited {code}:\n{self.logs(name)}"
        return self.logs(name)

    def state(self, name: str) -> dict:
        return json.loads(self.podman("inspect", "--format", "{{json .State}}", name).stdout)

    def running(self, name: str) -> bool:
        state = self.state(name)
        if state["Status"] != "running":
            raise AssertionError(f"{name} is {state['Status']} (exit {state['ExitCode']}):\n{self.logs(name)}")
        return True

    def logs(self, name: str) -> str:
        done = self.podman("logs", name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def exec(self, name: str, *argv: str) -> str:
        """What `kubectl exec` does: `argv` in the running container, with its environment and user."""
        return self.podman("exec", name, *argv).stdout

    def stop(self, name: str, grace: int) -> tuple[int, float]:
        """`podman stop` with the pod's grace period (SIGTERM, SIGKILL after it): exit code and seconds taken."""
        started = time.monotonic()
        self.podman("stop", "--time", str(grace), name, timeout=grace + 60)
        return self.state(name)["ExitCode"], time.monotonic() - started

    def remove(self) -> None:
        if self.names:
            self.podman("rm", "--force", *self.names, check=False)


def answers(port: int, path: str) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.timeout(1200)
def test_the_images_run_the_rendered_pods_answer_their_probes_probe_a_monitor_and_stop_cleanly(
        podman, images, local_services, tmp_path, report):
    started = time.monotonic()
    database_url, broker_url = local_services
    api_port = free_port()
    values = {
        "image": {"registry": "localhost", "pullPolicy": "Never"},
        **{process: {"image": {"repository": images[process].rsplit(":", 1)[0],
                               "tag": images[process].rsplit(":", 1)[1]}} for process in PROCESSES},
        "postgresql": {"enabled": False}, "rabbitmq": {"enabled": False},
        "database": {"url": database_url}, "broker": {"url": broker_url},
        "config": {"minInterval": 1, "allowPrivateTargets": True, "logFormat": "text"},
    }
    # Host networking: each port of its own (other tests run beside this one), the Service's port the api's.
    values["api"].update(port=api_port, workers=1, threads=2, service={"port": api_port})
    values["worker"].update(metricsPort=free_port(), concurrency=10)
    values["beat"].update(metricsPort=free_port())
    objects = render(values)
    assert one(objects, "Secret", "lookout-connections")  # the URLs above, resolved by the containers' env

    deployments = {process: one(objects, "Deployment", f"lookout-{process}") for process in PROCESSES}
    migrate = next(item for item in objects if item.kind == "Job" and item.name.startswith("lookout-migrate"))
    keygen = one(objects, "Job", "lookout-keygen")
    helm_test = next(item for item in objects if item.kind == "Pod" and is_hook(item, "test"))
    for item in (*deployments.values(), migrate, keygen, helm_test):
        for container in pod_spec(item).get("initContainers", []) + pod_spec(item)["containers"]:
            assert container["image"] in images.values(), f"{item.name}/{container['name']}: {container['image']}"

    # The keygen hook, in the api image, makes the keys Secret through the Kubernetes API (a stand-in here, with
    # the service-account files the kubelet would mount).
    keygen_files = tmp_path / "keygen-configmap"
    keygen_files.mkdir()
    for key, text in one(objects, "ConfigMap", "lookout-keygen").body["data"].items():
        (keygen_files / key).write_text(text)
    fake = FakeKubernetes(tmp_path)
    secrets: dict[str, dict[str, str]] = {}
    pods = Pods(podman, objects, secrets)
    target = HttpTarget()
    try:
        kubernetes_env = [f"--env={name}={value}" for name, value in fake.environment.items()]
        pods.run(keygen, pod_spec(keygen)["containers"][0], files={"keygen": keygen_files},
                 extra=(*kubernetes_env, "--volume", f"{fake.serviceaccount}:{SERVICE_ACCOUNT}:ro"))
        secrets["lookout-generated"] = fake.data("lookout-generated")
        assert {"SECRET_KEY", "LOOKOUT_ENCRYPTION_KEY", "LOOKOUT_METRICS_TOKEN"} <= set(secrets["lookout-generated"])
        report(f"keygen hook ran: {time.monotonic() - started:.1f} s")

        # Every Deployment's init containers hold it back until the migrations Job's pod has run.
        waiting = [pods.start(item, init) for item in deployments.values()
                   for init in pod_spec(item).get("initContainers", [])]
        assert len(waiting) == len(PROCESSES)
        time.sleep(3)
        assert all(pods.running(name) for name in waiting)
        pods.run(migrate, pod_spec(migrate)["containers"][0], timeout=300)
        for name in waiting:
            assert pods.wait(name, timeout=90) == 0, pods.logs(name)
        report(f"migrations Job ran, init containers done: {time.monotonic() - started:.1f} s")

        containers = {process: pod_spec(item)["containers"][0] for process, item in deployments.items()}
        names = {process: pods.start(deployments[process], containers[process]) for process in PROCESSES}
        for process in PROCESSES:
            for probe, (port, path) in probe_targets(containers[process]).items():
                wait_until(lambda port=port, path=path, name=names[process]: pods.running(name) and answers(port, path),
                           timeout=120, interval=0.5, what=f"{process} {probe} http://127.0.0.1:{port}{path}")
        report(f"api, worker and beat answer their probes: {time.monotonic() - started:.1f} s")

        # `helm test`: the chart's own test pod, in the api image, reaches the api through its Service's name.
        output = pods.run(helm_test, pod_spec(helm_test)["containers"][0], timeout=120,
                          hosts={f"lookout-api.{helm_test.body['metadata']['namespace']}.svc": "127.0.0.1",
                                 "lookout-api": "127.0.0.1"})
        assert "readyz 200" in output and "answered 401" in output, output

        # As NOTES.txt says: the token comes from `lookout manage createapiuser` in the api container.
        token = pods.exec(names["api"], "lookout", "manage", "createapiuser", "podman").strip().splitlines()[-1]
        base = f"http://127.0.0.1:{api_port}"
        results = monitor_through_api(base, token, name="podman", url=target.url)

        wait_until(lambda: all(pods.running(name) for name in names.values()) and len(results()) >= 2,
                   timeout=60, interval=0.5, what="probe results through the API")
        assert len(target.hits) >= 1, f"the target saw no probe; last result: {results()[0]}"
        assert results()[0]["success"] is True, results()[0]
        report(f"a monitor created through the api was probed: {time.monotonic() - started:.1f} s")

        # SIGTERM to every container at once, as a rollout would; each exits 0 within its grace period.
        stopped: dict[str, tuple[int, float]] = {}
        graces = {process: pod_spec(item)["terminationGracePeriodSeconds"] for process, item in deployments.items()}

        def stop(process: str) -> None:
            stopped[process] = pods.stop(names[process], graces[process])

        threads = [threading.Thread(target=stop, args=(process,)) for process in PROCESSES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in PROCESSES:
            code, seconds = stopped[process]
            assert code == 0 and seconds < graces[process], (
                f"{process} exited {code} after {seconds:.1f} s (grace {graces[process]} s):\n"
                f"{pods.logs(names[process])}")
        report("stopped with SIGTERM: " + ", ".join(f"{process} exit 0 in {stopped[process][1]:.1f} s "
                                                     f"(grace {graces[process]} s)" for process in PROCESSES))
        report(f"whole test: {time.monotonic() - started:.1f} s after the builds")
    finally:
        target.close()
        fake.close()
        pods.remove()
