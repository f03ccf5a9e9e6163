"""Email channel: Django's email backend with the EMAIL_* settings (SMTP in production)."""

import smtplib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from lookout.alerting.channels.base import Message, Transport, TransportError
from lookout.alerting.channels.text import message_lines, message_subject

if TYPE_CHECKING:
    from lookout.alerting.models import Channel


def email_message(channel: "Channel", message: Message) -> EmailMessage:
    body = "\n".join([*message_lines(message), "", f"Event id: {message.event_id}"]) + "\n"
    return EmailMessage(
        subject=f"[Lookout] {message_subject(message)}", body=body, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[channel.address],
        # A stable Message-ID lets mail systems drop the rare repeat, like the event id header does for scripts.
        headers={"X-Lookout-Event": message.event, "X-Lookout-Event-Id": message.event_id,
                 "Message-ID": f"<{message.event_id}@lookout>"},
    )


class EmailTransport(Transport):
    kind = "email"

    def send(self, channel: "Channel", message: Message) -> int | None:
        try:
            connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
            connection.send_messages([email_message(channel, message)])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            # 5xx for every recipient: the address itself is refused. 4xx: the server says "later".
            raise TransportError(f"recipient refused: {exc.recipients}", permanent=all(c >= 500 for c in codes),
                                 status_code=codes[0] if codes else None) from exc
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
            # The installation's SMTP settings are wrong, not the channel: keep retrying while an operator fixes it.
            raise TransportError(f"SMTP server refused Lookout's login or sender: {exc}",
                                 status_code=exc.smtp_code) from exc
        except smtplib.SMTPResponseException as exc:
            raise TransportError(f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}", permanent=exc.smtp_code >= 500,
                                 status_code=exc.smtp_code) from exc
        except (smtplib.SMTPException, OSError) as exc:  # socket.timeout is an OSError
            raise TransportError(f"SMTP server unreachable: {exc or type(exc).__name__}") from exc
        return None
