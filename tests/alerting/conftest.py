"""Alerting fixtures: a real SMTP server on 127.0.0.1 as Django's mail server, short alert timeouts (the webhook
receiver is the root conftest's `webhook`)."""

import pytest


@pytest.fixture
def smtp(settings):
    from support.receivers import SmtpReceiver

    receiver = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", receiver.port
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True)
def fast_alerts(settings):
    settings.LOOKOUT_ALERT_TIMEOUT_SECONDS = 3
    settings.LOOKOUT_ALLOW_PRIVATE_TARGETS = True  # receivers listen on 127.0.0.1
