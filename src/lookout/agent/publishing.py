"""Sending results and heartbeats home: to the `results` exchange, which the home side declares (never here).

Results finishing together go in one message (lookout.batching): each probe task waits for its batch's publisher
confirm, so a run is acknowledged (acks late) only once its result is durable on the broker.
"""

import functools
import logging
from typing import Any

from celery import Celery

from lookout.batching import Batcher

logger = logging.getLogger(__name__)

RESULTS_TASK = "lookout.probes.remote.results_record"
WORKER_SEEN_TASK = "lookout.probes.remote.worker_seen"
RESULTS_EXCHANGE = "results"
# A heartbeat older than this says nothing about the prober any more: RabbitMQ drops it unread.
HEARTBEAT_EXPIRATION_SECONDS = 60


def home_send(app: Celery, name: str, kwargs: dict[str, Any], *, persistent: bool, **options: Any) -> None:
    """Publish a task message to the `results` exchange. `declare=[]`: Celery would otherwise declare the routed
    queue, which a region's broker user may not configure. With confirm_publish this returns once confirmed."""
    app.send_task(name, kwargs=kwargs, exchange=RESULTS_EXCHANGE, routing_key=RESULTS_EXCHANGE, declare=[],
                  delivery_mode=2 if persistent else 1, ignore_result=True, **options)


class ResultPublisher:
    def __init__(self, app: Celery) -> None:
        self._app = app
        # A failed publish is the whole batch's (the broker's), never one result's: every caller gets it at once.
        self._batcher: Batcher[dict[str, Any], None] = Batcher(
            self._publish, name="lookout-result-publish", max_size=100, shared_errors=(Exception,))

    def publish(self, result: dict[str, Any]) -> None:
        """Return once the message holding this result was confirmed by the broker; raise if it was not."""
        self._batcher.run(result)

    def publish_many(self, results: list[dict[str, Any]]) -> None:
        """As publish, for a batch's results (they share messages, with other batches' results finishing
        together)."""
        self._batcher.run_many(results)

    def _publish(self, results: list[dict[str, Any]]) -> list[None]:
        home_send(self._app, RESULTS_TASK, {"results": results}, persistent=True)
        return [None] * len(results)


@functools.cache
def results_publisher(app: Celery) -> ResultPublisher:
    """The process's publisher for this app (one batcher thread per process and app)."""
    return ResultPublisher(app)
