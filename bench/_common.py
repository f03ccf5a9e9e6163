"""What the benchmarks share: a fresh database and RabbitMQ vhost, Lookout's environment, process helpers.

Mirrors tests/support/stack.py (PostgreSQL on 127.0.0.1:5432 with trust auth, RabbitMQ on 127.0.0.1:5672 as
guest), kept here so the benchmarks do not import the test tree.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOKOUT = [sys.executable, "-m", "lookout.cli"]
CELERY_APP = "lookout.config.celery_app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_create(name: str) -> str:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def database_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def vhost_create(name: str) -> str:
    if not shutil.which("rabbitmqctl"):
        raise SystemExit("rabbitmqctl not found: the benchmark needs a vhost of its own")
    for args in (["delete_vhost", name], ["add_vhost", name],
                 ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)
    return f"amqp://guest:guest@127.0.0.1:5672/{name}"


def vhost_delete(name: str) -> None:
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True, timeout=60)


def lookout_environment(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The parent's environment without Lookout/Django settings of its own, plus this run's."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LOOKOUT_", "CELERY_", "DATABASE_", "DJANGO_", "SECRET_KEY", "PROMETHEUS_"))}
    env.update(DATABASE_URL=database_url, CELERY_BROKER_URL=broker_url, SECRET_KEY=secrets.token_urlsafe(50),
               LOOKOUT_MIN_INTERVAL="1", LOOKOUT_ALLOW_PRIVATE_TARGETS="1",
               LOOKOUT_METRICS_TOKEN=secrets.token_urlsafe(16), LOOKOUT_METRICS_PORT=str(free_port()),
               LOOKOUT_LOG_FORMAT="text")
    env.update(extra)
    return env


def lookout_run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*LOOKOUT, *args], env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"lookout {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def django_setup(env: dict[str, str]) -> None:
    """Configure this process as a Lookout process of the run (for bulk seeding with the ORM)."""
    for key in [key for key in os.environ
                if key.startswith(("LOOKOUT_", "CELERY_", "DATABASE_", "DJANGO_", "SECRET_KEY"))]:
        del os.environ[key]
    os.environ.update({key: value for key, value in env.items()})
    os.environ["DJANGO_SETTINGS_MODULE"] = "lookout.config.settings"
    import django

    django.setup()


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def broker_pid() -> int | None:
    """The RabbitMQ server's process (beam.smp started with `-s rabbit`), to measure its CPU; None if not found."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"beam.smp") and b"-s" in args and b"rabbit" in args:
            return int(entry)
    return None


def proc_peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def seed_monitors(count: int, *, interval: int, url: str, enabled: bool = True, owner=None) -> list[int]:
    """Bulk-create `count` HTTP monitors with their PeriodicTasks (as monitor_create would); returns their ids."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    from lookout.monitors.models import Monitor
    from lookout.scheduling.schedules import PROBE_TASK

    if owner is None:
        owner, _ = get_user_model().objects.get_or_create(username="bench")
    every, _ = IntervalSchedule.objects.get_or_create(every=interval, period=IntervalSchedule.SECONDS)
    with transaction.atomic():
        tasks = PeriodicTask.objects.bulk_create(
            [PeriodicTask(name=f"monitor:new:{i}", task=PROBE_TASK, queue="probes", interval=every,
                          expire_seconds=interval, enabled=enabled, args="[]") for i in range(count)],
            batch_size=5000)
        monitors = Monitor.objects.bulk_create(
            [Monitor(owner=owner, name=f"bench {i}", url=url, interval=interval, timeout=min(10.0, interval),
                     periodic_task=task) for i, task in enumerate(tasks)], batch_size=5000)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {PeriodicTask._meta.db_table} AS t SET name = 'monitor:' || m.id, "
                f"args = '[' || m.id || ']' FROM {Monitor._meta.db_table} AS m WHERE m.periodic_task_id = t.id")
        # bulk_create and update() bypass the signals that tell beat the schedule changed.
        PeriodicTasks.update_changed()
    return [monitor.pk for monitor in monitors]
