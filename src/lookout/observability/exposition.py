"""Build one scrape's payload: this process's metrics (all gunicorn workers' in multiprocess mode)."""

import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def scrape_registry(*, include_monitors: bool) -> CollectorRegistry:
    # A registry per scrape: multiprocess and database collectors must not live on the global one.
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    if include_monitors:
        from lookout.observability.collector import monitor_collector

        registry.register(monitor_collector())
    return registry


def metrics_payload(accept: str = "", *, include_monitors: bool) -> tuple[bytes, str]:
    return generate_latest(scrape_registry(include_monitors=include_monitors)), CONTENT_TYPE_LATEST
