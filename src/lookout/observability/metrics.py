"""Every metric Lookout's processes define, in one place (documented in docs/metrics.md).

Workers export fleet-wide series only; per-monitor series come from the database collector
(lookout.observability.collector), served by beat alone so replicas never double-count.

Metrics with labels are defined here at import: a labelled metric has no series until a label set is used.
Metrics without labels exist (at zero) as soon as they are created, so the worker's and beat's own are
created by worker_metrics() / beat_metrics() in that process only: otherwise every process, the API's
gunicorn workers included, would export the other processes' series at zero.
"""

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

from lookout.probes.engine import PHASES, PROBE_TYPES

# `*_created` series double the count of every counter and histogram and no dashboard or rule reads them.
disable_created_metrics()

# Probe latency spans a few ms (loopback) to the longest timeouts.
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Schedule lag: tens of ms when healthy; minutes when beat or the workers fall behind.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# One beat tick sends the runs due (in batches, up to 0.25 s of sending) and reads changed schedules.
TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

PROBE_RESULTS = ("success", "failure")

# The Unix time a scheduled message was due, stamped by beat (lookout.scheduling); check-now carries none.
DUE_AT_HEADER = "lookout_due_at"

# --- workers: probes (fleet-wide, no per-monitor label) -----------------------------------------------------

# `region`: the region of the process that probed (one per process; LOOKOUT_REGIONS bounds them fleet-wide).
PROBE_DURATION = Histogram(
    "lookout_probe_duration_seconds", "Wall time of a probe, fleet-wide.", ["type", "result", "region"],
    buckets=PROBE_BUCKETS,
)
PROBES = Counter("lookout_probes", "Probes run, fleet-wide.", ["type", "result", "region"])
PROBE_PHASE_DURATION = Histogram(
    "lookout_probe_phase_duration_seconds", "Time per probe phase (dns, connect, tls, processing, transfer).",
    ["phase", "region"], buckets=PROBE_BUCKETS,
)


def process_region() -> str:
    """The region this process probes from (LOOKOUT_REGION). Read late: the Django-free agent never gets here, it
    names its region itself."""
    from django.conf import settings

    region: str = settings.LOOKOUT_REGION
    return region


def probe_observe(*, probe_type: str, success: bool, seconds: float, phases: Mapping[str, float],
                  region: str = "") -> None:
    """Count one probe; `region` empty: this process's (a Django worker's LOOKOUT_REGION)."""
    region = region or process_region()
    duration, count, phase_durations = _probe_series(probe_type, success, region)
    duration.observe(seconds)
    count.inc()
    for phase, phase_seconds in phases.items():
        series = phase_durations.get(phase)
        if series is None:
            if phase not in PHASES:  # the label stays bounded whatever an engine reports
                continue
            series = phase_durations[phase] = PROBE_PHASE_DURATION.labels(phase=phase, region=region)
        series.observe(phase_seconds)


@functools.cache
def _probe_series(probe_type: str, success: bool, region: str) -> tuple[Histogram, Counter, dict[str, Histogram]]:
    """A probe's series (its phases' filled in as they come), looked up once per label set: `labels()` per probe was
    ~5 % of a busy worker's CPU."""
    result = "success" if success else "failure"
    return (PROBE_DURATION.labels(type=probe_type, result=result, region=region),
            PROBES.labels(type=probe_type, result=result, region=region), {})


# --- region probers: runs taken from a region's queue (label `region`: the configured names, a handful) ---------

REGION_RUN_OUTCOMES = ("probed", "refused", "unsent")
REGION_RUNS = Counter(
    "lookout_region_runs",
    "Runs of a region's queue this prober took: probed (result confirmed by the broker), refused (malformed, "
    "for another region, or sealed under another key) or unsent (result not published: the run is requeued).",
    ["region", "outcome"],
)


def region_run_observe(*, region: str, outcome: str) -> None:
    REGION_RUNS.labels(region=region, outcome=outcome).inc()


def region_series_initialize(region: str) -> None:
    for outcome in REGION_RUN_OUTCOMES:
        REGION_RUNS.labels(region=region, outcome=outcome)


# --- workers: tasks (label `task`: the registered task name, a fixed handful) -------------------------------

TASK_FAILURES = Counter("lookout_task_failures", "Tasks that raised (after their last retry).", ["task"])
TASK_RETRIES = Counter("lookout_task_retries", "Task attempts that failed and were retried.", ["task"])
TASKS_EXPIRED = Counter("lookout_tasks_expired", "Messages dropped unrun because they expired.", ["task"])

# --- workers: alert deliveries (one increment per attempt) --------------------------------------------------

ALERT_DELIVERIES = Counter(
    "lookout_alert_deliveries",
    "Alert delivery attempts by outcome: delivered, transient (retried), permanent (not retried), abandoned.",
    ["channel_kind", "outcome"],
)


def alert_delivery_observe(*, channel_kind: str, outcome: str) -> None:
    """Count one delivery attempt (the caller's kind and outcome are among its app's choices: bounded labels)."""
    ALERT_DELIVERIES.labels(channel_kind=channel_kind, outcome=outcome).inc()


@dataclass(frozen=True)
class WorkerMetrics:
    schedule_lag: Histogram
    tasks_in_flight: Gauge
    concurrency: Gauge
    broker_connected: Gauge
    consumer_loop_age: Gauge


@functools.cache
def worker_metrics() -> WorkerMetrics:
    return WorkerMetrics(
        schedule_lag=Histogram("lookout_schedule_lag_seconds",
                               "Scheduled probe start minus the time it was due (beat's schedule).", ["region"],
                               buckets=LAG_BUCKETS),
        tasks_in_flight=Gauge("lookout_worker_tasks_in_flight",
                              "Tasks running in this worker's pool (probes and any other)."),
        concurrency=Gauge("lookout_worker_concurrency", "Pool size of this worker: tasks it runs at once."),
        broker_connected=Gauge("lookout_worker_broker_connected",
                               "1 while the worker's consumer is connected to the broker, 0 while it reconnects."),
        consumer_loop_age=Gauge("lookout_worker_consumer_loop_age_seconds",
                                "Seconds since the consumer loop last went round (stuck when it keeps growing)."),
    )


def schedule_lag_observe(due_at: object, *, started_at: float | None = None, region: str = "") -> None:
    """Observe a scheduled probe's lag from the due time beat stamped on it (None for check-now)."""
    if due_at is None:
        return
    try:
        due = float(due_at)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    # A clock a little behind beat's must not record a negative lag.
    worker_metrics().schedule_lag.labels(region=region or process_region()).observe(
        max(0.0, (started_at or time.time()) - due))


def worker_series_initialize(*, tasks: Iterable[str], concurrency: int, in_flight: Callable[[], float],
                             loop_age: Callable[[], float], broker_connected: Callable[[], float],
                             delivery_labels: Iterable[tuple[str, str]] = (), region: str = "") -> None:
    """Create the worker's series at start, zeros included, so rates and ratios have data from the first scrape.

    `region` empty: this process's (a Django worker's LOOKOUT_REGION); the agent names its own."""
    metrics = worker_metrics()
    metrics.concurrency.set(concurrency)
    metrics.tasks_in_flight.set_function(in_flight)
    metrics.consumer_loop_age.set_function(loop_age)
    metrics.broker_connected.set_function(broker_connected)
    region = region or process_region()
    metrics.schedule_lag.labels(region=region)
    for probe_type in PROBE_TYPES:
        for result in PROBE_RESULTS:
            PROBES.labels(type=probe_type, result=result, region=region)
    for task in tasks:
        TASK_FAILURES.labels(task=task)
        TASK_RETRIES.labels(task=task)
        TASKS_EXPIRED.labels(task=task)
    for kind, outcome in delivery_labels:
        ALERT_DELIVERIES.labels(channel_kind=kind, outcome=outcome)


# --- beat -----------------------------------------------------------------------------------------------------

BEAT_DISPATCHES = Counter("lookout_beat_dispatches",
                          "Runs beat sent (broker-confirmed), failed to send (retried), or skipped as too late.",
                          ["task", "outcome"])


@dataclass(frozen=True)
class BeatMetrics:
    tick_duration: Histogram
    last_tick: Gauge
    schedules: Gauge
    reloads: Counter
    lock_held: Gauge


@functools.cache
def beat_metrics() -> BeatMetrics:
    return BeatMetrics(
        tick_duration=Histogram("lookout_beat_tick_duration_seconds",
                                "Duration of one dispatching scheduler tick.", buckets=TICK_BUCKETS),
        last_tick=Gauge("lookout_beat_last_tick_timestamp_seconds",
                        "Unix time of this beat's last dispatching tick (0: it has not dispatched)."),
        schedules=Gauge("lookout_beat_schedules", "Enabled schedules (PeriodicTask rows) beat read last."),
        reloads=Counter("lookout_beat_schedule_reloads", "Times beat read its schedule from the database."),
        lock_held=Gauge("lookout_beat_lock_held",
                        "1 while this beat holds the single-beat lock and dispatches, 0 on standby."),
    )


# --- API ------------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter("lookout_http_requests", "API requests.", ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "lookout_http_request_duration_seconds", "API request latency.", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# --- alerting: the mass-failure guard ----------------------------------------------------------------------
# (Alert deliveries are counted above, fleet-wide like probes.) The guard's state is read from the database by
# beat alone, since any worker may open or end an episode.

_DEGRADED_HELP = "1 while the mass-failure guard suspects Lookout itself, else 0."


class DegradedCollector:
    """lookout_degraded: 1 while the mass-failure guard suspects Lookout itself (an episode is open), else 0."""

    def __init__(self, read: Callable[[], bool], cache_seconds: float = 5.0) -> None:
        self._read = read
        self._cache_seconds = cache_seconds
        self._value = 0.0
        self._read_at = float("-inf")

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration reads this instead of collect(): no database access at process start.
        yield GaugeMetricFamily("lookout_degraded", _DEGRADED_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if time.monotonic() - self._read_at > self._cache_seconds:
            self._value = 1.0 if self._read() else 0.0
            self._read_at = time.monotonic()
        yield GaugeMetricFamily("lookout_degraded", _DEGRADED_HELP, value=self._value)


# --- regions: suspect regions and their workers (read from the database by beat alone, like lookout_degraded) ----

_SUSPECT_HELP = "1 while the region is suspect (its votes not counted), else 0."
_WORKERS_HELP = "Workers and agents of the region seen in the last minute."


@dataclass(frozen=True)
class RegionGauges:
    suspect: bool
    workers: int


class RegionCollector:
    """lookout_region_suspect{region} and lookout_region_workers{region}, one series per configured region."""

    def __init__(self, read: Callable[[], Mapping[str, RegionGauges]], cache_seconds: float = 5.0) -> None:
        self._read = read
        self._cache_seconds = cache_seconds
        self._values: Mapping[str, RegionGauges] = {}
        self._read_at = float("-inf")

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration reads this instead of collect(): no database access at process start.
        yield GaugeMetricFamily("lookout_region_suspect", _SUSPECT_HELP, labels=["region"])
        yield GaugeMetricFamily("lookout_region_workers", _WORKERS_HELP, labels=["region"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if time.monotonic() - self._read_at > self._cache_seconds:
            self._values = self._read()
            self._read_at = time.monotonic()
        suspect = GaugeMetricFamily("lookout_region_suspect", _SUSPECT_HELP, labels=["region"])
        workers = GaugeMetricFamily("lookout_region_workers", _WORKERS_HELP, labels=["region"])
        for region, gauges in self._values.items():
            suspect.add_metric([region], 1.0 if gauges.suspect else 0.0)
            workers.add_metric([region], float(gauges.workers))
        yield suspect
        yield workers
