"""Test session setup: real PostgreSQL and RabbitMQ on this machine, never stand-ins.

Runs at import, before Django is set up, because settings read the environment once.
"""

import os
import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

# Names of this run's own (pytest-django creates test_<name>), so concurrent runs never share a database or
# a broker vhost.
RUN_ID = os.environ.setdefault("LOOKOUT_TEST_RUN", str(os.getpid()))
POSTGRES_URL = os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/lookout_{RUN_ID}")
RABBITMQ_VHOST = f"lookout-test-{RUN_ID}"
os.environ.setdefault("CELERY_BROKER_URL", f"amqp://guest:guest@127.0.0.1:5672/{RABBITMQ_VHOST}")
os.environ.setdefault("SECRET_KEY", "test-only-" + "k3y-" * 12)
os.environ.setdefault("LOOKOUT_MIN_INTERVAL", "10")
os.environ.setdefault("LOOKOUT_LOGIN_RATE", "1000/minute")
# Tests probe servers they start on loopback, which the safe-target rules refuse by default.
os.environ.setdefault("LOOKOUT_ALLOW_PRIVATE_TARGETS", "1")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=3):
            return True
    except OSError:
        return False


def _require_services() -> None:
    missing = [name for name, url, port in (("PostgreSQL", POSTGRES_URL, 5432),
                                            ("RabbitMQ", os.environ["CELERY_BROKER_URL"], 5672))
               if not _reachable(url, port)]
    if missing:
        # Fail, never skip: a suite that silently skips its integration tests proves nothing.
        pytest.exit(f"{' and '.join(missing)} not reachable; start them (see .ci/run) and run again", returncode=3)


def _own_vhost() -> bool:
    return RABBITMQ_VHOST in os.environ["CELERY_BROKER_URL"] and bool(shutil.which("rabbitmqctl"))


def _fresh_vhost() -> None:
    """A vhost of this run's own: no stale probe messages from another run reach these tests."""
    if not _own_vhost():
        return
    for args in (["delete_vhost", RABBITMQ_VHOST], ["add_vhost", RABBITMQ_VHOST],
                 ["set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _own_vhost():
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", RABBITMQ_VHOST], capture_output=True, timeout=60)


_require_services()
_fresh_vhost()

# pytest-django sets Django up before any conftest runs, when settings are named in the ini file; naming
# them only here, after the environment above, lets its pytest_configure set Django up instead.
os.environ["DJANGO_SETTINGS_MODULE"] = "lookout.config.settings"
from django.conf import settings  # noqa: E402

settings.INSTALLED_APPS  # noqa: B018  (loads the settings now, from the environment above)
# Users are created for nearly every test: the production hasher's ~0.3 s each would dominate the run.
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def http_target():
    from support.http_target import HttpTarget

    target = HttpTarget()
    yield target
    target.close()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-1")


def _client_for(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def alice_api(alice):
    return _client_for(alice)


@pytest.fixture
def bob_api(bob):
    return _client_for(bob)
