"""Group commit: what many probes in flight read and write, as one query or one transaction at a time.

A worker runs hundreds of probes at once, one greenlet each. Each used to read its monitor and record its
result with database round trips of its own, and those round trips (and compiling their SQL) were most of a
probe's CPU (bench/README.md, "Worker"). A Batcher takes every item submitted while its previous batch ran,
hands them to its handler as one list in a thread of its own (a greenlet under gevent), and wakes each caller
with its own outcome once the handler returned: for a write, once the batch committed, so a task that is
acknowledged after it returned (acks late) is durable. Batches grow with the load and need no timer: one
item waits for nothing but the batch in progress.

No Django here: the region agent batches the results it publishes with it. What a batch's thread holds (a
database connection at home) is given back by the `release` hook, when the thread goes idle or after a failure.
"""

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Call(Generic[Item, Outcome]):
    """One caller's item, and the lock it waits on until its outcome is in (cheaper than a Future)."""

    __slots__ = ("item", "urgent", "outcome", "error", "done", "_ready")

    def __init__(self, item: Item, *, urgent: bool = False) -> None:
        self.item = item
        self.urgent = urgent
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.done = False
        self._ready = threading.Lock()
        self._ready.acquire()

    def finish(self, outcome: Outcome | None = None, error: BaseException | None = None) -> None:
        self.outcome, self.error, self.done = outcome, error, True
        self._ready.release()

    def wait(self) -> Outcome:
        self._ready.acquire()
        if self.error is not None:
            raise self.error
        return self.outcome  # type: ignore[return-value]


class Batcher(Generic[Item, Outcome]):
    """Runs `handle(items) -> outcomes` (one per item, in order) over the items callers submit, batch by batch.

    `threads` batches run at once (each with a database connection of its own, say); a batch takes at most
    `max_size` items. When the handler raises, each item is handled again alone, so one bad item fails its own
    caller only; except for `shared_errors` (the database is unreachable, say), which are every item's: each
    caller gets the error at once, rather than one more wait for the database per item. `keep_seconds`: how
    long an idle thread keeps what `release` gives back (0: it gives it back as soon as the queue is empty).
    `linger_seconds`, `linger_below`: a batch of fewer than linger_below items waits up to linger_seconds for
    more before it is handled (0: never waits), unless it holds an urgent item (`run(item, urgent=True)`).
    """

    def __init__(self, handle: Callable[[list[Item]], Sequence[Outcome]], *, name: str, threads: int = 1,
                 max_size: int = 100, shared_errors: tuple[type[Exception], ...] = (),
                 release: Callable[[], None] = lambda: None, keep_seconds: float = 0.0,
                 linger_seconds: float = 0.0, linger_below: int = 0) -> None:
        self._handle = handle
        self._release = release
        self._keep_seconds = keep_seconds
        self._linger_seconds = linger_seconds
        self._linger_below = min(linger_below, max_size)
        self._name = name
        self._threads = threads
        self._max_size = max_size
        self._shared_errors = shared_errors
        self._queue: queue.SimpleQueue[_Call[Item, Outcome]] = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._take_lock = threading.Lock()
        self._running = 0
        os.register_at_fork(after_in_child=self._forked)

    def run(self, item: Item, *, urgent: bool = False) -> Outcome:
        """Submit one item and wait for its outcome; the handler's exception for this item is raised here. An
        urgent item's batch does not linger (someone waits on it: a check-now's caller, say)."""
        call: _Call[Item, Outcome] = _Call(item, urgent=urgent)
        self._queue.put(call)
        if self._running < self._threads:  # first use, a thread died, or a forked child
            self._start()
        return call.wait()

    def run_many(self, items: list[Item]) -> list[Outcome]:
        """Submit several items at once (they may share a batch) and wait for all; the first error is raised."""
        calls: list[_Call[Item, Outcome]] = [_Call(item) for item in items]
        for call in calls:
            self._queue.put(call)
        if self._running < self._threads:
            self._start()
        outcomes: list[Outcome] = []
        error: BaseException | None = None
        for call in calls:  # every call waited for: none may still be running when the caller gives up
            try:
                outcomes.append(call.wait())
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
        return outcomes

    def _forked(self) -> None:
        # The child has none of the parent's threads; it starts its own, and takes no batch half-taken there.
        self._running = 0
        self._start_lock = threading.Lock()
        self._take_lock = threading.Lock()
        self._queue = queue.SimpleQueue()

    def _start(self) -> None:
        with self._start_lock:
            while self._running < self._threads:
                self._running += 1
                threading.Thread(target=self._loop, name=f"{self._name}-{self._running}", daemon=True).start()

    def _loop(self) -> None:
        held = False  # whether this thread holds what `release` gives back (it took it for a batch)
        try:
            while True:
                batch = self._take(held)
                if batch is None:
                    # Idle for keep_seconds: what the thread holds (a connection to its pool) goes back.
                    self._release()
                    held = False
                    continue
                held = True
                try:
                    failed = self._process(batch)
                except BaseException as exc:  # this thread is being killed: no caller may wait forever
                    for call in batch:
                        if not call.done:
                            call.finish(error=exc)
                    raise
                if failed or (not self._keep_seconds and self._queue.empty()):
                    # After a failure what the thread holds may be broken: it goes back, another is taken. Idle:
                    # it goes back at once, or after keep_seconds without work (kept, a light load's batches do
                    # not each pay a check-out and its health check: a round trip, ~2 ms of CPU under gVisor).
                    self._release()
                    held = False
        finally:
            self._running -= 1

    def _take(self, held: bool) -> list[_Call[Item, Outcome]] | None:
        """The next batch; None after keep_seconds without one, if this thread holds something to give back.

        One thread at a time takes (the others wait their turn, not on the queue): a lingering batch then gets
        the items arriving meanwhile, rather than each idle thread taking one of them."""
        timeout = self._keep_seconds if held else -1
        if not self._take_lock.acquire(timeout=timeout):
            return None
        try:
            try:
                first = self._queue.get(timeout=self._keep_seconds) if held else self._queue.get()
            except queue.Empty:
                return None
            batch = [first]
            while len(batch) < self._max_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if len(batch) < self._linger_below and not any(call.urgent for call in batch):
                self._linger(batch)
            return batch
        finally:
            self._take_lock.release()

    def _linger(self, batch: list[_Call[Item, Outcome]]) -> None:
        """A small batch waits up to linger_seconds for more items (up to linger_below): at a light load, one
        handler call then serves several callers (its fixed cost, a transaction say, is shared)."""
        until = time.monotonic() + self._linger_seconds
        while len(batch) < self._linger_below:
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                call = self._queue.get(timeout=left)
            except queue.Empty:
                return
            batch.append(call)
            if call.urgent:
                return

    def _process(self, batch: list[_Call[Item, Outcome]]) -> bool:
        """Hand the batch to the handler and give each caller its outcome; whether anything failed."""
        try:
            outcomes = self._handle([call.item for call in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, self._shared_errors):
                for call in batch:
                    call.finish(error=exc)
                return True
            # One bad item must not fail the others: each again alone, in a batch (a transaction) of its own.
            self._release()
            for call in batch:
                try:
                    outcome = self._handle([call.item])[0]
                except Exception as item_exc:
                    call.finish(error=item_exc)
                    self._release()
                else:
                    call.finish(outcome)
            return True
        for call, outcome in zip(batch, outcomes, strict=True):
            call.finish(outcome)
        return False


class InFlight:
    """At most `limit` calls at once in this process, across every batch of runs it is working on.

    A batch of runs is one task message, but each run is a probe of its own: they run concurrently (one greenlet
    each under gevent, else one thread each), and a batch waits for a free slot before it starts the next one, so
    what a process holds (a probe's socket, buffers and stack) is bounded by `limit` however many batches it took.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"in-flight limit must be positive, not {limit}")
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._slots: threading.Semaphore | None = None
        self._green: bool | None = None
        os.register_at_fork(after_in_child=self._forked)

    def __call__(self) -> int:
        return self.count

    def map(self, handle: Callable[[Item], Outcome], items: Sequence[Item]) -> list[Outcome]:
        """`handle(item)` for each item, concurrently within the limit; the outcomes in order, once all are done.

        The first exception of a handler is raised, after every other one finished (none is left running)."""
        if self._slots is None:
            self._setup()
        slots = self._slots
        assert slots is not None
        if not items:
            return []
        outcomes: list[Any] = [None] * len(items)
        errors: list[BaseException] = []

        def one(index: int, item: Item) -> None:
            try:
                outcomes[index] = handle(item)
            except BaseException as exc:  # a greenlet's or thread's exception would be lost: kept for the caller
                errors.append(exc)
            finally:
                with self._count_lock:
                    self.count -= 1
                slots.release()

        workers: list[Any] = []
        for index, item in enumerate(items):
            slots.acquire()  # the batch waits here, holding no probe, while the process is at its limit
            with self._count_lock:
                self.count += 1
            workers.append(self._spawn(one, index, item))
        self._join(workers)
        if errors:
            raise errors[0]
        return outcomes

    def _setup(self) -> None:
        with self._lock:
            if self._slots is not None:
                return
            monkey = sys.modules.get("gevent.monkey")
            self._green = bool(monkey is not None and monkey.is_module_patched("socket"))
            if self._green:
                import gevent.lock

                self._slots = gevent.lock.Semaphore(self.limit)  # type: ignore[assignment]
            else:
                self._slots = threading.Semaphore(self.limit)

    def _spawn(self, target: Callable[..., None], *args: Any) -> Any:
        if self._green:
            import gevent

            return gevent.spawn(target, *args)  # cheaper than a (patched) Thread: no thread-local bookkeeping
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    def _join(self, workers: list[Any]) -> None:
        if self._green:
            import gevent

            gevent.joinall(workers)
        else:
            for thread in workers:
                thread.join()

    def _forked(self) -> None:
        self.count = 0
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._slots = None
