"""Beat serves lookout_degraded: the one process that runs exactly once, like the per-monitor series."""

from typing import Any

from celery.signals import beat_init
from django.db import close_old_connections
from prometheus_client import REGISTRY

from lookout.observability.metrics import DegradedCollector


def _degraded() -> bool:
    from lookout.alerting.guard import guard_degraded

    # The metrics thread serves no Django requests: nothing else drops a connection the database closed.
    close_old_connections()
    return guard_degraded()


@beat_init.connect
def degraded_metric_register(**_: Any) -> None:
    REGISTRY.register(DegradedCollector(_degraded))
