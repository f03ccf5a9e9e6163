"""Build one scrape's payload: this process's metrics (all gunicorn workers' in multiprocess mode)."""

import gzip
import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lookout.observability.collector import monitor_collector


def scrape_registry() -> CollectorRegistry:
    # A registry per scrape: the multiprocess collector must not live on the global one.
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    return registry


def metrics_payload(accept: str = "", *, include_monitors: bool, gzipped: bool = False) -> tuple[bytes, str]:
    """The text format; `gzipped`: as gzip (members concatenated, which every gzip reader accepts)."""
    body = generate_latest(scrape_registry())
    if gzipped:
        body = gzip.compress(body, compresslevel=1)
    if include_monitors:
        # Appended as made once per read of the table (up to 16 series per monitor), not rendered per scrape.
        body += monitor_collector().exposition(gzipped=gzipped)
    return body, CONTENT_TYPE_LATEST
