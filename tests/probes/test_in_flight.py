"""lookout.batching.InFlight: a process's probes at once, whichever batches they belong to, never above its limit."""

import threading
import time

import pytest

from lookout.batching import InFlight


def test_calls_of_several_batches_run_concurrently_but_never_more_than_the_limit():
    in_flight = InFlight(3)
    running, most = 0, 0
    lock = threading.Lock()

    def handle(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return item * 10

    outcomes: dict[str, list[int]] = {}
    batches = [threading.Thread(target=lambda name=name: outcomes.setdefault(name, in_flight.map(handle, range(5))))
               for name in ("a", "b")]
    for batch in batches:
        batch.start()
    for batch in batches:
        batch.join(10)

    assert outcomes == {"a": [0, 10, 20, 30, 40], "b": [0, 10, 20, 30, 40]}
    assert most == 3
    assert in_flight() == 0


def test_a_failing_call_is_raised_once_every_other_call_finished():
    in_flight = InFlight(10)
    finished: list[int] = []

    def handle(item: int) -> int:
        if item == 0:
            raise ValueError("bad run")
        time.sleep(0.05)
        finished.append(item)
        return item

    with pytest.raises(ValueError, match="bad run"):
        in_flight.map(handle, [0, 1, 2])

    assert sorted(finished) == [1, 2] and in_flight() == 0
