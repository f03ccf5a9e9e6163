"""Per-monitor series, read from the database: the one place they come from, whichever worker probed.

Served by beat only (a single active pod), so several API or worker replicas never double-count.
The rows are cached briefly (LOOKOUT_METRICS_CACHE_SECONDS): a scrape every few seconds must not become a
table scan every few seconds. A database outage does not fail the scrape: beat's own series still answer,
the per-monitor ones are left out and `lookout_monitor_collector_up` says why.
"""

import gzip
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import urlsplit

from django.apps import apps
from django.core.exceptions import FieldError
from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lookout.config.env import env_int
from lookout.monitors.models import Monitor, MonitorRegion, MonitorStatus, RegionStatus
from lookout.monitors.selectors import region_stale_after
from lookout.probes.engine import PHASES

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
    # (region, 1 up | 0 down) for a monitor that names its regions; a region unknown (no recent result) is absent.
    regions_up: tuple[tuple[str, float], ...] = ()


@lru_cache(maxsize=1 << 18)  # every reload re-reads every URL; parsing each anew was a third of the read
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


def regions_up() -> dict[int, tuple[tuple[str, float], ...]]:
    """Each multi-region monitor's regions with a recent result, up (1) or down (0), in one query (MonitorRegion
    rows exist only for monitors that name their regions)."""
    now = timezone.now()
    answer: dict[int, list[tuple[str, float]]] = {}
    rows = MonitorRegion.objects.values_list("monitor_id", "region", "status", "checked_at", "monitor__regions",
                                             "monitor__interval", "monitor__timeout").order_by("monitor_id", "region")
    for monitor_id, region, status, checked_at, named, interval, timeout in rows.iterator(chunk_size=5000):
        if region in (named or []) and now - checked_at <= region_stale_after(interval=interval, timeout=timeout):
            answer.setdefault(monitor_id, []).append((region, 1.0 if status == RegionStatus.UP else 0.0))
    return {monitor_id: tuple(states) for monitor_id, states in answer.items()}


def monitor_rows() -> list[MonitorRow]:
    rows = Monitor.objects.values_list("id", "name", "url", "type", "owner__username", "status",
                                       "last_checked_at", "last_response_time_ms", "last_phases",
                                       "tls_not_after").order_by("id")
    incidents = open_incident_counts()
    regions = regions_up()
    return [
        MonitorRow(str(pk), name, _host(url), kind, owner, status, checked.timestamp() if checked else None,
                   elapsed, phases or {}, not_after.timestamp() if not_after else None,
                   None if incidents is None else incidents.get(pk, 0), regions.get(pk, ()))
        for pk, name, url, kind, owner, status, checked, elapsed, phases, not_after in rows.iterator(chunk_size=5000)
    ]


Sample = tuple[tuple[str, ...], float]  # (label values, value)


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[MonitorRow], Iterable[Sample]]

    @cached_property
    def line_format(self) -> str:
        """`name{a="{}",b="{}"} {}` for str.format: the scrape's hot loop renders lines with it."""
        labels = ",".join(f'{label}="{{}}"' for label in self.labels)
        return f"{self.name}{{{{{labels}}}}} {{}}\n"


def _status_samples(row: MonitorRow) -> Iterator[Sample]:
    for status in MonitorStatus.values:
        yield (row.monitor_id, status), 1.0 if row.status == status else 0.0


def _phase_samples(row: MonitorRow) -> Iterator[Sample]:
    for name in PHASES:
        if name in row.last_phases_ms:
            yield (row.monitor_id, name), row.last_phases_ms[name] / 1000


def _one(row: MonitorRow, value: float | None) -> tuple[Sample, ...]:
    return () if value is None else (((row.monitor_id,), value),)


_UP: dict[str, float] = {MonitorStatus.UP: 1.0, MonitorStatus.DOWN: 0.0}
MONITOR_ID = ("monitor_id",)
FAMILIES = (
    Family("lookout_monitor_info", "Monitor metadata for joins (value 1).",
           ("monitor_id", "name", "host", "type", "owner"),
           lambda row: (((row.monitor_id, row.name, row.host, row.type, row.owner), 1.0),)),
    Family("lookout_monitor_status", "1 for the monitor's current status.", ("monitor_id", "status"),
           _status_samples),
    Family("lookout_monitor_up", "1 up, 0 down; absent while pending or paused.", MONITOR_ID,
           lambda row: _one(row, _UP.get(row.status))),
    Family("lookout_monitor_last_duration_seconds", "Duration of the last probe.", MONITOR_ID,
           lambda row: _one(row, None if row.last_response_time_ms is None else row.last_response_time_ms / 1000)),
    Family("lookout_monitor_last_check_timestamp_seconds", "Unix time the last probe started.", MONITOR_ID,
           lambda row: _one(row, row.last_checked_at)),
    Family("lookout_monitor_last_phase_duration_seconds", "Time per phase of the last probe.",
           ("monitor_id", "phase"), _phase_samples),
    Family("lookout_tls_cert_expiry_timestamp_seconds", "Unix time the monitor's certificate expires.", MONITOR_ID,
           lambda row: _one(row, row.tls_not_after)),
    Family("lookout_monitor_open_incidents", "Open incidents of the monitor.", MONITOR_ID,
           lambda row: _one(row, row.open_incidents)),
    Family("lookout_monitor_region_up", "1 up, 0 down from one of the monitor's regions; absent while unknown.",
           ("monitor_id", "region"), lambda row: (((row.monitor_id, region), up) for region, up in row.regions_up)),
)
READ_UP = ("lookout_monitor_collector_up",
           "1 when the last read of the monitors table succeeded, 0 on a database error.")
READ_DURATION = ("lookout_monitor_collector_duration_seconds", "Time the last read of the monitors table took.")


def _label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def exposition_text(rows: list[MonitorRow], *, read_ok: bool, read_seconds: float) -> bytes:
    """The same series as MonitorCollector.collect(), written straight in Prometheus' text format.

    prometheus-client's generic path costs ~100 µs per monitor (16 samples); at 100k monitors that is seconds of
    beat's CPU, holding the GIL its scheduler loop needs, on every scrape.
    """
    parts = [f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} {float(value)!r}\n"
             for (name, text), value in ((READ_UP, read_ok), (READ_DURATION, read_seconds))]
    for family in FAMILIES:
        parts.append(f"# HELP {family.name} {family.help}\n# TYPE {family.name} gauge\n")
        line = family.line_format.format
        parts.extend(line(*map(_label_value, labels), repr(float(value)))
                     for row in rows for labels, value in family.samples(row))
    return "".join(parts).encode()


class MonitorCollector(Collector):
    def __init__(self, cache_seconds: float = CACHE_SECONDS) -> None:
        self._cache_seconds = cache_seconds
        self._rows: list[MonitorRow] = []
        self._text: bytes | None = None
        self._gzipped: bytes | None = None
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
            self._text = None

    def _current_rows(self) -> list[MonitorRow]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self._cache_seconds:
                self._reload()
            return self._rows

    def exposition(self, *, gzipped: bool = False) -> bytes:
        """This collector's series in the text format (or one gzip member of it), made once per read of the table.

        ~1.2 kB per monitor: 120 MB at 100k monitors, about a tenth of that gzipped.
        """
        with self._lock:
            if time.monotonic() - self._loaded_at > self._cache_seconds:
                self._reload()
            if self._text is None:
                self._text = exposition_text(self._rows, read_ok=self._read_ok, read_seconds=self._read_seconds)
                self._gzipped = None
            if gzipped:
                if self._gzipped is None:
                    self._gzipped = gzip.compress(self._text, compresslevel=1)
                return self._gzipped
            return self._text

    def collect(self) -> Iterator[Metric]:
        rows = self._current_rows()
        yield GaugeMetricFamily(*READ_UP, value=1 if self._read_ok else 0)
        yield GaugeMetricFamily(*READ_DURATION, value=self._read_seconds)
        for family in FAMILIES:
            metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
            for row in rows:
                for labels, value in family.samples(row):
                    metric.add_metric(labels, value)
            yield metric


_collector: MonitorCollector | None = None


def monitor_collector() -> MonitorCollector:
    global _collector
    if _collector is None:
        _collector = MonitorCollector(cache_seconds=env_int("LOOKOUT_METRICS_CACHE_SECONDS", int(CACHE_SECONDS),
                                                            minimum=0))
    return _collector
