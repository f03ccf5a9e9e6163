"""Beat under load without workers, for the fault tests and bench/beat_sigterm.py: many probe schedules seeded in
one statement, and a consumer that records every probe message beat publishes.

The schedules are PeriodicTask rows only (beat reads nothing else); their argument is their own id, so a
message names the schedule it was sent for.
"""

import threading
import time
from dataclasses import dataclass

import psycopg
from kombu import Connection, Consumer, Exchange, Queue

PROBE_TASK = "lookout.probes.tasks.probe_monitor"
BATCH_TASK = "lookout.probes.tasks.probe_batch"  # beat sends probe runs in batches of these
DUE_AT_HEADER = "lookout_due_at"


def schedules_seed(database_url: str, *, count: int, interval: int, first_due: float,
                   spread: bool = False) -> list[int]:
    """`count` probe schedules every `interval` s, all first due at `first_due` (Unix time), or with `spread`
    their first runs evenly over one interval from then (a steady count / interval runs a second); their ids."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True) as db:
        every = db.execute("INSERT INTO django_celery_beat_intervalschedule (every, period) "
                           "VALUES (%s, 'seconds') RETURNING id", (interval,)).fetchone()[0]
        # last_run_at one interval before the first due time: beat sends the next run at last_run_at + interval.
        rows = db.execute(
            "INSERT INTO django_celery_beat_periodictask (name, task, interval_id, args, kwargs, queue, enabled, "
            "one_off, total_run_count, date_changed, description, headers, expire_seconds, last_run_at) "
            "SELECT 'load:' || n, %s, %s, '[]', '{}', 'probes', true, false, 0, now(), '', '{}', %s, "
            "to_timestamp(%s + (n - 1) * %s) FROM generate_series(1, %s) AS n RETURNING id",
            (PROBE_TASK, every, interval, first_due - interval, interval / count if spread else 0, count)).fetchall()
        ids = [row[0] for row in rows]
        db.execute("UPDATE django_celery_beat_periodictask SET args = '[' || id || ']' WHERE id = ANY(%s)", (ids,))
    return ids


def last_runs(database_url: str, ids: list[int]) -> dict[int, float | None]:
    """Each schedule's last_run_at as beat wrote it (Unix time; None if never written)."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as db:
        rows = db.execute("SELECT id, extract(epoch FROM last_run_at)::float8 FROM django_celery_beat_periodictask "
                          "WHERE id = ANY(%s)", (ids,)).fetchall()
    return dict(rows)


@dataclass(frozen=True, slots=True)
class ProbeMessage:
    at: float  # arrival, time.time()
    schedule: int  # the message's argument: the schedule's id
    due: float
    task_id: str


class ProbeRecorder:
    """Consumes the `probes` queue (no ack, no Celery worker) and keeps every run, in arrival order (a batch
    message's runs one by one)."""

    def __init__(self, broker_url: str) -> None:
        self.messages: list[ProbeMessage] = []
        self._broker_url = broker_url
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._consume, daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise AssertionError("the probe recorder did not connect to RabbitMQ")

    def settled(self, *, quiet: float = 1.0, timeout: float = 60) -> list[ProbeMessage]:
        """The messages once none arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while len(self.messages) != seen and time.monotonic() < deadline:
            seen = len(self.messages)
            time.sleep(quiet)
        return list(self.messages)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _consume(self) -> None:
        # As Celery declares a routed queue: a direct exchange and routing key named after it, durable.
        queue = Queue("probes", Exchange("probes", "direct"), routing_key="probes")

        def on_message(body, message) -> None:
            headers = message.headers or {}
            at = time.time()
            if headers.get("task") == BATCH_TASK:  # a batch: one record per run it carries
                self.messages.extend(ProbeMessage(at, int(monitor_id), float(due), task_id)
                                     for monitor_id, task_id, due in body[1]["runs"])
                return
            self.messages.append(ProbeMessage(at, int(body[0][0]), float(headers[DUE_AT_HEADER]), headers["id"]))

        with Connection(self._broker_url) as connection:
            with Consumer(connection, [queue], callbacks=[on_message], no_ack=True, accept=["json"]) as consumer:
                consumer.qos(prefetch_count=1000)
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass
