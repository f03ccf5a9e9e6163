"""The Batcher: what callers submit while a batch runs becomes the next batch; each caller gets its own outcome."""

import threading
import time
from collections.abc import Callable

import pytest

from lookout.probes.batching import Batcher


class GatedHandler:
    """Multiplies items by ten; holds its first batch until released, so the test can queue the next one."""

    def __init__(self, *, bad: frozenset[int] = frozenset()) -> None:
        self.bad = bad
        self.batches: list[list[int]] = []
        self.first_started = threading.Event()
        self.release = threading.Event()
        self.returned: list[int] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            assert self.release.wait(10)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        self.returned.extend(items)
        return [item * 10 for item in items]


def in_threads(run: Callable[[int], int], items: list[int], outcomes: dict) -> list[threading.Thread]:
    def call(item: int) -> None:
        try:
            outcomes[item] = run(item)
        except Exception as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads


def queued(batcher: Batcher, count: int) -> None:
    """Wait until `count` items wait for the batch in progress (the queue is private: no public view needed)."""
    deadline = time.monotonic() + 10
    while batcher._queue.qsize() < count:
        assert time.monotonic() < deadline, "items never reached the batcher"
        time.sleep(0.01)


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def handler() -> GatedHandler:
    return GatedHandler()


def test_items_submitted_while_a_batch_runs_are_handled_together_as_the_next_batch(handler):
    batcher = Batcher(handler, name="test-batches")
    outcomes: dict = {}
    threads = in_threads(batcher.run, [1], outcomes)
    assert handler.first_started.wait(10)
    threads += in_threads(batcher.run, [2, 3, 4], outcomes)
    queued(batcher, 3)

    handler.release.set()
    join(threads)

    assert outcomes == {1: 10, 2: 20, 3: 30, 4: 40}
    assert handler.batches[0] == [1]
    assert sorted(handler.batches[1]) == [2, 3, 4]


def test_a_failing_item_fails_only_its_own_caller():
    handler = GatedHandler(bad=frozenset({3}))
    batcher = Batcher(handler, name="test-failures")
    outcomes: dict = {}
    threads = in_threads(batcher.run, [1], outcomes)
    assert handler.first_started.wait(10)
    threads += in_threads(batcher.run, [2, 3, 4], outcomes)
    queued(batcher, 3)

    handler.release.set()
    join(threads)

    assert (outcomes[1], outcomes[2], outcomes[4]) == (10, 20, 40)
    assert isinstance(outcomes[3], ValueError)
    # The batch failed as a whole, then each of its items ran again alone.
    assert sorted(handler.batches[1]) == [2, 3, 4]
    assert sorted(map(tuple, handler.batches[2:])) == [(2,), (3,), (4,)]


def test_a_caller_gets_its_outcome_only_once_the_handler_has_returned(handler):
    batcher = Batcher(handler, name="test-returns")
    seen_on_return: list[list[int]] = []
    thread = threading.Thread(target=lambda: (batcher.run(1), seen_on_return.append(list(handler.returned))))
    thread.start()
    assert handler.first_started.wait(10)
    assert seen_on_return == []  # still waiting: its batch has not returned

    handler.release.set()
    join([thread])

    assert seen_on_return == [[1]]


def test_a_batch_is_never_larger_than_its_bound(handler):
    batcher = Batcher(handler, name="test-bound", max_size=2)
    outcomes: dict = {}
    threads = in_threads(batcher.run, [1], outcomes)
    assert handler.first_started.wait(10)
    threads += in_threads(batcher.run, [2, 3, 4, 5, 6], outcomes)
    queued(batcher, 5)

    handler.release.set()
    join(threads)

    assert outcomes == {n: n * 10 for n in range(1, 7)}
    assert [len(batch) for batch in handler.batches] == [1, 2, 2, 1]


class Unreachable(Exception):
    pass


def test_an_error_shared_by_the_whole_batch_fails_every_caller_without_retrying_items_alone():
    handler = GatedHandler(bad=frozenset({2, 3, 4}))
    original = handler.__call__

    def unreachable_after_the_first(items: list[int]) -> list[int]:
        try:
            return original(items)
        except ValueError as exc:
            raise Unreachable("the database is down") from exc

    batcher = Batcher(unreachable_after_the_first, name="test-shared", shared_errors=(Unreachable,))
    outcomes: dict = {}
    threads = in_threads(batcher.run, [1], outcomes)
    assert handler.first_started.wait(10)
    threads += in_threads(batcher.run, [2, 3, 4], outcomes)
    queued(batcher, 3)

    handler.release.set()
    join(threads)

    assert outcomes[1] == 10
    assert all(isinstance(outcomes[item], Unreachable) for item in (2, 3, 4))
    assert len(handler.batches) == 2  # no item was tried again alone: each would have waited for the database


class RecordingHandler:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        return [item * 10 for item in items]


# Lingers far longer than any join below waits: a batch that lingered would fail the test, not slow it.
LONG_LINGER = 60.0


def test_a_small_batch_lingers_for_the_items_that_arrive_meanwhile():
    handler = RecordingHandler()
    batcher = Batcher(handler, name="test-linger", linger_seconds=LONG_LINGER, linger_below=2)
    outcomes: dict = {}
    threads = in_threads(batcher.run, [1], outcomes)
    time.sleep(0.2)  # the first item's batch is lingering, not handled
    assert handler.batches == []

    threads += in_threads(batcher.run, [2], outcomes)
    join(threads)

    assert handler.batches == [[1, 2]] and outcomes == {1: 10, 2: 20}


def test_an_urgent_item_is_handled_at_once_and_ends_a_lingering_batch():
    handler = RecordingHandler()
    batcher = Batcher(handler, name="test-urgent", linger_seconds=LONG_LINGER, linger_below=10)
    assert batcher.run(1, urgent=True) == 10  # alone: no wait for others

    outcomes: dict = {}
    threads = in_threads(batcher.run, [2], outcomes)
    time.sleep(0.2)
    threads += in_threads(lambda item: batcher.run(item, urgent=True), [3], outcomes)
    join(threads)

    assert handler.batches == [[1], [2, 3]] and outcomes == {2: 20, 3: 30}
