"""Test session setup: real PostgreSQL and RabbitMQ on this machine, never stand-ins.

A run that reaches any test outside DJANGO_FREE requires both services (it fails, never skips, without them),
gets a database name and a broker vhost of its own, and configures Django from the environment. A run of only
Django-free tests (`./scripts/test tests/probes/engine`) does none of that and imports no Django.

The choice is made from the paths the run was given, in pytest_configure: it runs before pytest-django's
(trylast), which then sets Django up. Conftests are imported before it, so none may import Django at module level.
"""

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

TESTS = Path(__file__).parent
# Trees whose tests import no Django and need no database or broker.
DJANGO_FREE = (TESTS / "probes" / "engine",)
OWN_VHOST = pytest.StashKey[str]()


def _django_free_run(config: pytest.Config) -> bool:
    """Whether every path the run was given (or its testpaths, given none) is inside a Django-free tree."""
    paths = [(config.invocation_params.dir / arg.split("::", 1)[0]).resolve() for arg in config.args]
    return bool(paths) and all(any(path.is_relative_to(tree) for tree in DJANGO_FREE) for path in paths)


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=3):
            return True
    except OSError:
        return False


def _services_require() -> None:
    missing = [name for name, variable, port in (("PostgreSQL", "DATABASE_URL", 5432),
                                                 ("RabbitMQ", "CELERY_BROKER_URL", 5672))
               if not _reachable(os.environ[variable], port)]
    if missing:
        # Fail, never skip: a suite that silently skips its integration tests proves nothing.
        pytest.exit(f"{' and '.join(missing)} not reachable; start them (see .ci/run) and run again", returncode=3)


def _django_session_configure(config: pytest.Config) -> None:
    # Names of this run's own (pytest-django creates test_<name>), so concurrent runs never share a database or
    # a broker vhost.
    run_id = os.environ.setdefault("LOOKOUT_TEST_RUN", str(os.getpid()))
    vhost = f"lookout-test-{run_id}"
    os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/lookout_{run_id}")
    os.environ.setdefault("CELERY_BROKER_URL", f"amqp://guest:guest@127.0.0.1:5672/{vhost}")
    os.environ.setdefault("SECRET_KEY", "test-only-" + "k3y-" * 12)
    os.environ.setdefault("LOOKOUT_MIN_INTERVAL", "10")
    os.environ.setdefault("LOOKOUT_LOGIN_RATE", "1000/minute")
    # Tests probe servers they start on loopback, which the safe-target rules refuse by default.
    os.environ.setdefault("LOOKOUT_ALLOW_PRIVATE_TARGETS", "1")
    _services_require()
    if os.environ["CELERY_BROKER_URL"].endswith(f"/{vhost}"):
        from support.stack import vhost_create

        # Made fresh: no stale probe messages from another run reach these tests (without rabbitmqctl: the
        # shared default vhost).
        os.environ["CELERY_BROKER_URL"] = vhost_create(vhost)
        config.stash[OWN_VHOST] = vhost

    os.environ["DJANGO_SETTINGS_MODULE"] = "lookout.config.settings"
    from django.conf import settings

    settings.INSTALLED_APPS  # noqa: B018  (loads the settings now, from the environment above)
    # Users are created for nearly every test: the production hasher's ~0.3 s each would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("help") and not _django_free_run(config):
        _django_session_configure(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if OWN_VHOST in config.stash:
        from support.stack import vhost_delete

        vhost_delete(config.stash[OWN_VHOST])


@pytest.fixture
def http_target():
    from support.http_target import HttpTarget

    target = HttpTarget()
    yield target
    target.close()


@pytest.fixture
def webhook():
    from support.receivers import WebhookReceiver

    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def beat():
    """Starts in-process LookoutSchedulers (`beat()`), each closed at the test's end."""
    from lookout.config.celery_app import app as celery_app
    from lookout.scheduling.scheduler import LookoutScheduler

    schedulers = []

    def start() -> LookoutScheduler:
        scheduler = LookoutScheduler(app=celery_app)
        schedulers.append(scheduler)
        return scheduler

    yield start
    for scheduler in schedulers:
        scheduler.close()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-1")


def _client_for(user, scope="write"):
    from rest_framework.test import APIClient

    from lookout.accounts.services import api_token_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(owner=user, name='tests', scope=scope).key}")
    return client


@pytest.fixture
def alice_api(alice):
    return _client_for(alice)


@pytest.fixture
def bob_api(bob):
    return _client_for(bob)


@pytest.fixture
def alice_read_api(alice):
    """Alice with a read-scope token: GET, HEAD and OPTIONS only."""
    return _client_for(alice, scope="read")
