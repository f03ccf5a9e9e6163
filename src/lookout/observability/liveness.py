"""Whether the worker's consumer still goes round: the worker's /healthz and /readyz on its metrics port.

A worker is alive while its consumer loop turns (it wakes at least every 2 s to drain the broker connection,
busy or idle) or while it is reconnecting to the broker. A broker outage is not a reason to restart: every
pod would crash-loop and none would be there when the broker returns. It shows in /readyz and in
`lookout_worker_broker_connected` instead. Only a loop that stopped turning while connected (wedged on a
dead socket, blocked by a greenlet that never yields) fails liveness, so Kubernetes restarts that pod.
"""

import threading
import time
from typing import Any

from celery.worker.consumer import Consumer

# The loop wakes every 2 s (drain_events timeout); a minute without a turn is a wedge, not load.
CONSUMER_STALE_SECONDS = 60.0


class ConsumerState:
    """Stamped by the consumer loop; read by the health endpoint's thread (a greenlet under gevent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_loop = time.monotonic()
        self.connected = False
        self.connecting_since: float | None = None

    def loop_turned(self) -> None:
        self.last_loop = time.monotonic()  # a float store: atomic, no lock needed on the hot path

    def connecting(self) -> None:
        with self._lock:
            self.connected = False
            if self.connecting_since is None:
                self.connecting_since = time.monotonic()

    def connection_made(self) -> None:
        with self._lock:
            self.connected = True
            self.connecting_since = None
            self.last_loop = time.monotonic()

    def connection_lost(self) -> None:
        with self._lock:
            self.connected = False

    def loop_age(self) -> float:
        return time.monotonic() - self.last_loop

    def health(self, *, stale_after: float = CONSUMER_STALE_SECONDS) -> tuple[bool, str]:
        if self.connecting_since is not None:
            return True, f"reconnecting to the broker for {time.monotonic() - self.connecting_since:.0f}s"
        age = self.loop_age()
        if age > stale_after:
            return False, f"stuck: the consumer loop has not turned for {age:.0f}s"
        return True, "ok" if self.connected else "starting"

    def readiness(self) -> tuple[bool, str]:
        if self.connected:
            return True, "ok: consuming"
        if self.connecting_since is not None:
            return False, "broker unavailable: reconnecting"
        return False, "starting"


consumer_state = ConsumerState()


def kombu_retry_sleep_cooperative() -> None:
    """Make kombu's reconnect back-off yield to other greenlets instead of freezing the whole worker.

    `celery -P gevent` patches `time` only after gevent's thread patching has evaluated Celery's lazy proxies,
    which imports kombu.utils.functional with the original `time.sleep` bound (`from time import sleep`). Its
    retry_over_time() then sleeps 2, 4, ... 30 s between reconnection attempts with the hub blocked: no probe
    runs and /healthz stops answering, so Kubernetes would restart every worker during a broker outage.
    """
    from gevent import monkey

    if not monkey.is_module_patched("time"):
        return
    from kombu.utils import functional

    # celery-types leaves out functional.sleep (kombu's own `from time import sleep`).
    if functional.sleep is not time.sleep:  # type: ignore[attr-defined]
        functional.sleep = time.sleep  # type: ignore[attr-defined]


class LookoutConsumer(Consumer):
    """Celery's consumer, reporting each turn of its loop and its broker connection (CELERY_WORKER_CONSUMER)."""

    def perform_pending_operations(self) -> None:
        # The gevent pool runs Celery's synloop, which calls this once per turn, before draining the connection.
        consumer_state.loop_turned()
        super().perform_pending_operations()

    def connect(self) -> Any:
        # Blocks, retrying, until the broker answers: the worker is reconnecting, not stuck.
        consumer_state.connecting()
        connection = super().connect()
        consumer_state.connection_made()
        return connection

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        consumer_state.connection_lost()
        super().on_connection_error_after_connected(exc)

    def on_close(self) -> None:
        consumer_state.connection_lost()
        super().on_close()
