"""Alerting configuration comes from the environment (secrets also from NAME_FILE) and refuses nonsense."""

import subprocess
import sys

from lookout.cli import parser, worker_queues
from support.stack import base_environment

STRONG_KEY = "s3cret-" * 10


def load(expr: str, **env: str) -> subprocess.CompletedProcess:
    code = ("import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'lookout.config.settings'; "
            f"from django.conf import settings as s; print(repr(({expr})))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=base_environment(DATABASE_URL="postgres://u@127.0.0.1:5432/lookout",
                                               SECRET_KEY=STRONG_KEY, **env))


def test_email_settings_and_the_smtp_password_file_are_read(tmp_path):
    (tmp_path / "smtp").write_text("hunter2\n")
    done = load("s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS, "
                "s.DEFAULT_FROM_EMAIL", EMAIL_HOST="smtp.example.com", EMAIL_PORT="587", EMAIL_HOST_USER="lookout",
                EMAIL_HOST_PASSWORD_FILE=str(tmp_path / "smtp"), EMAIL_USE_TLS="1",
                DEFAULT_FROM_EMAIL="Lookout <alerts@example.com>")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "('smtp.example.com', 587, 'lookout', 'hunter2', True, 'Lookout <alerts@example.com>')")


def test_retention_and_guard_settings_have_their_defaults():
    done = load("s.LOOKOUT_RESULTS_RETENTION_DAYS, s.LOOKOUT_ROLLUP_RETENTION_DAYS, s.LOOKOUT_GUARD_MIN_FAILING, "
                "s.LOOKOUT_GUARD_FAILING_PERCENT, s.CELERY_TASK_ROUTES['lookout.alerting.tasks.*'], "
                "s.CELERY_BEAT_SCHEDULE")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(30, 400, 10, 50, {'queue': 'alerts'}, {})"


def test_a_lease_not_longer_than_the_send_timeout_refuses_to_start():
    done = load("s.LOOKOUT_ALERT_LEASE_SECONDS", LOOKOUT_ALERT_LEASE_SECONDS="10", LOOKOUT_ALERT_TIMEOUT_SECONDS="10")
    assert done.returncode != 0 and "LOOKOUT_ALERT_LEASE_SECONDS" in done.stderr


def test_a_share_above_100_percent_refuses_to_start():
    done = load("s.LOOKOUT_GUARD_FAILING_PERCENT", LOOKOUT_GUARD_FAILING_PERCENT="150")
    assert done.returncode != 0 and "LOOKOUT_GUARD_FAILING_PERCENT" in done.stderr


def test_the_worker_consumes_the_alerts_queue_by_default(monkeypatch):
    monkeypatch.setenv("LOOKOUT_REGION", "")  # recorded, so the value the command exports is undone after
    monkeypatch.delenv("LOOKOUT_REGION")
    assert "alerts" in worker_queues(parser().parse_args(["worker"])).split(",")
