"""Start the metrics and health port in the worker (default 9540) and beat (default 9541) processes."""

from typing import Any

from celery.signals import beat_init, worker_ready

from lookout.config.env import env_int
from lookout.observability.server import metrics_server_start


def _alive() -> tuple[bool, str]:
    return True, "ok"


@worker_ready.connect
def worker_metrics_start(**_: Any) -> None:
    # Workers export fleet-wide series only: per-monitor ones would be duplicated by every replica.
    metrics_server_start(port=env_int("LOOKOUT_METRICS_PORT", 9540), include_monitors=False, health=_alive)


@beat_init.connect
def beat_metrics_start(**_: Any) -> None:
    metrics_server_start(port=env_int("LOOKOUT_METRICS_PORT", 9541), include_monitors=True, health=_alive)
