"""Per-monitor series, read from the database: the one place they come from, whichever worker probed.

Bounded by design (docs/metrics.md): every monitor has at most 5 series (DEFAULT_FAMILIES); the others
(OPT_IN_FAMILIES: status state set, phases, open incidents, region up) only for the monitors that name them in
`Monitor.metrics`, or for every monitor through LOOKOUT_MONITOR_METRICS_DETAIL.

Rendered as a snapshot (snapshot_render): one pass over a server-side cursor of only the needed columns, the text
written straight in Prometheus' format and gzipped chunk by chunk (one gzip member per family and chunk, which
every gzip reader concatenates), so neither the rows nor the whole text are ever held. The snapshot is made by a
process of its own (lookout.observability.refresher), never in beat's dispatching one; beat serves its bytes.
"""

import gzip
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import DatabaseError, connection
from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from lookout.monitors.models import MetricsDetail, Monitor, MonitorRegion, MonitorStatus, RegionStatus
from lookout.monitors.selectors import region_stale_after
from lookout.probes.engine import PHASES

logger = logging.getLogger(__name__)

CHUNK_ROWS = 20_000  # rows per fetch and per gzip member: ~10 MB of text in flight at most


@dataclass(frozen=True)
class Family:
    name: str
    help: str
    labels: tuple[str, ...]
    detail: str | None = None  # None: a default family; else the MetricsDetail that opts into it

    @property
    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} gauge\n"


INFO = Family("lookout_monitor_info", "Monitor metadata for joins (value 1).",
              ("monitor_id", "name", "host", "type", "owner"))
UP = Family("lookout_monitor_up", "1 up, 0 down; absent while pending, paused, in maintenance or degraded.",
            ("monitor_id",))
DURATION = Family("lookout_monitor_last_duration_seconds", "Duration of the last probe.", ("monitor_id",))
LAST_CHECK = Family("lookout_monitor_last_check_timestamp_seconds", "Unix time the last probe started.",
                    ("monitor_id",))
TLS = Family("lookout_tls_cert_expiry_timestamp_seconds", "Unix time the monitor's certificate expires.",
             ("monitor_id",))
STATUS = Family("lookout_monitor_status", "1 for the monitor's current status.", ("monitor_id", "status"),
                MetricsDetail.STATUS)
PHASE = Family("lookout_monitor_last_phase_duration_seconds", "Time per phase of the last probe.",
               ("monitor_id", "phase"), MetricsDetail.PHASES)
INCIDENTS = Family("lookout_monitor_open_incidents", "Open incidents of the monitor.", ("monitor_id",),
                   MetricsDetail.INCIDENTS)
REGION_UP = Family("lookout_monitor_region_up",
                   "1 up, 0 down from one of the monitor's regions; absent while unknown.",
                   ("monitor_id", "region"), MetricsDetail.REGIONS)
# At most one series each per monitor: 5 at most, fewer before the first probe or without a certificate.
DEFAULT_FAMILIES = (INFO, UP, DURATION, LAST_CHECK, TLS)
OPT_IN_FAMILIES = (STATUS, PHASE, INCIDENTS, REGION_UP)
FAMILIES = DEFAULT_FAMILIES + OPT_IN_FAMILIES
# Not per monitor: monitors per status (6 series), what the overview counts without the per-monitor state set.
MONITORS = Family("lookout_monitors", "Monitors per status.", ("status",))
READ_UP = ("lookout_monitor_collector_up",
           "1 when the last read of the monitors table succeeded, 0 on a database error or without a fresh "
           "snapshot.")
READ_DURATION = ("lookout_monitor_collector_duration_seconds",
                 "Time the last read and render of the monitors table took.")
SNAPSHOT_TIME = ("lookout_monitor_snapshot_timestamp_seconds", "Unix time the per-monitor snapshot was read.")


def details_everywhere() -> frozenset[str]:
    """LOOKOUT_MONITOR_METRICS_DETAIL: the opt-in details every monitor gets (`all`: every one)."""
    names = [name.strip() for name in settings.LOOKOUT_MONITOR_METRICS_DETAIL if name.strip()]
    if "all" in names:
        return frozenset(MetricsDetail.values)
    unknown = sorted(set(names) - set(MetricsDetail.values))
    if unknown:
        raise ImproperlyConfigured(f"LOOKOUT_MONITOR_METRICS_DETAIL: unknown {', '.join(unknown)}; the details are "
                                   f"{', '.join(MetricsDetail.values)} or all")
    return frozenset(names)


def _host(url: str) -> str:
    """The URL's hostname alone: no userinfo, port, path or query string can leak into a label."""
    scheme, separator, netloc = url.partition("://")
    for end in "/?#":
        netloc = netloc.partition(end)[0]
    # urlsplit costs ~7 us a URL, most of a refresh at 1M monitors, and a cache of them thrashes on a full scan
    # every refresh; it stays the answer where the plain split could differ from it.
    if not separator or not scheme.isalpha() or "@" in netloc or "[" in netloc or "%" in netloc \
            or not netloc.isascii() or not url.isprintable() or " " in url:
        try:
            return urlsplit(url).hostname or ""
        except ValueError:
            return ""
    return netloc.partition(":")[0].lower()


def _label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def open_incident_counts() -> dict[int, int]:
    """Open incidents per monitor (few rows: only monitors with an open one), once alerting is installed."""
    if not apps.is_installed("lookout.alerting"):
        return {}
    try:
        incident = apps.get_model("alerting", "Incident")
        rows = incident.objects.filter(ended_at__isnull=True).values("monitor_id").annotate(open=Count("id"))
    except (LookupError, FieldError):  # an Incident without monitor/ended_at: nothing to report yet
        return {}
    return {row["monitor_id"]: row["open"] for row in rows}


def regions_up(monitor_ids: Iterable[int] | None) -> dict[int, tuple[tuple[str, float], ...]]:
    """Each given (None: every) multi-region monitor's regions with a recent result, up (1) or down (0)."""
    now = timezone.now()
    answer: dict[int, list[tuple[str, float]]] = {}
    rows = MonitorRegion.objects.all()
    if monitor_ids is not None:
        rows = rows.filter(monitor_id__in=list(monitor_ids))
    columns = rows.values_list("monitor_id", "region", "status", "checked_at", "monitor__regions",
                               "monitor__interval", "monitor__timeout").order_by("monitor_id", "region")
    for monitor_id, region, status, checked_at, named, interval, timeout in columns.iterator(chunk_size=5000):
        if region in (named or []) and now - checked_at <= region_stale_after(interval=interval, timeout=timeout):
            answer.setdefault(monitor_id, []).append((region, 1.0 if status == RegionStatus.UP else 0.0))
    return {monitor_id: tuple(states) for monitor_id, states in answer.items()}


def _opted_in(detail: str) -> list[int]:
    if connection.vendor != "postgresql":  # SQLite (lookout dev) has no JSON containment: few rows, read them
        return [pk for pk, metrics in Monitor.objects.values_list("id", "metrics") if detail in (metrics or [])]
    # jsonb containment, by the Monitor.metrics list: few monitors opt in, and this reads only their ids.
    return list(Monitor.objects.filter(metrics__contains=[detail]).values_list("id", flat=True))


# id, name, url, type, owner, status, last check, last duration (ms), TLS expiry, status/incidents/regions wanted,
# phases (JSON text, only when wanted): one row of _rows_sql.
Row = tuple[int, str, str, str, str, str, float | None, float | None, float | None, bool, bool, bool, str | None]


def _rows_sql(everywhere: frozenset[str]) -> str:
    """Only the columns the series need; times as epoch seconds and flags computed by PostgreSQL."""
    monitor = Monitor._meta.db_table
    owner = get_user_model()._meta.db_table

    def wants(detail: str) -> str:
        return "true" if detail in everywhere else f"""m.metrics @> '["{detail}"]'::jsonb"""

    return (f"SELECT m.id, m.name, m.url, m.type, o.username, m.status,"
            f" extract(epoch FROM m.last_checked_at)::float8, m.last_response_time_ms,"
            f" extract(epoch FROM m.tls_not_after)::float8,"
            f" {wants(MetricsDetail.STATUS)}, {wants(MetricsDetail.INCIDENTS)}, {wants(MetricsDetail.REGIONS)},"
            f" CASE WHEN {wants(MetricsDetail.PHASES)} THEN m.last_phases::text END"
            f" FROM {monitor} m JOIN {owner} o ON o.id = m.owner_id ORDER BY m.id")


def _row_batches(everywhere: frozenset[str]) -> Iterator[list[Row]]:
    if connection.vendor == "postgresql":
        # A named (server-side) cursor: PostgreSQL sends CHUNK_ROWS rows at a time, never the whole table.
        with connection.chunked_cursor() as cursor:
            cursor.execute(_rows_sql(everywhere))
            while fetched := cursor.fetchmany(CHUNK_ROWS):
                yield cast(list[Row], fetched)
        return
    # Elsewhere (lookout dev's SQLite, a few monitors): the same rows through the ORM.
    columns = Monitor.objects.values_list("id", "name", "url", "type", "owner__username", "status", "last_checked_at",
                                          "last_response_time_ms", "tls_not_after", "metrics", "last_phases")
    batch: list[Row] = []
    for pk, name, url, kind, owner, status, checked, elapsed, not_after, metrics, phases in \
            columns.order_by("id").iterator(chunk_size=CHUNK_ROWS):
        wants = everywhere | set(metrics or [])
        batch.append((pk, name, url, kind, owner, status, checked.timestamp() if checked else None, elapsed,
                      not_after.timestamp() if not_after else None, MetricsDetail.STATUS in wants,
                      MetricsDetail.INCIDENTS in wants, MetricsDetail.REGIONS in wants,
                      json.dumps(phases or {}) if MetricsDetail.PHASES in wants else None))
        if len(batch) >= CHUNK_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Snapshot:
    """One refresh's result: the gzipped exposition of each shard (shard i of n: monitor_id % n == i)."""

    shards: list[bytes]
    read_ok: bool
    read_seconds: float
    read_at: float
    series: int = 0  # per-monitor series, all shards together
    monitors: int = 0
    text_bytes: int = 0  # the text before gzip, all shards together


@dataclass
class _Shard:
    members: dict[str, list[bytes]]  # family name -> gzip members (after the header's)
    pending: dict[str, list[str]]
    by_status: dict[str, int] = field(default_factory=dict)


_UP_VALUE: dict[str, str] = {MonitorStatus.UP: "1.0", MonitorStatus.DOWN: "0.0"}


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), compresslevel=1, mtime=0)


class _Renderer:
    """Text lines per shard and family, gzipped every CHUNK_ROWS rows."""

    def __init__(self, shards: int, incidents: dict[int, int], regions: dict[int, tuple[tuple[str, float], ...]]):
        self.count = shards
        self.shards = [_Shard({f.name: [] for f in FAMILIES}, {f.name: [] for f in FAMILIES})
                       for _ in range(shards)]
        self.incidents = incidents
        self.regions = regions
        self.series = 0
        self.text_bytes = 0

    def row(self, row: "Row") -> None:
        (pk, name, url, kind, owner, status, checked, elapsed_ms, not_after, want_status, want_incidents,
         want_regions, phases) = row
        shard = self.shards[pk % self.count]
        out = shard.pending
        monitor_id = str(pk)
        shard.by_status[status] = shard.by_status.get(status, 0) + 1
        out[INFO.name].append(f'lookout_monitor_info{{monitor_id="{monitor_id}",name="{_label_value(name)}",'
                              f'host="{_label_value(_host(url))}",type="{kind}",owner="{_label_value(owner)}"}}'
                              f" 1.0\n")
        series = 1
        up = _UP_VALUE.get(status)
        if up is not None:
            out[UP.name].append(f'lookout_monitor_up{{monitor_id="{monitor_id}"}} {up}\n')
            series += 1
        if elapsed_ms is not None:
            out[DURATION.name].append(f'lookout_monitor_last_duration_seconds{{monitor_id="{monitor_id}"}} '
                                      f"{elapsed_ms / 1000!r}\n")
            series += 1
        if checked is not None:
            out[LAST_CHECK.name].append(f'lookout_monitor_last_check_timestamp_seconds{{monitor_id="{monitor_id}"}} '
                                        f"{checked!r}\n")
            series += 1
        if not_after is not None:
            out[TLS.name].append(f'lookout_tls_cert_expiry_timestamp_seconds{{monitor_id="{monitor_id}"}} '
                                 f"{not_after!r}\n")
            series += 1
        if want_status:
            out[STATUS.name].extend(f'lookout_monitor_status{{monitor_id="{monitor_id}",status="{value}"}} '
                                    f"{'1.0' if value == status else '0.0'}\n" for value in MonitorStatus.values)
            series += len(MonitorStatus.values)
        if phases is not None:
            last = json.loads(phases)
            for phase in PHASES:
                if phase in last:
                    out[PHASE.name].append(f'lookout_monitor_last_phase_duration_seconds{{monitor_id="{monitor_id}",'
                                           f'phase="{phase}"}} {last[phase] / 1000!r}\n')
                    series += 1
        if want_incidents:
            out[INCIDENTS.name].append(f'lookout_monitor_open_incidents{{monitor_id="{monitor_id}"}} '
                                       f"{float(self.incidents.get(pk, 0))!r}\n")
            series += 1
        if want_regions:
            for region, value in self.regions.get(pk, ()):
                out[REGION_UP.name].append(f'lookout_monitor_region_up{{monitor_id="{monitor_id}",'
                                           f'region="{region}"}} {value!r}\n')
                series += 1
        self.series += series

    def flush(self) -> None:
        for shard in self.shards:
            for name, lines in shard.pending.items():
                if lines:
                    text = "".join(lines)
                    self.text_bytes += len(text)
                    shard.members[name].append(_gzip(text))
                    lines.clear()

    def finish(self, *, read_ok: bool, read_seconds: float, read_at: float) -> list[bytes]:
        self.flush()
        answer = []
        for shard in self.shards:
            lines = [f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} {value!r}\n"
                     for (name, text), value in ((READ_UP, 1.0 if read_ok else 0.0), (READ_DURATION, read_seconds),
                                                 (SNAPSHOT_TIME, read_at))]
            lines.append(MONITORS.header)
            lines.extend(f'lookout_monitors{{status="{status}"}} {float(shard.by_status.get(status, 0))!r}\n'
                         for status in MonitorStatus.values)
            head = "".join(lines)
            self.text_bytes += len(head)
            parts = [_gzip(head)]
            for family in FAMILIES:
                parts.append(_gzip(family.header))
                parts.extend(shard.members[family.name])
            answer.append(b"".join(parts))
        return answer


def snapshot_render(*, shards: int = 1) -> Snapshot:
    """Read the monitors table once and render every shard's exposition; a database error gives a snapshot of
    no per-monitor series whose lookout_monitor_collector_up is 0 (the scrape itself never fails)."""
    started = time.perf_counter()
    read_at = time.time()
    everywhere = details_everywhere()
    try:
        incidents = open_incident_counts()
        regions = regions_up(None if MetricsDetail.REGIONS in everywhere else _opted_in(MetricsDetail.REGIONS))
        renderer = _Renderer(shards, incidents, regions)
        for batch in _row_batches(everywhere):
            for row in batch:
                renderer.row(row)
            renderer.flush()
        read_ok = True
    except DatabaseError as exc:
        logger.warning("per-monitor metrics unavailable: database error (%s)", exc)
        renderer, read_ok = _Renderer(shards, {}, {}), False
    seconds = time.perf_counter() - started
    texts = renderer.finish(read_ok=read_ok, read_seconds=seconds, read_at=read_at)
    monitors = sum(sum(shard.by_status.values()) for shard in renderer.shards)
    return Snapshot(texts, read_ok, seconds, read_at, renderer.series, monitors, renderer.text_bytes)


class MonitorCollector(Collector):
    """The snapshot as a prometheus-client collector, rendered in this process (tests, a shell, a bench); a
    serving process uses the refresher's snapshot instead. Reuses a render for `cache_seconds`."""

    def __init__(self, cache_seconds: float = 0.0) -> None:
        self._cache_seconds = cache_seconds
        self._snapshot: Snapshot | None = None
        self._made_at = float("-inf")

    def snapshot(self) -> Snapshot:
        if self._snapshot is None or time.monotonic() - self._made_at > self._cache_seconds:
            try:
                self._snapshot = snapshot_render()
            finally:
                connection.close()  # as the refresher: no connection held between renders
            self._made_at = time.monotonic()
        return self._snapshot

    def exposition(self, *, gzipped: bool = False) -> bytes:
        body = self.snapshot().shards[0]
        return body if gzipped else gzip.decompress(body)

    def collect(self) -> Iterable[Metric]:
        yield from text_string_to_metric_families(self.exposition().decode())
