"""What every channel transport is: one `send(channel, message)` that returns or raises TransportError."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lookout.alerting.models import Channel


@dataclass(frozen=True)
class Message:
    event: str  # monitor.down, monitor.up, tls.expiring, lookout.degraded, lookout.recovered,
    # lookout.region.suspect, lookout.region.recovered, channel.test
    event_id: str  # stable across attempts: receivers drop repeats by it
    payload: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    outcome: str  # an AttemptOutcome
    status_code: int | None
    error: str
    duration_ms: float


class TransportError(Exception):
    """A failed send. permanent: retrying cannot help (a 4xx, a refused address), the channel is marked failing."""

    def __init__(self, message: str, *, permanent: bool = False, status_code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


class Transport:
    kind = ""

    def send(self, channel: "Channel", message: Message) -> int | None:
        """Deliver the message; return the receiver's status code if it has one. Raise TransportError."""
        raise NotImplementedError
