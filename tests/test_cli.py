"""`lookout` subcommands refuse to start without the external services they need, naming the variable."""

import subprocess

import pytest

from support.stack import LOOKOUT, base_environment


def run_lookout(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LOOKOUT, *args], env=base_environment(**env), capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("command", [["migrate"], ["api"], ["worker"], ["beat"], ["manage", "check"]])
def test_a_server_command_without_database_url_refuses_naming_it(command):
    done = run_lookout(*command)
    assert done.returncode != 0
    assert "DATABASE_URL is not set" in done.stderr
    assert "lookout dev" in done.stderr


@pytest.mark.parametrize("command", [["api"], ["worker"], ["beat"]])
def test_a_command_that_uses_the_broker_refuses_without_celery_broker_url(command):
    done = run_lookout(*command, DATABASE_URL="postgres://postgres@127.0.0.1:5432/lookout")
    assert done.returncode != 0
    assert "CELERY_BROKER_URL is not set" in done.stderr


def test_migrate_needs_no_broker_url_but_a_secret_key():
    done = run_lookout("migrate", DATABASE_URL="postgres://postgres@127.0.0.1:5432/lookout")
    assert done.returncode != 0
    assert "SECRET_KEY is not set" in done.stderr


@pytest.mark.parametrize(("key", "message"), [("", "SECRET_KEY is not set"), ("short", "SECRET_KEY is insecure")])
@pytest.mark.parametrize("command", [["migrate"], ["api"], ["worker"], ["beat"], ["manage", "check"]])
def test_a_missing_or_weak_secret_key_is_a_one_line_error_without_a_traceback(command, key, message):
    done = run_lookout(*command, DATABASE_URL="sqlite:////nonexistent/lookout.sqlite3",
                       CELERY_BROKER_URL="amqp://guest@127.0.0.1:1//", SECRET_KEY=key)
    assert done.returncode != 0
    assert done.stderr.startswith(f"lookout: {message}") and done.stderr.count("\n") == 1, done.stderr


def test_manage_help_lists_every_command_without_any_configuration():
    for help_argument in ("--help", "help"):
        done = run_lookout("manage", help_argument)
        assert done.returncode == 0, done.stderr
        assert "createapiuser" in done.stdout and "migrate" in done.stdout and "changepassword" in done.stdout


def test_a_bad_worker_concurrency_is_refused():
    done = run_lookout("worker", DATABASE_URL="postgres://x@127.0.0.1/x", CELERY_BROKER_URL="amqp://x",
                       LOOKOUT_WORKER_CONCURRENCY="lots")
    assert done.returncode != 0
    assert "LOOKOUT_WORKER_CONCURRENCY" in done.stderr
