"""Authenticating with an API token: `Token <key>` or `Bearer <key>`; an unknown, revoked or expired key is a 401
and a read-scope key a 403 on every write, in the one error format; last use is recorded at most once a minute."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import EndpointEnumerator
from rest_framework.test import APIClient

from lookout.accounts import services
from lookout.accounts.models import ApiToken
from lookout.accounts.services import LAST_USED_RESOLUTION, api_token_create
from lookout.alerting.models import Channel
from lookout.monitors.models import Monitor

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"
MONITORS = "/api/v1/monitors/"


def client_with(key: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer"])
def test_a_key_authenticates_as_token_or_bearer(alice, keyword):
    issued = api_token_create(owner=alice, name="ci")

    assert client_with(issued.key, keyword).get(MONITORS).status_code == 200


@pytest.mark.parametrize("header", ["Token lk_unknown", "Token", "Token two words", "Bearer \xe9t\xe9"])
def test_an_unknown_or_malformed_key_is_a_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(MONITORS)

    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"


def test_an_expired_token_is_a_401(alice):
    issued = api_token_create(owner=alice, name="short-lived", expires_at=datetime.now(UTC) + timedelta(hours=1))
    client = client_with(issued.key)
    assert client.get(MONITORS).status_code == 200

    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))

    assert_error(client.get(MONITORS), 401, "token_expired")


def test_a_revoked_token_is_a_401(alice, alice_api):
    issued = api_token_create(owner=alice, name="laptop")
    client = client_with(issued.key)
    assert client.get(MONITORS).status_code == 200

    assert alice_api.delete(f"{TOKENS}{issued.token.pk}/").status_code == 204

    assert_error(client.get(MONITORS), 401, "authentication_failed")


def test_an_inactive_users_token_is_a_401(alice):
    issued = api_token_create(owner=alice, name="ci")
    alice.is_active = False
    alice.save()

    assert_error(client_with(issued.key).get(MONITORS), 401, "authentication_failed")


def test_last_use_is_recorded_at_most_once_a_minute(alice):
    issued = api_token_create(owner=alice, name="poller")
    client = client_with(issued.key)

    client.get(MONITORS)
    first = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    with CaptureQueriesContext(connection) as queries:
        client.get(MONITORS)

    assert first is not None and datetime.now(UTC) - first < timedelta(seconds=30)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == first
    assert not [query["sql"] for query in queries.captured_queries
                if query["sql"].startswith("UPDATE") and "accounts_apitoken" in query["sql"]]

    # A minute later the next request records it again.
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=first - LAST_USED_RESOLUTION)
    client.get(MONITORS)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at > first


def test_a_stale_copy_of_a_token_does_not_record_its_use_twice(alice):
    token = api_token_create(owner=alice, name="poller").token
    now = datetime.now(UTC)
    services.api_token_used(token=ApiToken.objects.get(pk=token.pk), now=now)

    # Another replica read the row before that write: its conditional UPDATE changes nothing.
    services.api_token_used(token=token, now=now + timedelta(seconds=5))

    assert ApiToken.objects.get(pk=token.pk).last_used_at == now


# --- scope ------------------------------------------------------------------------------------------------------


def write_routes() -> list[tuple[str, str]]:
    """Every non-safe method of every API route, from the URLconf (as the schema sees it): a new endpoint is
    covered without changing this test."""
    return sorted({(method, path) for path, _, method, view in EndpointEnumerator().get_api_endpoints()
                   if method not in ("GET", "HEAD", "OPTIONS") and view.cls.authentication_classes})


def anonymous_write_routes() -> set[tuple[str, str]]:
    return {(method, path) for path, _, method, view in EndpointEnumerator().get_api_endpoints()
            if method not in ("GET", "HEAD", "OPTIONS") and not view.cls.authentication_classes}


def test_only_the_password_exchange_and_heartbeats_take_writes_without_token_authentication():
    # Their credential is in the request itself (a password, a push token), not in a token's scope.
    assert anonymous_write_routes() == {("POST", "/api/v1/auth/token/"), ("POST", "/api/v1/push/{token}/")}


def test_the_write_routes_include_every_kind_of_write():
    routes = write_routes()

    assert {("POST", "/api/v1/monitors/{pk}/check/"), ("POST", "/api/v1/monitors/{pk}/pause/"),
            ("POST", "/api/v1/monitors/{pk}/resume/"), ("POST", "/api/v1/channels/"),
            ("DELETE", "/api/v1/tokens/{pk}/"), ("POST", "/api/v1/tokens/"),
            ("PATCH", "/api/v1/periodic-tasks/{pk}/")} <= set(routes)
    assert {method for method, _ in routes} == {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def alices_objects(alice, alice_api):
    """One of each object alice may write, made with her write token; staff, so the periodic-task API's own
    permission lets her in and only the scope can refuse."""
    alice.is_staff = True
    alice.save()
    monitor = alice_api.post(MONITORS, {"name": "shop", "url": "https://shop.example/", "interval": 60}).json()
    channel = alice_api.post("/api/v1/channels/", {"name": "ops", "kind": "email",
                                                   "address": "ops@example.com"}).json()
    return {"monitors": monitor["id"], "channels": channel["id"],
            "periodic-tasks": Monitor.objects.get(pk=monitor["id"]).periodic_task_id,
            "tokens": ApiToken.objects.get(owner=alice, scope="write").pk}


def state() -> tuple:
    return (list(Monitor.objects.order_by("id").values_list("id", "name", "enabled", "status")),
            list(Channel.objects.order_by("id").values_list("id", "name")),
            list(ApiToken.objects.order_by("id").values_list("id", "name", "scope")))


@pytest.mark.parametrize(("method", "path"), write_routes())
def test_a_read_token_is_refused_every_write_with_a_403(alices_objects, alice_read_api, method, path):
    resource = path.removeprefix("/api/v1/").split("/")[0]
    url = path.replace("{pk}", str(alices_objects.get(resource, 999_999)))
    before = state()

    response = getattr(alice_read_api, method.lower())(url, {"name": "changed"}, format="json")

    assert_error(response, 403, "insufficient_scope")
    assert state() == before


@pytest.mark.parametrize("path", [MONITORS, TOKENS, "/api/v1/results/", "/api/v1/channels/", "/api/v1/incidents/"])
def test_a_read_token_reads_everything(alice_read_api, path):
    assert alice_read_api.get(path).status_code == 200
    assert alice_read_api.head(path).status_code == 200
    assert alice_read_api.options(path).status_code == 200


def test_a_write_token_writes(alice_api):
    created = alice_api.post(MONITORS, {"name": "shop", "url": "https://shop.example/", "interval": 60})

    assert created.status_code == 201
    assert alice_api.post(f"{MONITORS}{created.json()['id']}/pause/").status_code == 200
