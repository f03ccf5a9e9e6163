"""Beat's publishing: batches of task messages, each batch confirmed by the broker in one wait.

Three costs dominate a naive beat at 1,000+ messages a second, and each is paid once per batch or per
schedule here instead of once per message:
- Celery's `confirm_publish` waits for the broker after every message. Here the channel is put in confirm mode
  once; a batch is published and its confirms (often one `multiple` ack) are collected together. A run counts
  as sent only once the broker confirmed it; anything else is reported as failed and the scheduler retries it.
- Celery's send_task routes, reads a dozen settings and builds the protocol-2 headers for every message. Here
  Celery builds the message once per task and route (a template, through the real send_task with a capturing
  producer, so the message is Celery's own); each send copies it with the schedule's arguments and headers
  and a new task id, expiry and due time.
- py-amqp writes each message to the socket on its own: on AMQP the frames of a batch go out in one write.
Transports without confirms (the embedded broker of `lookout dev`) count a publish that returned as sent.

A run's task id is derived from the schedule, the run's due time and the region (run_task_id): a run sent again
because its confirm was lost (a broken connection, a stop that could not wait for it) carries the same id, and
workers record a task id's result once (lookout.probes.results). A monitor probed from several regions gets one
message per region (lookout.scheduling.regional); its run counts as sent once every region's was confirmed.
"""

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.utils.saferepr import saferepr
from django.conf import settings

from lookout.core.regions import region_queue
from lookout.observability.metrics import DUE_AT_HEADER
from lookout.scheduling.entries import NEVER, Entry
from lookout.scheduling.regional import AGENT_BATCH_TASK, AGENT_TASK, BATCH_TASK, batch_key, batch_task_id, run_task_id

logger = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 5.0
# After a failed connection: 0.5 s, 1 s, 2 s, ... up to 5 s between attempts, so a broker outage costs beat
# one connection attempt per pause rather than one per due run.
RECONNECT_PAUSES = (0.5, 1.0, 2.0, 5.0)
_PLACEHOLDER_ID = "lookout-template-task-id"
_PLACEHOLDER_EXPIRES = datetime(2100, 1, 1, tzinfo=UTC)
_ARGSREPR_MAXSIZE = 1024  # Celery's default (Task.argsrepr_maxsize)


class Template:
    """Celery's message for one task and route, as send_task builds it; `message()` makes one run's message.

    Shared by every schedule with the same task and route (100k monitors share one): building it costs a
    full send_task, filling it in costs a few dict copies.
    """

    def __init__(self, body: Any, publish_kwargs: dict[str, Any]) -> None:
        self.embed = body[2]  # protocol 2: (args, kwargs, embed)
        self.kwargs = publish_kwargs
        headers = publish_kwargs["headers"]
        self._id_keys = [key for key, value in headers.items() if value == _PLACEHOLDER_ID]
        self._id_properties = [key for key, value in publish_kwargs.items() if value == _PLACEHOLDER_ID]

    def prepare(self, entry: Entry) -> "Prepared":
        headers = {**entry.options.get("headers", {}), "periodic_task_name": entry.name,
                   "argsrepr": saferepr(entry.args, _ARGSREPR_MAXSIZE),
                   "kwargsrepr": saferepr(entry.kwargs, _ARGSREPR_MAXSIZE)}
        return Prepared(self, (entry.args, entry.kwargs, self.embed), headers)

    def message(self, prepared: "Prepared", *, task_id: str, due: float, expires: float,
                now: float) -> dict[str, Any]:
        headers = {**self.kwargs["headers"], **prepared.headers, DUE_AT_HEADER: due,
                   "expires": datetime.fromtimestamp(expires, UTC).isoformat() if expires != NEVER else None}
        for key in self._id_keys:
            headers[key] = task_id
        kwargs = {**self.kwargs, "headers": headers}
        for key in self._id_properties:
            kwargs[key] = task_id
        if "expiration" in kwargs:  # the broker-side TTL Celery derives from `expires`, in seconds from now
            if expires == NEVER:
                del kwargs["expiration"]
            else:
                kwargs["expiration"] = max(0.0, expires - now)
        return kwargs


@dataclass(frozen=True, slots=True)
class Prepared:
    """One schedule's part of its messages: body and headers, computed once per schedule."""

    template: Template
    body: tuple[Any, ...]
    headers: dict[str, Any]


class _Capture:
    """A producer that keeps what Celery would publish instead of publishing it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection  # send_task wraps the publish in connection._reraise_as_library_errors()
        self.captured: tuple[Any, dict[str, Any]] | None = None

    def publish(self, body: Any, **kwargs: Any) -> None:
        self.captured = (body, kwargs)


class Publisher:
    def __init__(self, app: Celery, *, confirm_timeout: float = CONFIRM_TIMEOUT, batch_size: int | None = None) -> None:
        self.app = app
        self.batch_size = batch_size or settings.LOOKOUT_RUN_BATCH_SIZE
        self.confirm_timeout = confirm_timeout
        self._connection: Any = None
        self._producer: Any = None
        self._templates: dict[tuple[Any, ...], Template] = {}
        self._confirms = False
        self._next_tag = 1
        self._outcomes: dict[int, bool | None] = {}  # delivery tag -> confirmed (True), refused (False), waiting
        self._waiting = 0
        self._failures = 0
        self._retry_at = 0.0
        self._stop_by = math.inf  # beat is stopping: confirms are waited for until then at the latest

    def stop_soon(self, *, within: float) -> None:
        """Beat stops: the batch in flight waits for its confirms `within` seconds at most (unconfirmed runs count
        as failed, are not recorded, and go again after the restart under the same task id). Signal-safe."""
        self._stop_by = min(self._stop_by, time.monotonic() + within)

    @property
    def available(self) -> bool:
        """False while pausing after a failed connection: callers fail the batch at once instead of waiting."""
        return self._connection is not None or time.monotonic() >= self._retry_at

    def publish(self, entries: Sequence[Entry], *, now: float) -> list[bool]:
        """Send the current run of each entry; for each, whether the broker took it (confirmed, if it can).

        Monitors' probe runs (entry.monitor_id set) go in batch messages (batch_key, at most batch_size runs
        each); a run counts as sent once every message carrying it (one per region) was confirmed.
        """
        if not entries:
            return []
        if not self.available:
            return [False] * len(entries)
        try:
            producer = self._ensure_producer()
            messages: list[tuple[Any, dict[str, Any]]] = []
            owners: list[Sequence[int]] = []  # the indexes of the entries each message carries a run of
            groups: dict[tuple[Any, ...], list[int]] = {}
            for index, entry in enumerate(entries):
                if entry.monitor_id is not None:
                    groups.setdefault(entry.run_key or batch_key(entry), []).append(index)
                    continue
                for copy in self._messages(entry, now=now):
                    messages.append(copy)
                    owners.append((index,))
            size = self.batch_size
            for indexes in groups.values():
                for start in range(0, len(indexes), size):
                    chunk = indexes[start:start + size]
                    for message, carried in self._batch_messages(entries, chunk, now=now):
                        messages.append(message)
                        owners.append(carried)
            # Declaring waits for the broker's answer: before the writes are held back for one socket write.
            for _, kwargs in messages:
                for entity in kwargs.pop("declare", None) or ():
                    producer.maybe_declare(entity)
            tags = []
            with self._one_write():
                for body, kwargs in messages:
                    producer.publish(body, **kwargs)
                    tags.append(self._next_tag)
                    if self._confirms:
                        self._outcomes[self._next_tag] = None
                        self._waiting += 1
                    self._next_tag += 1
            if self._confirms:
                self._confirms_wait(len(tags))
            confirmed = [self._outcomes.pop(tag, None) is True for tag in tags] if self._confirms \
                else [True] * len(tags)
            outcomes = [True] * len(entries)
            for members, ok in zip(owners, confirmed, strict=True):
                if not ok:
                    for index in members:
                        outcomes[index] = False
            if self._failures:
                logger.info("publishing to the broker again after %d failed attempts", self._failures)
                self._failures = 0
            return outcomes
        except Exception as exc:
            # Whatever is unconfirmed on a broken channel is unknown: report it failed, start a new channel.
            self._failed(exc)
            return [False] * len(entries)

    def _batch_messages(self, entries: Sequence[Entry], chunk: list[int], *,
                        now: float) -> list[tuple[tuple[Any, dict[str, Any]], list[int]]]:
        """The messages of one batch (runs sharing batch_key): the home region's, one per other region."""
        home = settings.LOOKOUT_HOME_REGION
        home_runs: list[list[Any]] = []
        home_members: list[int] = []
        regions: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
        for index in chunk:
            entry = entries[index]
            regional = entry.regional
            if regional is None or home in regional.regions:
                home_runs.append([entry.monitor_id, run_task_id(entry.id, entry.due), entry.due])
                home_members.append(index)
            if regional is not None:
                expires = None if entry.run_expires == NEVER else entry.run_expires
                for region in regional.regions:
                    if region != home:
                        _, run = regional.run(region=region, schedule_id=entry.id, due=entry.due, expires=expires)
                        runs, members = regions.setdefault(region, ([], []))
                        runs.append(run)
                        members.append(index)
        first = entries[chunk[0]]
        # All runs of the batch share floor(due) and floor(expires): the earliest of each stands for the message.
        due = min(entries[index].due for index in chunk)
        expires = min(entries[index].run_expires for index in chunk)
        messages = []
        if home_runs:
            template = self._template(BATCH_TASK, {key: value for key, value in first.options.items()
                                                   if key != "headers"})
            body: tuple[Any, ...] = ([], {"runs": home_runs, "expires": None if expires == NEVER else expires},
                                     template.embed)
            prepared = Prepared(template, body, {"argsrepr": "()",
                                                 "kwargsrepr": f"{{'runs': {len(home_runs)} runs}}"})
            task_id = batch_task_id([run[1] for run in home_runs])
            messages.append(((body, template.message(prepared, task_id=task_id, due=due, expires=expires, now=now)),
                             home_members))
        for region, (runs, members) in regions.items():
            template = self._template(AGENT_BATCH_TASK, {"queue": region_queue(region)})
            body = ([], {"runs": runs}, template.embed)
            prepared = Prepared(template, body, {"argsrepr": "()",
                                                 "kwargsrepr": f"{{'runs': {len(runs)} runs from {region}}}"})
            task_id = batch_task_id([run["task_id"] for run in runs])
            messages.append(((body, template.message(prepared, task_id=task_id, due=due, expires=expires, now=now)),
                             members))
        return messages

    def close(self) -> None:
        self._drop()

    def _messages(self, entry: Entry, *, now: float) -> list[tuple[Any, dict[str, Any]]]:
        """The messages of a single (unbatched) run: one, or one per region of a schedule with several."""
        expires = entry.expires(now=now)
        regional = entry.regional
        if regional is None or regional.regions == (settings.LOOKOUT_HOME_REGION,):
            return [self._home_message(entry, now=now, expires=expires)]
        messages = []
        for region in regional.regions:
            if region == settings.LOOKOUT_HOME_REGION:
                messages.append(self._home_message(entry, now=now, expires=expires))
                continue
            task_id, run = regional.run(region=region, schedule_id=entry.id, due=entry.due,
                                        expires=None if expires == NEVER else expires)
            template = self._template(AGENT_TASK, {"queue": region_queue(region)})
            prepared = Prepared(template, ([], {"run": run}, template.embed),
                                {**entry.options.get("headers", {}), "periodic_task_name": entry.name,
                                 "argsrepr": "()",
                                 "kwargsrepr": f"{{'run': monitor {regional.monitor_id} from {region}}}"})
            messages.append((prepared.body, template.message(prepared, task_id=task_id, due=entry.due,
                                                             expires=expires, now=now)))
        return messages

    def _home_message(self, entry: Entry, *, now: float, expires: float) -> tuple[Any, dict[str, Any]]:
        prepared = entry.prepared or self._prepare(entry)
        return prepared.body, prepared.template.message(prepared, task_id=run_task_id(entry.id, entry.due),
                                                        due=entry.due, expires=expires, now=now)

    def _prepare(self, entry: Entry) -> Prepared:
        template = self._template(entry.task, {key: value for key, value in entry.options.items()
                                               if key != "headers"})
        prepared = entry.prepared = template.prepare(entry)
        return prepared

    def _template(self, task: str, options: dict[str, Any]) -> Template:
        route = (task, *(options.get(key) for key in ("queue", "exchange", "routing_key", "priority")))
        template = self._templates.get(route)
        if template is None:
            capture = _Capture(self._connection)
            # A stand-in for kombu's Producer: send_task only calls its publish() and reads its connection.
            self.app.send_task(task, [], {}, producer=capture,  # type: ignore[arg-type]
                               retry=False, task_id=_PLACEHOLDER_ID, expires=_PLACEHOLDER_EXPIRES, **options)
            assert capture.captured is not None
            body, kwargs = capture.captured
            template = self._templates[route] = Template(body, {**kwargs, "retry": False})
        return template

    def _ensure_producer(self) -> Any:
        if self._producer is not None:
            return self._producer
        # Celery's own per-message confirm is off on this connection: this class confirms batches.
        options = self.app.conf.broker_transport_options or {}
        connection = self.app.connection_for_write(
            transport_options={**options, "confirm_publish": False} if "confirm_publish" in options else None)
        # One attempt per broker URL, without kombu's sleep between them (2 s by default, which would hold the
        # whole beat loop): the pause before the next attempt is this class's own, and the loop goes on meanwhile.
        connection.ensure_connection(max_retries=max(len(connection.alt) - 1, 0), interval_start=0)
        producer = self.app.amqp.Producer(connection, auto_declare=False)
        channel: Any = producer.channel  # the transport's own: py-amqp's has confirm_select() and events
        self._confirms = connection.transport.driver_type == "amqp"
        if self._confirms:
            channel.confirm_select()
            channel.events["basic_ack"].add(self._acked)
            channel.events["basic_nack"].add(self._nacked)
        self._connection, self._producer = connection, producer
        self._next_tag = 1
        self._outcomes.clear()
        self._waiting = 0
        return producer

    def _one_write(self) -> "_Buffered":
        transport = getattr(getattr(self._connection, "connection", None), "transport", None)
        return _Buffered(transport if self._confirms else None)

    def _confirms_wait(self, count: int) -> None:
        deadline = min(time.monotonic() + self.confirm_timeout, self._stop_by)
        while self._waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the broker confirmed {count - self._waiting} of {count} messages "
                                   f"within {self.confirm_timeout}s")
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue

    def _acked(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _nacked(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def _settle(self, delivery_tag: int, multiple: bool, outcome: bool) -> None:
        tags = [tag for tag, value in self._outcomes.items() if tag <= delivery_tag and value is None] \
            if multiple else [delivery_tag]
        for tag in tags:
            if self._outcomes.get(tag, False) is None:
                self._outcomes[tag] = outcome
                self._waiting -= 1

    def _failed(self, exc: Exception) -> None:
        pause = RECONNECT_PAUSES[min(self._failures, len(RECONNECT_PAUSES) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + pause
        log = logger.warning if self._failures == 1 else logger.debug
        log("publishing failed (%s: %s): next attempt in %.1fs", type(exc).__name__, exc, pause)
        self._drop()

    def _drop(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        self._outcomes.clear()
        self._waiting = 0
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a connection that broke may fail to close: it is gone either way
                logger.debug("closing the broken publishing connection failed", exc_info=True)


class _Buffered:
    """Collects the frames py-amqp writes during a batch and sends them in one socket write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport if transport is not None and hasattr(transport, "_write") else None
        self._frames: list[bytes] = []
        self._write: Any = None

    def __enter__(self) -> "_Buffered":
        if self._transport is not None:
            self._write = self._transport._write
            # py-amqp hands over a view of a buffer it reuses for the next frame: keep a copy.
            self._transport._write = lambda frame: self._frames.append(bytes(frame))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._transport is None:
            return
        self._transport._write = self._write
        if self._frames:
            data, self._frames = b"".join(self._frames), []
            self._write(data)
