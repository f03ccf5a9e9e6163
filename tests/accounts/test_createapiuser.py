"""`lookout manage createapiuser`: creates the user if needed, issues a new token and prints its key."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from lookout.accounts.keys import key_digest, key_generate
from lookout.accounts.models import ApiToken

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


def createapiuser(*args: str) -> str:
    out = StringIO()
    call_command("createapiuser", *args, stdout=out)
    return out.getvalue().strip()


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_the_printed_key_works_for_a_new_user_without_a_password():
    key = createapiuser("carol")

    assert client_with(key).post(MONITORS, {"name": "shop", "url": "https://shop.example/", "interval": 60},
                                 format="json").status_code == 201
    carol = User.objects.get(username="carol")
    assert not carol.has_usable_password() and not carol.is_staff
    token = ApiToken.objects.get(owner=carol)
    assert (token.name, token.scope, token.expires_at, token.digest) == ("createapiuser", "write", None,
                                                                        key_digest(key))


def test_each_run_issues_another_token_for_the_same_user(alice):
    first, second = createapiuser("alice"), createapiuser("alice")

    assert first != second
    assert ApiToken.objects.filter(owner=alice).count() == 2
    assert alice.check_password("alice-password-1")  # an existing user's password is left alone


def test_superuser_and_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPS_PASSWORD", "ops-password-1")

    createapiuser("ops", "--superuser", "--password-env", "OPS_PASSWORD")

    ops = User.objects.get(username="ops")
    assert ops.is_superuser and ops.is_staff and ops.check_password("ops-password-1")


def test_name_scope_and_expiry(alice):
    key = createapiuser("alice", "--name", "grafana", "--scope", "read", "--expires-days", "7")

    token = ApiToken.objects.get(digest=key_digest(key))
    assert (token.name, token.scope) == ("grafana", "read")
    assert abs(token.expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    client = client_with(key)
    assert client.get(MONITORS).status_code == 200
    assert client.post(MONITORS, {}, format="json").status_code == 403


def test_a_key_from_the_environment_is_registered_once_then_found(alice, monkeypatch):
    key = key_generate()
    monkeypatch.setenv("ALICE_KEY", key)

    assert createapiuser("alice", "--key-env", "ALICE_KEY") == key
    assert createapiuser("alice", "--key-env", "ALICE_KEY") == key

    assert ApiToken.objects.filter(digest=key_digest(key)).count() == 1
    assert client_with(key).get(MONITORS).status_code == 200


def test_another_users_key_is_refused(alice, bob, monkeypatch):
    monkeypatch.setenv("KEY", key_generate())
    createapiuser("alice", "--key-env", "KEY")

    with pytest.raises(CommandError, match="exists already"):
        createapiuser("bob", "--key-env", "KEY")
    assert not ApiToken.objects.filter(owner=bob).exists()


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--name", " "], {}, "name: A name is required."),
    (["--expires-days", "0"], {}, "--expires-days must be 1 or more"),
    (["--password-env", "UNSET_VARIABLE"], {}, "UNSET_VARIABLE is empty"),
    (["--key-env", "SHORT"], {"SHORT": "abc"}, "key: At least 32"),
])
def test_bad_options_are_refused_and_create_nothing(monkeypatch, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(CommandError, match=message):
        createapiuser("dave", *args)

    assert not User.objects.filter(username="dave").exists()
    assert ApiToken.objects.count() == 0
