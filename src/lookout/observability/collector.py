"""Per-monitor series, read from the database: the one place they come from, whichever worker probed.

Served by beat only (a single active pod), so several API or worker replicas never double-count.
The rows are cached briefly (LOOKOUT_METRICS_CACHE_SECONDS): a scrape every few seconds must not become a
table scan every few seconds. A database outage does not fail the scrape: beat's own series still answer,
the per-monitor ones are left out and `lookout_monitor_collector_up` says why.
"""

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.apps import apps
from django.core.exceptions import FieldError
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lookout.config.env import env_int
from lookout.monitors.models import Monitor, MonitorStatus
from lookout.observability.metrics import PHASES

logger = logging.getLogger(__name__)

CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class MonitorRow:
    monitor_id: str
    name: str
    host: str
    type: str
    owner: str
    status: str
    last_checked_at: float | None
    last_response_time_ms: float | None
    last_phases_ms: dict[str, float]
    tls_not_after: float | None
    open_incidents: int | None = None


def _host(url: str) -> str:
    # hostname alone: no userinfo, port-less, no path or query string can leak into a label.
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def open_incident_counts() -> dict[int, int] | None:
    """Open incidents per monitor, once the alerting app's Incident model exists (None until then)."""
    if not apps.is_installed("lookout.alerting"):
        return None
    try:
        incident = apps.get_model("alerting", "Incident")
        rows = incident.objects.filter(ended_at__isnull=True).values("monitor_id").annotate(open=Count("id"))
    except (LookupError, FieldError):  # an Incident without monitor/ended_at: nothing to report yet
        return None
    return {row["monitor_id"]: row["open"] for row in rows}


def monitor_rows() -> list[MonitorRow]:
    rows = Monitor.objects.values_list("id", "name", "url", "type", "owner__username", "status",
                                       "last_checked_at", "last_response_time_ms", "last_phases",
                                       "tls_not_after").order_by("id")
    incidents = open_incident_counts()
    return [
        MonitorRow(str(pk), name, _host(url), kind, owner, status, checked.timestamp() if checked else None,
                   elapsed, phases or {}, not_after.timestamp() if not_after else None,
                   None if incidents is None else incidents.get(pk, 0))
        for pk, name, url, kind, owner, status, checked, elapsed, phases, not_after in rows.iterator(chunk_size=5000)
    ]


class MonitorCollector(Collector):
    def __init__(self, cache_seconds: float = CACHE_SECONDS) -> None:
        self._cache_seconds = cache_seconds
        self._rows: list[MonitorRow] = []
        self._loaded_at = float("-inf")
        self._read_ok = False
        self._read_seconds = 0.0
        self._lock = threading.Lock()

    def _reload(self) -> None:
        started = time.perf_counter()
        try:
            # No Django request cycle runs here, so nothing else drops a connection the database closed.
            close_old_connections()
            self._rows = monitor_rows()
            self._read_ok = True
        except DatabaseError as exc:
            logger.warning("per-monitor metrics unavailable: database error (%s)", exc)
            self._rows, self._read_ok = [], False
        finally:
            # Each scrape runs on a thread of its own: a connection left open would outlive it, unused.
            connection.close()
            self._read_seconds = time.perf_counter() - started
            self._loaded_at = time.monotonic()

    def _current_rows(self) -> list[MonitorRow]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self._cache_seconds:
                self._reload()
            return self._rows

    def collect(self) -> Iterator[Metric]:
        rows = self._current_rows()
        yield GaugeMetricFamily("lookout_monitor_collector_up",
                                "1 when the last read of the monitors table succeeded, 0 on a database error.",
                                value=1 if self._read_ok else 0)
        yield GaugeMetricFamily("lookout_monitor_collector_duration_seconds",
                                "Time the last read of the monitors table took.", value=self._read_seconds)
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
        phase = GaugeMetricFamily("lookout_monitor_last_phase_duration_seconds",
                                  "Time per phase of the last probe.", labels=["monitor_id", "phase"])
        tls_expiry = GaugeMetricFamily("lookout_tls_cert_expiry_timestamp_seconds",
                                       "Unix time the monitor's certificate expires.", labels=["monitor_id"])
        incidents = GaugeMetricFamily("lookout_monitor_open_incidents", "Open incidents of the monitor.",
                                      labels=["monitor_id"])
        for row in rows:
            info.add_metric([row.monitor_id, row.name, row.host, row.type, row.owner], 1)
            for status in MonitorStatus.values:
                state.add_metric([row.monitor_id, status], 1 if row.status == status else 0)
            if row.status in (MonitorStatus.UP, MonitorStatus.DOWN):
                up.add_metric([row.monitor_id], 1 if row.status == MonitorStatus.UP else 0)
            if row.last_response_time_ms is not None:
                duration.add_metric([row.monitor_id], row.last_response_time_ms / 1000)
            if row.last_checked_at is not None:
                checked.add_metric([row.monitor_id], row.last_checked_at)
            for name in PHASES:
                if name in row.last_phases_ms:
                    phase.add_metric([row.monitor_id, name], row.last_phases_ms[name] / 1000)
            if row.tls_not_after is not None:
                tls_expiry.add_metric([row.monitor_id], row.tls_not_after)
            if row.open_incidents is not None:
                incidents.add_metric([row.monitor_id], row.open_incidents)
        yield from (info, state, up, duration, checked, phase, tls_expiry, incidents)


_collector: MonitorCollector | None = None


def monitor_collector() -> MonitorCollector:
    global _collector
    if _collector is None:
        _collector = MonitorCollector(cache_seconds=env_int("LOOKOUT_METRICS_CACHE_SECONDS", int(CACHE_SECONDS),
                                                            minimum=0))
    return _collector
