"""Per-monitor series, read from the database: the one place they come from, whichever worker probed.

Served by beat only (a single active pod), so several API or worker replicas never double-count.
The rows are cached briefly: a scrape every few seconds must not become a table scan every few seconds.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import close_old_connections
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lookout.monitors.models import Monitor, MonitorStatus

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class MonitorRow:
    monitor_id: str
    name: str
    host: str
    owner: str
    status: str
    last_checked_at: float | None
    last_response_time_ms: float | None


def _host(url: str) -> str:
    # hostname alone: no userinfo, port-less, no path or query string can leak into a label.
    return urlsplit(url).hostname or ""


def monitor_rows() -> list[MonitorRow]:
    rows = Monitor.objects.values_list("id", "name", "url", "owner__username", "status", "last_checked_at",
                                       "last_response_time_ms").order_by("id")
    return [
        MonitorRow(str(pk), name, _host(url), owner, status,
                   checked.timestamp() if checked else None, elapsed)
        for pk, name, url, owner, status, checked, elapsed in rows.iterator(chunk_size=5000)
    ]


class MonitorCollector(Collector):
    def __init__(self, cache_seconds: float = CACHE_SECONDS) -> None:
        self._cache_seconds = cache_seconds
        self._rows: list[MonitorRow] = []
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _current_rows(self) -> list[MonitorRow]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self._cache_seconds:
                # This thread serves no requests, so nothing else drops a connection the DB closed.
                close_old_connections()
                self._rows = monitor_rows()
                self._loaded_at = time.monotonic()
            return self._rows

    def collect(self) -> Iterator[Metric]:
        rows = self._current_rows()
        info = GaugeMetricFamily("lookout_monitor_info", "Monitor metadata for joins (value 1).",
                                 labels=["monitor_id", "name", "host", "type", "owner"])
        state = GaugeMetricFamily("lookout_monitor_status", "1 for the monitor's current status.",
                                  labels=["monitor_id", "status"])
        up = GaugeMetricFamily("lookout_monitor_up", "1 up, 0 down; absent while pending or paused.",
                               labels=["monitor_id"])
        duration = GaugeMetricFamily("lookout_monitor_last_duration_seconds", "Duration of the last probe.",
                                     labels=["monitor_id"])
        checked = GaugeMetricFamily("lookout_monitor_last_check_timestamp_seconds",
                                    "Unix time the last probe started.", labels=["monitor_id"])
        for row in rows:
            info.add_metric([row.monitor_id, row.name, row.host, "http", row.owner], 1)
            for status in MonitorStatus.values:
                state.add_metric([row.monitor_id, status], 1 if row.status == status else 0)
            if row.status in (MonitorStatus.UP, MonitorStatus.DOWN):
                up.add_metric([row.monitor_id], 1 if row.status == MonitorStatus.UP else 0)
            if row.last_response_time_ms is not None:
                duration.add_metric([row.monitor_id], row.last_response_time_ms / 1000)
            if row.last_checked_at is not None:
                checked.add_metric([row.monitor_id], row.last_checked_at)
        yield from (info, state, up, duration, checked)


_collector: MonitorCollector | None = None


def monitor_collector() -> MonitorCollector:
    global _collector
    if _collector is None:
        _collector = MonitorCollector()
    return _collector
