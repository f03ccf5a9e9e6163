"""Slack channel: a readable message to an incoming-webhook URL (Mattermost and others accept the same)."""

import json
from typing import TYPE_CHECKING

from lookout.alerting.channels.base import Message, Transport
from lookout.alerting.channels.http_post import http_post
from lookout.alerting.channels.text import message_lines, message_subject
from lookout.alerting.channels.webhook import USER_AGENT

if TYPE_CHECKING:
    from lookout.alerting.models import Channel

_ICONS = {"monitor.down": ":red_circle:", "monitor.up": ":large_green_circle:", "tls.expiring": ":warning:",
          "lookout.degraded": ":warning:", "lookout.recovered": ":white_check_mark:",
          "lookout.region.suspect": ":warning:", "lookout.region.recovered": ":white_check_mark:",
          "channel.test": ":wave:"}


def slack_text(message: Message) -> str:
    icon = _ICONS.get(message.event, "")
    lines = [f"{icon} *{message_subject(message)}*".strip(), *message_lines(message)]
    return "\n".join(lines)


class SlackTransport(Transport):
    kind = "slack"

    def send(self, channel: "Channel", message: Message) -> int | None:
        body = json.dumps({"text": slack_text(message)}).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Lookout-Event-Id": message.event_id}
        return http_post(channel.url, body=body, headers=headers)
