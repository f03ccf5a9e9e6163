"""Alert channels: one module per kind, each a Transport (lookout.alerting.channels.base), listed once here.

The channel kind choices (lookout.alerting.models.ChannelKind) and the delivery metric's labels derive from this
list: a new kind is a new module added here, plus the migration of the kind choices."""

from lookout.alerting.channels.base import Message, SendResult, Transport, TransportError
from lookout.alerting.channels.email import EmailTransport
from lookout.alerting.channels.slack import SlackTransport
from lookout.alerting.channels.webhook import WebhookTransport

__all__ = ["CHANNEL_KINDS", "Message", "SendResult", "Transport", "TransportError", "transport_for"]

_TRANSPORTS: dict[str, Transport] = {transport.kind: transport
                                     for transport in (EmailTransport(), WebhookTransport(), SlackTransport())}


CHANNEL_KINDS: tuple[str, ...] = tuple(_TRANSPORTS)


def transport_for(kind: str) -> Transport:
    return _TRANSPORTS[kind]
