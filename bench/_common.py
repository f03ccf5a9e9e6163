"""What the benchmarks share beyond tests/support/stack.py (the databases, vhosts, ports and processes the tests
use too, imported as `support.stack` with tests/ on sys.path): a benchmark's environment, Django in this process
for seeding, CPU and memory of processes from /proc, percentiles, bulk-seeded monitors.
"""

from __future__ import annotations

import os

from support import stack


def bench_environment(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """A Lookout process's environment for a benchmark: text logs, a metrics port of its own."""
    return stack.lookout_environment(database_url=database_url, broker_url=broker_url,
                                     LOOKOUT_METRICS_PORT=str(stack.free_port()), LOOKOUT_LOG_FORMAT="text", **extra)


def run_services_drop(name: str, *, vhost: bool = True) -> None:
    """At a benchmark's end: close this process's database connections, drop the run's database (and vhost)."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # Django never set up, or the database already gone
        pass
    stack.database_drop(name)
    if vhost:
        stack.vhost_delete(name)


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
