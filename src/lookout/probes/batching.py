"""The home worker's batchers (lookout.batching) give their database connection back when idle a while or after a
failure."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connection

from lookout import batching

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


# A batch thread idle this long gives its connection back to the pool. Kept meanwhile: at a light load (batched
# runs of 10 % of a worker's capacity: a few batches a second) each batch paid a check-out with its health check.
KEEP_SECONDS = 1.0


def _connection_release() -> None:
    # Looked up at each call: `connection` is the calling thread's (the batch thread's), not the creator's.
    connection.close()


class Batcher(batching.Batcher[Item, Outcome]):
    def __init__(self, handle: Callable[[list[Item]], Sequence[Outcome]], *, name: str, threads: int = 1,
                 max_size: int = 100, shared_errors: tuple[type[Exception], ...] = (),
                 keep_seconds: float = KEEP_SECONDS, linger_seconds: float = 0.0, linger_below: int = 0) -> None:
        super().__init__(handle, name=name, threads=threads, max_size=max_size, shared_errors=shared_errors,
                         release=_connection_release, keep_seconds=keep_seconds, linger_seconds=linger_seconds,
                         linger_below=linger_below)
