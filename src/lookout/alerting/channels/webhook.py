"""Webhook channel: the event as JSON, signed with HMAC-SHA256 when the channel has a secret (docs/alerting.md)."""

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

from lookout import __version__
from lookout.alerting.channels.base import Message, Transport
from lookout.alerting.channels.http_post import http_post
from lookout.core.encryption import secret_decrypt

if TYPE_CHECKING:
    from lookout.alerting.models import Channel

USER_AGENT = f"Lookout/{__version__} (alerts)"


def webhook_body(message: Message) -> bytes:
    # Sorted and compact: the same event always serializes to the same bytes, so retries carry one signature.
    return json.dumps({**message.payload, "event_id": message.event_id}, sort_keys=True,
                      separators=(",", ":")).encode()


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookTransport(Transport):
    kind = "webhook"

    def send(self, channel: "Channel", message: Message) -> int | None:
        body = webhook_body(message)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Lookout-Event": message.event, "X-Lookout-Event-Id": message.event_id}
        secret = secret_decrypt(channel.secret)
        if secret:
            headers["X-Lookout-Signature"] = webhook_signature(secret, body)
        return http_post(channel.url, body=body, headers=headers)
