"""Build one scrape's payload: this process's metrics (all gunicorn workers' in multiprocess mode), and for the
dispatching beat the per-monitor snapshot made by its refresher process (lookout.observability.refresher)."""

import gzip
import os

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from lookout.observability.collector import READ_UP
from lookout.observability.refresher import snapshot_feed


def scrape_registry() -> CollectorRegistry:
    # A registry per scrape: the multiprocess collector must not live on the global one.
    registry = CollectorRegistry(auto_describe=True)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    return registry


def _no_snapshot(gzipped: bool) -> bytes:
    name, text = READ_UP
    body = f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} 0.0\n".encode()
    return gzip.compress(body, compresslevel=1) if gzipped else body


def metrics_payload(accept: str = "", *, include_monitors: bool, gzipped: bool = False,
                    shard: tuple[int, int] | None = None) -> tuple[bytes, str]:
    """The text format; `gzipped`: as gzip (members concatenated, which every gzip reader accepts).

    `include_monitors`: append the per-monitor snapshot (shard i of n, or the whole with one shard) as made by the
    refresher: a scrape costs reading a file and sending it, never a render.
    """
    body = generate_latest(scrape_registry())
    if gzipped:
        body = gzip.compress(body, compresslevel=1)
    if include_monitors:
        feed = snapshot_feed()
        index, of = shard or (0, 1)
        if of == feed.shards:
            snapshot = feed.gzipped(shard=index, of=of)
            if snapshot is None:
                body += _no_snapshot(gzipped)
            else:
                # Plain text only for clients that ask for no gzip (Prometheus always asks for it).
                body += snapshot if gzipped else gzip.decompress(snapshot)
    return body, CONTENT_TYPE_LATEST
