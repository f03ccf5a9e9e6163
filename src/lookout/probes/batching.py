"""The home worker's batchers (lookout.batching) give their database connection back when idle or after a failure."""

from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connection

from lookout import batching

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


def _connection_release() -> None:
    # Looked up at each call: `connection` is the calling thread's (the batch thread's), not the creator's.
    connection.close()


class Batcher(batching.Batcher[Item, Outcome]):
    def __init__(self, handle: Callable[[list[Item]], Sequence[Outcome]], *, name: str, threads: int = 1,
                 max_size: int = 100, shared_errors: tuple[type[Exception], ...] = ()) -> None:
        super().__init__(handle, name=name, threads=threads, max_size=max_size, shared_errors=shared_errors,
                         release=_connection_release)
