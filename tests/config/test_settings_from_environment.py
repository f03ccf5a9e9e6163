"""Settings come from the environment only; insecure production configurations refuse to load."""

import ast
import subprocess
import sys

import pytest

from support.stack import base_environment

STRONG_KEY = "s3cret-" * 10
PRINT = "from django.conf import settings as s; print(repr(({expr})))"


def load_settings(expr: str, **env: str) -> subprocess.CompletedProcess:
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'lookout.config.settings'; " + PRINT.format(expr=expr)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=base_environment(**{"DATABASE_URL": "postgres://u@127.0.0.1:5432/lookout", **env}))


def test_a_missing_secret_key_refuses_to_start_with_debug_off():
    done = load_settings("s.SECRET_KEY")
    assert done.returncode != 0 and "SECRET_KEY is not set" in done.stderr


@pytest.mark.parametrize("key", ["short", "django-insecure-" + "x" * 60, "a" * 60])
def test_an_insecure_secret_key_refuses_to_start_with_debug_off(key):
    done = load_settings("s.SECRET_KEY", SECRET_KEY=key)
    assert done.returncode != 0 and "SECRET_KEY is insecure" in done.stderr


def test_debug_allows_a_missing_secret_key():
    done = load_settings("s.DEBUG", DEBUG="1")
    assert done.returncode == 0 and done.stdout.strip() == "True"


def test_secrets_can_come_from_file_variants(tmp_path):
    (tmp_path / "key").write_text(STRONG_KEY + "\n")
    (tmp_path / "db").write_text("postgres://filed@db.example:5432/lookout")
    done = load_settings("s.SECRET_KEY == " + repr(STRONG_KEY) + ", s.DATABASES['default']['HOST']",
                         SECRET_KEY_FILE=str(tmp_path / "key"), DATABASE_URL_FILE=str(tmp_path / "db"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(True, 'db.example')"


def test_configuration_values_are_read_from_the_environment():
    done = load_settings(
        "s.ALLOWED_HOSTS, s.LOOKOUT_MIN_INTERVAL, s.CELERY_RESULT_BACKEND, s.LOOKOUT_METRICS_TOKEN, "
        "s.LOGGING['handlers']['console']['formatter']",
        SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="lookout.example, api.example", LOOKOUT_MIN_INTERVAL="30",
        LOOKOUT_METRICS_TOKEN="scrape-me", LOOKOUT_LOG_FORMAT="json",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(['lookout.example', 'api.example'], 30, 'django-db', 'scrape-me', 'json')"


def test_batching_delays_are_read_as_seconds():
    done = load_settings("s.LOOKOUT_BEAT_LINGER_SECONDS, s.LOOKOUT_WORKER_WRITE_LINGER_SECONDS", SECRET_KEY=STRONG_KEY,
                         LOOKOUT_BEAT_LINGER_SECONDS="0", LOOKOUT_WORKER_WRITE_LINGER_SECONDS="0.25")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(0.0, 0.25)"


@pytest.mark.parametrize(("name", "value"), [("LOOKOUT_MIN_INTERVAL", "ten"), ("LOOKOUT_MIN_INTERVAL", "0"),
                                             ("LOOKOUT_LOG_FORMAT", "xml"), ("DEBUG", "maybe"),
                                             ("LOOKOUT_BEAT_LINGER_SECONDS", "soon"),
                                             ("LOOKOUT_BEAT_LINGER_SECONDS", "2"),
                                             ("LOOKOUT_WORKER_WRITE_LINGER_SECONDS", "nan"),
                                             ("LOOKOUT_WORKER_WRITE_LINGER_SECONDS", "-1")])
def test_a_malformed_value_refuses_to_start_naming_the_variable(name, value):
    done = load_settings("s.SECRET_KEY", SECRET_KEY=STRONG_KEY, **{name: value})
    assert done.returncode != 0 and name in done.stderr


def test_sqlite_runs_in_wal_mode_with_immediate_transactions():
    done = load_settings("s.DATABASES['default']['OPTIONS']", SECRET_KEY=STRONG_KEY,
                         DATABASE_URL="sqlite:////tmp/lookout-settings-test.sqlite3")
    assert done.returncode == 0, done.stderr
    assert "journal_mode=WAL" in done.stdout and "IMMEDIATE" in done.stdout


def test_postgresql_connections_time_out_and_keep_alive_unless_the_url_says_otherwise():
    done = load_settings("s.DATABASES['default']['OPTIONS']", SECRET_KEY=STRONG_KEY,
                         DATABASE_URL="postgres://u@db:5432/lookout?connect_timeout=2")
    assert done.returncode == 0, done.stderr
    options = ast.literal_eval(done.stdout.strip())
    assert int(options["connect_timeout"]) == 2  # the URL's own
    assert (options["keepalives"], options["keepalives_idle"], options["tcp_user_timeout"]) == (1, 30, 60_000)


def test_an_amqps_broker_has_its_certificate_and_host_name_checked():
    done = load_settings("dict(s.CELERY_BROKER_USE_SSL, cert_reqs=int(s.CELERY_BROKER_USE_SSL['cert_reqs']))",
                         SECRET_KEY=STRONG_KEY, CELERY_BROKER_URL="amqps://lookout:pw@mq.example.com:5671/lookout")

    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout.strip()) == {"cert_reqs": 2, "server_hostname": "mq.example.com"}


def test_a_plain_amqp_broker_has_no_tls_options():
    done = load_settings("s.CELERY_BROKER_USE_SSL", SECRET_KEY=STRONG_KEY, CELERY_BROKER_URL="amqp://127.0.0.1//")

    assert done.returncode == 0 and done.stdout.strip() == "None"
