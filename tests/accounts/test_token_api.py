"""/api/v1/tokens/: list your own tokens (never a key), create one (the key shown once), revoke one; bad input is
a 400 in the one error format that changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from lookout.accounts.keys import key_digest
from lookout.accounts.models import ApiToken
from lookout.accounts.services import api_token_create
from support.api_errors import field_errors

pytestmark = pytest.mark.django_db

TOKENS = "/api/v1/tokens/"
LISTED_FIELDS = {"id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at"}


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_it_creates_a_token_and_shows_its_key_once(alice, alice_api):
    expires_at = datetime.now(UTC) + timedelta(days=30)

    response = alice_api.post(TOKENS, {"name": "grafana", "scope": "read", "expires_at": expires_at.isoformat()})

    assert response.status_code == 201, response.content
    created = response.json()
    assert created.keys() == LISTED_FIELDS | {"key"}
    assert (created["name"], created["scope"], created["last_used_at"]) == ("grafana", "read", None)
    assert datetime.fromisoformat(created["expires_at"]) == expires_at
    assert created["key"].startswith(created["prefix"])
    assert client_with(created["key"]).get("/api/v1/monitors/").status_code == 200
    listed = alice_api.get(TOKENS).json()["results"]
    assert created["key"] not in str(listed) and created["id"] in [token["id"] for token in listed]
    assert "key" not in alice_api.get(f"{TOKENS}{created['id']}/").json()


def test_it_stores_the_keys_digest_and_never_the_key(alice_api):
    key = alice_api.post(TOKENS, {"name": "ci"}).json()["key"]

    token = ApiToken.objects.get(name="ci")
    assert token.digest == key_digest(key) and len(token.digest) == 64
    assert key not in {str(value) for value in ApiToken.objects.filter(pk=token.pk).values().get().values()}


def test_a_token_is_write_scoped_and_never_expires_unless_asked(alice_api):
    created = alice_api.post(TOKENS, {"name": "ci"}).json()

    assert (created["scope"], created["expires_at"]) == ("write", None)


def test_the_list_shows_only_the_callers_own_tokens_newest_first_and_paginated(alice, bob, alice_api):
    api_token_create(owner=bob, name="bob's")
    older = api_token_create(owner=alice, name="older").token
    newer = api_token_create(owner=alice, name="newer").token

    body = alice_api.get(TOKENS, {"page_size": 2}).json()

    assert body["count"] == 3  # older, newer and the fixture's own "tests" token
    assert [token["id"] for token in body["results"]] == [newer.pk, older.pk]
    assert body["next"] and all(token.keys() == LISTED_FIELDS for token in body["results"])


def test_revoking_a_token_deletes_it_and_its_key_stops_working(alice):
    issued = api_token_create(owner=alice, name="laptop")
    other = api_token_create(owner=alice, name="ci")
    client = client_with(other.key)

    response = client.delete(f"{TOKENS}{issued.token.pk}/")

    assert response.status_code == 204
    assert client_with(issued.key).get(TOKENS).status_code == 401
    assert client.get(TOKENS).status_code == 200


def test_another_users_token_is_a_404_and_stays(alice_api, bob):
    bobs = api_token_create(owner=bob, name="bob's")

    assert alice_api.delete(f"{TOKENS}{bobs.token.pk}/").status_code == 404
    assert alice_api.get(f"{TOKENS}{bobs.token.pk}/").status_code == 404
    assert client_with(bobs.key).get(TOKENS).status_code == 200


def test_a_token_can_revoke_itself(alice):
    issued = api_token_create(owner=alice, name="leaked")
    client = client_with(issued.key)

    assert client.delete(f"{TOKENS}{issued.token.pk}/").status_code == 204
    assert client.get(TOKENS).status_code == 401


@pytest.mark.parametrize(("body", "errors"), [
    ({"name": "x", "scope": "admin"}, {"scope": ['"admin" is not a valid choice.']}),
    ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, {"expires_at": ["Must be in the future."]}),
    ({"name": "x", "expires_at": "soon"}, {"expires_at": None}),
    ({"name": ""}, {"name": ["This field may not be blank."]}),
    ({"name": "   "}, {"name": ["This field may not be blank."]}),
    ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
    ({}, {"name": ["This field is required."]}),
    ({"name": "x", "colour": "red"}, {"colour": ["Unknown field."]}),
    ({"name": "x", "key": "lk_mine"}, {"key": ["Unknown field."]}),
    ({"name": "x", "prefix": "lk_", "last_used_at": None}, {"last_used_at": ["Unknown field."],
                                                            "prefix": ["Unknown field."]}),
    ({"name": "x", "id": 7}, {"id": ["Unknown field."]}),
])
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(alice_api, body, errors):
    before = ApiToken.objects.count()

    response = alice_api.post(TOKENS, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    found = field_errors(response)
    assert found.keys() == errors.keys()
    assert all(expected is None or found[name] == expected for name, expected in errors.items())
    assert ApiToken.objects.count() == before


def test_a_token_cannot_be_changed_only_revoked(alice_api):
    token_id = alice_api.post(TOKENS, {"name": "ci"}).json()["id"]

    assert alice_api.patch(f"{TOKENS}{token_id}/", {"scope": "read"}).status_code == 405
    assert alice_api.put(f"{TOKENS}{token_id}/", {"name": "ci", "scope": "read"}).status_code == 405
    assert ApiToken.objects.get(pk=token_id).scope == "write"


def test_the_token_api_needs_credentials():
    anonymous = APIClient()

    for response in (anonymous.get(TOKENS), anonymous.post(TOKENS, {"name": "x"})):
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"
    assert ApiToken.objects.count() == 0


def test_the_password_exchange_issues_a_new_write_token_each_time(alice):
    keys = [APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}).json()
            ["token"] for _ in range(2)]

    assert keys[0] != keys[1]
    tokens = ApiToken.objects.filter(owner=alice)
    assert {(token.name, token.scope) for token in tokens} == {("password exchange", "write")}
    assert {token.digest for token in tokens} == {key_digest(key) for key in keys}


def test_the_password_exchange_takes_json_alone_like_every_endpoint(alice):
    for body, content_type in (("username=alice&password=alice-password-1", "application/x-www-form-urlencoded"),
                               ("--x--", "multipart/form-data; boundary=x")):
        response = APIClient().generic("POST", "/api/v1/auth/token/", body, content_type=content_type)
        assert response.status_code == 415, response.content
        assert response.json()["code"] == "unsupported_media_type"
    assert not ApiToken.objects.filter(owner=alice).exists()


def test_the_password_exchange_ignores_a_token_sent_along(alice, alice_read_api):
    # A read token in the client's default headers must not turn the exchange (a POST) into a 403.
    response = alice_read_api.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 200, response.content


def test_the_schema_describes_the_token_api_with_the_key_only_in_the_create_response(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    create = schema["paths"]["/api/v1/tokens/"]["post"]

    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiTokenCreateRequest"}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiTokenCreated"}
    assert "key" in components["ApiTokenCreated"]["properties"]
    assert "key" not in components["ApiToken"]["properties"]
    assert set(components["ApiTokenCreateRequest"]["properties"]) == {"name", "scope", "expires_at"}
    assert schema["paths"]["/api/v1/tokens/{id}/"]["delete"]["responses"].keys() >= {"204", "401", "403", "404"}
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"
