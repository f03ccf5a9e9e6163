"""Worker and beat process wiring: the metrics and health port of the worker (default 9540) and beat (default
9541), the worker's task counts, its garbage collector's settings, and beat's lookout_degraded.

Imported by the worker and beat through CELERY_IMPORTS, after Django is set up, so it may import models.
"""

import gc
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from celery.signals import beat_init, task_failure, task_retry, task_revoked, worker_init, worker_ready
from celery.worker import state
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone
from prometheus_client import REGISTRY

from lookout import __version__
from lookout.agent import context as region_context
from lookout.alerting.guard import guard_degraded
from lookout.alerting.models import AttemptOutcome, ChannelKind
from lookout.config.env import env_int, env_str
from lookout.core.regions import region_key
from lookout.core.target_policy import target_policy
from lookout.observability.health import database_ok
from lookout.observability.liveness import consumer_state, kombu_retry_sleep_cooperative
from lookout.observability.metrics import (
    BEAT_DISPATCHES,
    TASK_FAILURES,
    TASK_RETRIES,
    TASKS_EXPIRED,
    DegradedCollector,
    RegionCollector,
    RegionGauges,
    beat_metrics,
    worker_series_initialize,
)
from lookout.observability.refresher import snapshot_feed
from lookout.observability.server import metrics_server_start
from lookout.probes.remote import region_worker_seen
from lookout.regions.selectors import region_gauges
from lookout.scheduling.lock import current_lock
from lookout.scheduling.scheduler import LookoutScheduler
from lookout.scheduling.schedules import PROBE_TASK

# Beat ticks at least every second (CELERY_BEAT_MAX_LOOP_INTERVAL), a standby every few seconds: a loop
# silent for this long is wedged, and a liveness probe should restart it.
BEAT_STALE_SECONDS = 60.0


def beat_health(service: Any) -> tuple[bool, str]:
    """Alive while the loop ticks; the body says whether this beat holds the single-beat lock."""
    # Celery's beat Service stamps _last_tick on every pass (its own remote-control staleness check reads it).
    last_tick = getattr(service, "_last_tick", None)
    if last_tick is not None and time.monotonic() - last_tick > BEAT_STALE_SECONDS:
        return False, f"stale: no scheduler tick for {time.monotonic() - last_tick:.0f}s"
    lock = current_lock()
    if lock is None or not lock.tried:
        return True, "starting"
    if not lock.requires_lock:
        return True, "active: single process, no scheduler lock needed"
    if lock.held:
        return True, "active: holds the scheduler lock"
    return True, "standby: waiting for the scheduler lock"


def beat_readiness() -> tuple[bool, str]:
    """Ready while the database answers: without it beat can neither hold the lock nor read schedules."""
    try:
        return database_ok()
    finally:
        connection.close()  # each request runs on a thread of its own


def _in_flight() -> float:
    return len(state.active_requests)


def metrics_host() -> str:
    # Every interface by default, as a container needs for its kubelet probes; `lookout dev` sets the API's host.
    return env_str("LOOKOUT_METRICS_HOST") or "0.0.0.0"


@worker_init.connect
def worker_metrics_start(sender: Any = None, **_: Any) -> None:
    # At worker_init, before the consumer connects: a worker waiting for the broker answers /healthz (alive,
    # reconnecting) instead of looking dead to its startup probe.
    kombu_retry_sleep_cooperative()
    worker_series_initialize(
        tasks=[name for name in sender.app.tasks if name.startswith("lookout.")],
        concurrency=int(sender.concurrency or 0), in_flight=_in_flight, loop_age=consumer_state.loop_age,
        broker_connected=lambda: 1 if consumer_state.connected else 0,
        delivery_labels=[(kind, outcome) for kind in ChannelKind.values for outcome in AttemptOutcome.values],
    )
    # Workers export fleet-wide series only: per-monitor ones would be duplicated by every replica.
    metrics_server_start(port=env_int("LOOKOUT_METRICS_PORT", 9540), host=metrics_host(), include_monitors=False,
                         health=consumer_state.health, readiness=consumer_state.readiness)


logger = logging.getLogger(__name__)

# /api/v1/regions/ counts the workers seen in the last minute: a beat every 15 s survives three lost ones.
HEARTBEAT_SECONDS = 15.0


def home_worker_heartbeat(worker: str) -> bool:
    """Record this home worker in its region's workers (RegionWorker); False, logged, when the database fails:
    a heartbeat is worth less than the worker it reports on."""
    try:
        region_worker_seen(region=settings.LOOKOUT_HOME_REGION, worker=worker, at=timezone.now(),
                           in_flight=int(_in_flight()), version=__version__)
        return True
    except Exception:  # noqa: BLE001 - a database outage must not end the loop
        logger.warning("worker heartbeat not recorded", exc_info=True)
        return False
    finally:
        # The loop's own connection (a thread, a greenlet under gevent): none held between beats. (Never one a
        # caller's transaction is using.)
        if not connection.in_atomic_block:
            connection.close()


@worker_init.connect
def region_context_configure(**_: Any) -> None:
    """A worker of another region (`lookout worker --region NAME`) probes that region's runs as an agent does: with
    the region's key (derived here, from the home side's material) and this installation's safe-target policy."""
    if settings.LOOKOUT_REGION != settings.LOOKOUT_HOME_REGION:
        region_context.configure(region=settings.LOOKOUT_REGION, key=region_key(settings.LOOKOUT_REGION),
                                 policy=target_policy())


@worker_ready.connect
def home_worker_heartbeat_start(sender: Any = None, **_: Any) -> None:
    """Home workers beat from here; other regions' workers and agents through lookout.probes.remote.worker_seen."""
    hostname = getattr(sender, "hostname", None)
    if not hostname or settings.LOOKOUT_REGION != settings.LOOKOUT_HOME_REGION:
        return

    def beat() -> None:
        while True:
            home_worker_heartbeat(str(hostname))
            time.sleep(HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="lookout-heartbeat", daemon=True).start()


# The youngest generation is collected every 10,000 (not 700) net allocations, each older one every 20 (not 10)
# collections of the one below.
WORKER_GC_THRESHOLD = (10_000, 20, 20)


@worker_ready.connect
def worker_gc_tune(**_: Any) -> None:
    """Collections walked the ~150,000 objects of a started worker (Django, Celery, models) over and over: ~11 %
    of a busy worker's CPU. Frozen, they are skipped; with the higher threshold, collections run ~40 rather than
    ~1,300 times in 10 s at 500 probes/s. Together: ~3 % (bench/probes.py). Cycles are still collected."""
    gc.freeze()
    gc.set_threshold(*WORKER_GC_THRESHOLD)


@task_failure.connect
def task_failure_count(sender: Any = None, **_: Any) -> None:
    TASK_FAILURES.labels(task=getattr(sender, "name", "unknown")).inc()


@task_retry.connect
def task_retry_count(sender: Any = None, **_: Any) -> None:
    TASK_RETRIES.labels(task=getattr(sender, "name", "unknown")).inc()


@task_revoked.connect
def task_expired_count(sender: Any = None, expired: bool = False, **_: Any) -> None:
    if expired:
        TASKS_EXPIRED.labels(task=getattr(sender, "name", "unknown")).inc()


@beat_init.connect
def beat_metrics_start(sender: Any = None, **_: Any) -> None:

    def dispatching() -> bool:
        lock = current_lock()
        return lock is not None and lock.held

    metrics = beat_metrics()
    metrics.lock_held.set_function(lambda: 1 if dispatching() else 0)
    for outcome in ("sent", "failed", "skipped"):
        BEAT_DISPATCHES.labels(task=PROBE_TASK, outcome=outcome)
    # Per-monitor series only from the beat that dispatches: a hot standby would double every one of them. They are
    # rendered by a process of beat's own (the snapshot feed's), never under this one's GIL.
    snapshot_feed().start(dispatching)
    metrics_server_start(port=env_int("LOOKOUT_METRICS_PORT", 9541), host=metrics_host(),
                         include_monitors=dispatching, health=lambda: beat_health(sender), readiness=beat_readiness)


@beat_init.connect
def beat_stop_on_signal(sender: Any = None, **_: Any) -> None:
    """SIGTERM and SIGINT stop beat between batches, never inside one (LookoutScheduler.stop_request).

    Replaces Celery's handler (apps.beat install_sync_handler), which closed the scheduler inside the handler and
    raised SystemExit wherever the loop was: in the middle of a batch's socket write or confirm wait.
    """
    scheduler = sender.scheduler  # built before beat_init (Service.start reads its max_interval first)
    if not isinstance(scheduler, LookoutScheduler):
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if scheduler.stop_request():  # idle (sleeping between ticks): end the loop now
            raise SystemExit()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


def _degraded() -> bool:
    # The metrics thread serves no Django requests: nothing else drops a connection the database closed.
    close_old_connections()
    return guard_degraded()


@beat_init.connect
def degraded_metric_register(**_: Any) -> None:
    """Beat serves lookout_degraded: the one process that runs exactly once, like the per-monitor series."""
    REGISTRY.register(DegradedCollector(_degraded))


def _region_gauges() -> dict[str, RegionGauges]:
    close_old_connections()  # the metrics thread serves no Django requests, as for _degraded
    try:
        return {region: RegionGauges(suspect=suspect, workers=workers)
                for region, (suspect, workers) in region_gauges().items()}
    except DatabaseError:
        logger.warning("region metrics unavailable: database error", exc_info=True)
        return {}


@beat_init.connect
def region_metrics_register(**_: Any) -> None:
    """Beat serves lookout_region_suspect and lookout_region_workers, like lookout_degraded."""
    REGISTRY.register(RegionCollector(_region_gauges))
