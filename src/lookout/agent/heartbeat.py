"""The prober's heartbeat: every 15 s, `worker_seen` (region, worker, probes in flight, version) to home."""

import logging
import threading
import time
from collections.abc import Callable

from celery import Celery

from lookout import __version__
from lookout.agent.publishing import HEARTBEAT_EXPIRATION_SECONDS, WORKER_SEEN_TASK, home_send

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0


def heartbeat_send(app: Celery, *, region: str, worker: str, in_flight: int) -> None:
    home_send(app, WORKER_SEEN_TASK, {"region": region, "worker": worker, "in_flight": in_flight,
                                      "version": __version__, "at": time.time()},
              persistent=False, expiration=HEARTBEAT_EXPIRATION_SECONDS)


def heartbeat_start(app: Celery, *, region: str, worker: str, in_flight: Callable[[], int],
                    every: float = HEARTBEAT_SECONDS) -> threading.Thread:
    """A daemon thread (a greenlet under gevent) that beats until the process ends, the first beat at once."""
    def beat() -> None:
        while True:
            try:
                heartbeat_send(app, region=region, worker=worker, in_flight=in_flight())
            except Exception as exc:  # the broker is away: the next beat tries again, home notices the gap
                logger.warning("heartbeat of %s (region %s) not sent: %s", worker, region, exc)
            time.sleep(every)

    thread = threading.Thread(target=beat, name="lookout-region-heartbeat", daemon=True)
    thread.start()
    return thread
