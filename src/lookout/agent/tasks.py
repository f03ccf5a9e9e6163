"""The tasks of a region's queue, `lookout.agent.probe` (kwargs {"run": RUN}) and `lookout.agent.probe_batch`
(kwargs {"runs": [RUN, ...]}, beat's batched runs, issue 18): probe, then send the RESULTs home.

It runs in the database-less agent (lookout.agent.app) and in a Django worker of the region alike: both set
lookout.agent.context before the first run. Acks late: a run is acknowledged once its result's message was
confirmed by the broker. A run that cannot be probed (malformed, another region's, sealed under another key) fails
and is acknowledged: delivering it again cannot help. A result that cannot be published sends the run back to its
queue (rejected, requeued) after a short pause: it is probed again, within the run's own message expiry.
A batch is all its runs at once: probed concurrently (at most LOOKOUT_WORKER_PROBES_IN_FLIGHT per process), its
results published home together, and acknowledged once all were confirmed; a run that cannot be probed is refused
alone, a run past its own expiry is skipped, and a result that cannot be sent requeues the whole batch.
"""

import logging
import threading
import time
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject
from celery.signals import worker_ready

from lookout.agent.context import configured, current
from lookout.agent.heartbeat import heartbeat_start
from lookout.agent.publishing import results_publisher
from lookout.agent.runs import RunInvalid, result_json, run_spec
from lookout.batching import InFlight
from lookout.environment import env_int
from lookout.observability.metrics import probe_observe, region_run_observe, schedule_lag_observe
from lookout.probes.engine import probe

logger = logging.getLogger(__name__)

PROBE_TASK = "lookout.agent.probe"
PROBE_BATCH_TASK = "lookout.agent.probe_batch"
# Before a run goes back to its queue when its result could not be sent: a broker that refuses results should
# not have every run of the region spin through this prober at full speed meanwhile.
UNSENT_PAUSE_SECONDS = 1.0


class _InFlight:
    """Probes of regions' runs running now in this process (the heartbeat's in_flight)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta

    def __call__(self) -> int:
        return self.count


in_flight = _InFlight()
# The batches' probes running at once in this process (the same variable as a home worker's setting).
runs_in_flight = InFlight(env_int("LOOKOUT_WORKER_PROBES_IN_FLIGHT", 500, minimum=1))


@shared_task(name=PROBE_TASK, bind=True, ignore_result=True, acks_late=True)
def region_probe(self: Task[Any, Any], run: dict[str, Any]) -> None:
    context = current()
    in_flight.add(1)
    try:
        if not (self.request.delivery_info or {}).get("redelivered"):  # as at home: a first attempt's lag only
            schedule_lag_observe(run.get("due"), region=context.region)
        try:
            if run.get("region") != context.region:
                raise RunInvalid(f"a run for region {run.get('region')!r} reached a prober of {context.region!r}")
            spec = run_spec(run, key=context.key, policy=context.policy, user_agent=context.user_agent)
        except RunInvalid:
            region_run_observe(region=context.region, outcome="refused")
            raise
        outcome = probe(spec)
        probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                      phases=outcome.phases, region=context.region)
        result = result_json(outcome, run, worker=self.request.hostname or "")
        try:
            results_publisher(self.app).publish(result)
        except Exception as exc:
            region_run_observe(region=context.region, outcome="unsent")
            logger.warning("result of monitor %s not sent home (%s): the run goes back to its queue",
                           run.get("monitor"), exc)
            time.sleep(UNSENT_PAUSE_SECONDS)
            raise Reject(str(exc), requeue=True) from exc
        region_run_observe(region=context.region, outcome="probed")
    finally:
        in_flight.add(-1)


@shared_task(name=PROBE_BATCH_TASK, bind=True, ignore_result=True, acks_late=True)
def region_probe_batch(self: Task[Any, Any], runs: list[dict[str, Any]]) -> None:
    context = current()
    first_attempt = not (self.request.delivery_info or {}).get("redelivered")
    worker = self.request.hostname or ""

    def run_one(run: dict[str, Any]) -> dict[str, Any] | None:
        started = time.time()
        expires = run.get("expires")
        if isinstance(expires, int | float) and started >= expires:
            return None  # waited past its own expiry for a slot: the region's next run is due already
        if first_attempt:
            schedule_lag_observe(run.get("due"), started_at=started, region=context.region)
        try:
            if run.get("region") != context.region:
                raise RunInvalid(f"a run for region {run.get('region')!r} reached a prober of {context.region!r}")
            spec = run_spec(run, key=context.key, policy=context.policy, user_agent=context.user_agent)
        except (RunInvalid, AttributeError) as exc:  # AttributeError: a run that is not an object
            region_run_observe(region=context.region, outcome="refused")
            logger.warning("run refused: %s", exc)
            return None
        outcome = probe(spec)
        probe_observe(probe_type=spec.type, success=outcome.success, seconds=outcome.response_time_ms / 1000,
                      phases=outcome.phases, region=context.region)
        return result_json(outcome, run, worker=worker)

    in_flight.add(len(runs))
    try:
        results = [result for result in runs_in_flight.map(run_one, runs) if result is not None]
        if not results:
            return
        try:
            results_publisher(self.app).publish_many(results)
        except Exception as exc:
            for _ in results:
                region_run_observe(region=context.region, outcome="unsent")
            logger.warning("results of a batch of %d runs not sent home (%s): the batch goes back to its queue",
                           len(runs), exc)
            time.sleep(UNSENT_PAUSE_SECONDS)
            raise Reject(str(exc), requeue=True) from exc
        for _ in results:
            region_run_observe(region=context.region, outcome="probed")
    finally:
        in_flight.add(-len(runs))


@worker_ready.connect
def region_heartbeat_start(sender: Any = None, **_: Any) -> None:
    """A worker of a region beats; a home worker (no region configured) does not."""
    context = configured()
    if context is None or sender is None:
        return
    heartbeat_start(sender.app, region=context.region, worker=sender.hostname, in_flight=in_flight)
