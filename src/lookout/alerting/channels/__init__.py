"""Alert channels: one module per kind, each a Transport (lookout.alerting.channels.base)."""

from lookout.alerting.channels.base import Message, SendResult, Transport, TransportError
from lookout.alerting.channels.email import EmailTransport
from lookout.alerting.channels.slack import SlackTransport
from lookout.alerting.channels.webhook import WebhookTransport

__all__ = ["Message", "SendResult", "Transport", "TransportError", "transport_for"]

_TRANSPORTS: dict[str, Transport] = {transport.kind: transport
                                     for transport in (EmailTransport(), WebhookTransport(), SlackTransport())}


def transport_for(kind: str) -> Transport:
    return _TRANSPORTS[kind]
