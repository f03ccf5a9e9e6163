"""Real `lookout` processes (api, worker, beat) on this machine's PostgreSQL and RabbitMQ."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOKOUT = [sys.executable, "-m", "lookout.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def database_create(name: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def database_drop(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def vhost_create(name: str) -> str:
    """A RabbitMQ vhost of the test's own, so no other test's messages reach its worker."""
    if not shutil.which("rabbitmqctl"):
        return "amqp://guest:guest@127.0.0.1:5672//"
    for args in (["delete_vhost", name], ["add_vhost", name],
                 ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)
    return f"amqp://guest:guest@127.0.0.1:5672/{name}"


def vhost_delete(name: str) -> None:
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


def base_environment(**extra: str) -> dict[str, str]:
    """The parent's environment without any Lookout/Django configuration of its own."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LOOKOUT_", "CELERY_", "DATABASE_", "DJANGO_", "SECRET_KEY", "PROMETHEUS_"))}
    env.update(extra)
    return env


class LookoutStack:
    """`lookout migrate`, then `lookout api`, `worker` and `beat` as real processes."""

    def __init__(self, workdir: Path, *, name: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.api_port = free_port()
        self.worker_metrics_port = free_port()
        self.beat_metrics_port = free_port()
        self.metrics_token = secrets.token_urlsafe(16)
        self.database_url = database_create(name)
        self.env = base_environment(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=vhost_create(name),
            SECRET_KEY=secrets.token_urlsafe(50),
            LOOKOUT_MIN_INTERVAL="1",
            LOOKOUT_ALLOW_PRIVATE_TARGETS="1",
            LOOKOUT_PUSH_SWEEP_SECONDS="1",
            LOOKOUT_METRICS_TOKEN=self.metrics_token,
            LOOKOUT_WORKER_CONCURRENCY="20",
            LOOKOUT_API_WORKERS="2",
        )
        self.env.update(env or {})  # e.g. EMAIL_HOST/EMAIL_PORT of a test's SMTP server, alerting timings
        self.processes: dict[str, subprocess.Popen] = {}
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def run(self, *args: str, **env: str) -> str:
        done = subprocess.run([*LOOKOUT, *args], env={**self.env, **env}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"lookout {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 (kept open for the process's life)
        # libpq's application_name, so tests can tell each process's database connections apart.
        env = {"PGAPPNAME": f"lookout-{name}", **env}
        self.processes[name] = subprocess.Popen([*LOOKOUT, *args], env={**self.env, **env}, stdout=log,
                                                stderr=subprocess.STDOUT)

    def up(self, **process_env: dict[str, str]) -> "LookoutStack":
        """Start api, worker and beat; `process_env` adds environment per process (`worker={"CELERY_...": ...}`)."""
        self.run("migrate")
        self.token = self.run("manage", "createapiuser", "e2e").strip()
        self.start("api", "api", "--bind", f"127.0.0.1:{self.api_port}", **process_env.get("api", {}))
        # A pool smaller than the probes the tests keep in flight (only workers pool, as in production).
        self.start("worker", "worker", **{"LOOKOUT_METRICS_PORT": str(self.worker_metrics_port),
                                          "LOOKOUT_DB_POOL_SIZE": "4", **process_env.get("worker", {})})
        self.start("beat", "beat", **{"LOOKOUT_METRICS_PORT": str(self.beat_metrics_port),
                                      **process_env.get("beat", {})})
        wait_until(self._ready, timeout=60, what="the API's /readyz")
        # The worker's /readyz answers 200 once its consumer is connected to the broker.
        wait_until(lambda: self._ok(self.worker_metrics_port, "/readyz"), timeout=60, what="the worker")
        wait_until(lambda: self._port_open(self.beat_metrics_port), timeout=60, what="beat")
        return self

    def metrics_url(self, name: str) -> str:
        """The /metrics URL of `api`, `worker` or `beat` (bearer LOOKOUT_METRICS_TOKEN)."""
        return {"api": f"{self.url}/metrics", "worker": f"http://127.0.0.1:{self.worker_metrics_port}/metrics",
                "beat": f"http://127.0.0.1:{self.beat_metrics_port}/metrics"}[name]

    def metrics(self, name: str) -> str:
        response = requests.get(self.metrics_url(name), headers={"Authorization": f"Bearer {self.metrics_token}"},
                                timeout=30)
        assert response.status_code == 200, f"{name} /metrics: {response.status_code} {response.text[:200]}"
        return response.text

    def _ok(self, port: int, path: str) -> bool:
        self.assert_running()
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def _ready(self) -> bool:
        self.assert_running()
        try:
            return requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    @staticmethod
    def _port_open(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-5000:]

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v1/{path.lstrip('/')}", headers=headers, timeout=10,
                                **kwargs)

    def periodic_task_count(self, name: str) -> int:
        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://")) as conn:
            row = conn.execute("SELECT count(*) FROM django_celery_beat_periodictask WHERE name = %s",
                               (name,)).fetchone()
        return row[0]

    def connections_of(self, process_name: str) -> int:
        with psycopg.connect(ADMIN_DSN) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                               (self.name, f"lookout-{process_name}")).fetchone()
        return row[0]

    def down(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        database_drop(self.name)
        vhost_delete(self.name)
