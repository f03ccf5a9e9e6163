"""Errors Django answers itself, before or around DRF, are in the one error format too (lookout.api.error_views):
an unknown route, a Host header not in ALLOWED_HOSTS, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, an unexpected
exception (logged, never shown) and the database being unavailable (503 with Retry-After)."""

import json
import logging

import pytest
from django.db import OperationalError
from django.test import Client, RequestFactory
from psycopg_pool import PoolTimeout

from lookout.accounts.services import api_token_create
from lookout.api.error_views import server_error
from lookout.monitors import selectors

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


@pytest.fixture
def alice_token(alice):
    return api_token_create(owner=alice, name="tests").key


@pytest.fixture
def client():
    # As a server answers: an exception becomes Django's 500 response instead of being raised into the test.
    return Client(raise_request_exception=False)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = json.loads(response.content)
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize("path", ["/api/v1/nope/", "/nope", "/api/v1/monitors/1/nope/", "/admin-nope/"])
def test_it_answers_an_unknown_route_with_a_json_404(client, path):
    assert_error(client.get(path), 404, "not_found")


def test_it_answers_a_bad_host_header_with_a_json_400(client):
    assert_error(client.get(MONITORS, HTTP_HOST="evil.example"), 400, "bad_request")


def test_health_and_metrics_paths_still_answer_any_host(client):
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200


def test_it_answers_a_body_over_the_limit_with_a_json_413(alice_api, settings):
    body = json.dumps({"name": "x" * (5 * 1024 * 1024), "url": "https://example.com", "interval": 60})

    response = alice_api.generic("POST", MONITORS, body, content_type="application/json")

    assert_error(response, 413, "too_large")


def test_it_answers_an_unexpected_exception_with_a_json_500_and_logs_it(alice_token, client, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "monitor_list", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get(MONITORS, HTTP_AUTHORIZATION=f"Token {alice_token}")

    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}
    assert_error(response, 500, "server_error")
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
    assert any(record.exc_info and "secret internals" in str(record.exc_info[1]) for record in caplog.records)


@pytest.mark.parametrize("error", [OperationalError("connection refused"), PoolTimeout("no connection in 30 s")])
def test_it_answers_a_database_error_with_a_503_and_retry_after(alice_token, client, monkeypatch, error):
    def unavailable(**kwargs):
        raise error

    monkeypatch.setattr(selectors, "monitor_list", unavailable)
    response = client.get(MONITORS, HTTP_AUTHORIZATION=f"Token {alice_token}")

    assert_error(response, 503, "database_unavailable")
    assert int(response["Retry-After"]) > 0


def test_a_database_error_outside_a_view_is_a_503_too():
    # Raised in a middleware (a session save), it reaches Django's 500 handler rather than process_exception.
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        response = server_error(RequestFactory().get(MONITORS))

    assert_error(response, 503, "database_unavailable")
    assert response["Retry-After"]
