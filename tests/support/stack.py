"""Real `lookout` processes on this machine's PostgreSQL and RabbitMQ, for the tests and the benchmarks.

One module for both (bench/ puts tests/ on sys.path to import it): a fresh database and RabbitMQ vhost of a run's
own, free ports, a Lookout process's environment, starting, waiting for and stopping processes, and LookoutStack
(migrate, then api, worker and beat). Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres) and RabbitMQ
on 127.0.0.1:5672 (guest) with `rabbitmqctl` on the PATH.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
import requests

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672"  # + "/<vhost>"
LOOKOUT = [sys.executable, "-m", "lookout.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).ok
    except requests.RequestException:
        return False


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """The predicate's first true value; AssertionError after `timeout` seconds without one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")


def database_create(name: str) -> str:
    """An empty database `name` (dropped first if it exists); returns its URL."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def database_drop(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)


def vhost_create(name: str, *, required: bool = False) -> str:
    """An empty RabbitMQ vhost `name`, so no other run's messages reach its processes; returns its broker URL.

    Without `rabbitmqctl` (GitHub's runner has none) it is the shared default vhost instead, or RuntimeError if
    `required` (a benchmark that counts the queue's messages)."""
    if not shutil.which("rabbitmqctl"):
        if required:
            raise RuntimeError(f"rabbitmqctl not found: it makes the vhost {name} of this run's own")
        return f"{BROKER_URL}//"
    for args in (["delete_vhost", name], ["add_vhost", name],
                 ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        _rabbitmqctl(*args)
    return f"{BROKER_URL}/{name}"


def vhost_delete(name: str) -> None:
    if shutil.which("rabbitmqctl"):
        _rabbitmqctl("delete_vhost", name)


def base_environment(**extra: str) -> dict[str, str]:
    """The parent's environment without any Lookout/Django configuration of its own, plus `extra`."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LOOKOUT_", "CELERY_", "DATABASE_", "DJANGO_", "SECRET_KEY", "PROMETHEUS_"))}
    env.update(extra)
    return env


def lookout_environment(*, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """A Lookout process's environment on these services: 1 s minimum interval, local targets allowed."""
    return base_environment(DATABASE_URL=database_url, CELERY_BROKER_URL=broker_url,
                            SECRET_KEY=secrets.token_urlsafe(50), LOOKOUT_MIN_INTERVAL="1",
                            LOOKOUT_ALLOW_PRIVATE_TARGETS="1", LOOKOUT_METRICS_TOKEN=secrets.token_urlsafe(16),
                            **extra)


def lookout_run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """`lookout <args>` to its end; its stdout, or AssertionError with its output if it failed."""
    done = subprocess.run([*LOOKOUT, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"lookout {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def process_start(args: list[str], *, env: dict[str, str], log: Path,
                  cwd: str | Path | None = None) -> subprocess.Popen:
    """`args` in the background, stdout and stderr to the file `log`."""
    with open(log, "w") as output:  # the child keeps its own copy of the file
        return subprocess.Popen(args, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)


def log_tail(log: Path, size: int = 5000) -> str:
    return log.read_text(errors="replace")[-size:]


def process_wait_http(process: subprocess.Popen, url: str, *, log: Path, timeout: float, what: str) -> None:
    """Wait until `url` answers 2xx; AssertionError with the log's tail as soon as `process` exits."""
    def answering() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        return http_ok(url)

    wait_until(answering, timeout=timeout, what=f"{what} at {url}")


def processes_stop(processes: Iterable[subprocess.Popen], *, timeout: float = 20) -> None:
    """SIGTERM to all, then wait up to `timeout` for each; SIGKILL what is still running."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LookoutStack:
    """`lookout migrate`, then `lookout api`, `worker` and `beat` as real processes, on a database and a vhost
    of its own. A context manager: leaving it stops the processes and drops both."""

    def __init__(self, workdir: Path, *, name: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.api_port = free_port()
        self.worker_metrics_port = free_port()
        self.beat_metrics_port = free_port()
        self.database_url = database_create(name)
        self.env = lookout_environment(
            database_url=self.database_url,
            broker_url=vhost_create(name),
            LOOKOUT_PUSH_SWEEP_SECONDS="1",
            LOOKOUT_WORKER_CONCURRENCY="20",
            LOOKOUT_API_WORKERS="2",
        )
        self.env.update(env or {})  # e.g. EMAIL_HOST/EMAIL_PORT of a test's SMTP server, alerting timings
        self.metrics_token = self.env["LOOKOUT_METRICS_TOKEN"]
        self.processes: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
        self.token = ""

    def __enter__(self) -> "LookoutStack":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.down()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def run(self, *args: str, **env: str) -> str:
        return lookout_run({**self.env, **env}, *args, timeout=120)

    def start(self, name: str, *args: str, **env: str) -> None:
        # libpq's application_name, so tests can tell each process's database connections apart.
        env = {"PGAPPNAME": f"lookout-{name}", **env}
        self._commands[name] = (args, env)
        self.processes[name] = process_start([*LOOKOUT, *args], env={**self.env, **env},
                                             log=self.workdir / f"{name}.log")

    def restart(self, name: str) -> None:
        """Start `name` again as it was started (after a test stopped or killed it); the old log stays as
        <name>.log.<n>. Waits until the api or worker is ready again."""
        previous = self.processes.pop(name, None)
        if previous is not None and previous.poll() is None:
            raise AssertionError(f"{name} is still running")
        log = self.workdir / f"{name}.log"
        if log.exists():
            log.rename(self.workdir / f"{name}.log.{len(list(self.workdir.glob(f'{name}.log.*'))) + 1}")
        args, env = self._commands[name]
        self.start(name, *args, **env)
        port = {"api": self.api_port, "worker": self.worker_metrics_port}.get(name)
        if port is not None:
            wait_until(lambda: self._ok(port, "/readyz"), timeout=60, what=f"{name} to be ready again")

    def logs(self, name: str) -> str:
        """Everything `name` logged, across its restarts."""
        parts = sorted(self.workdir.glob(f"{name}.log.*"), key=lambda path: int(path.suffix[1:]))
        return "".join(path.read_text(errors="replace") for path in [*parts, self.workdir / f"{name}.log"]
                       if path.exists())

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
        wait_until(lambda: self._ok(self.api_port, "/readyz"), timeout=60, what="the API's /readyz")
        # The worker's /readyz answers 200 once its consumer is connected to the broker.
        wait_until(lambda: self._ok(self.worker_metrics_port, "/readyz"), timeout=60, what="the worker")
        wait_until(lambda: self.assert_running() or port_open(self.beat_metrics_port), timeout=60, what="beat")
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
        """Whether 127.0.0.1:port answers `path` with 200 (not only 2xx), every process still running."""
        self.assert_running()
        try:
            return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)}")

    def log(self, name: str) -> str:
        return log_tail(self.workdir / f"{name}.log")

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v1/{path.lstrip('/')}", headers=headers,
                                **{"timeout": 10, **kwargs})

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
        processes_stop(self.processes.values())
        database_drop(self.name)
        vhost_delete(self.name)
