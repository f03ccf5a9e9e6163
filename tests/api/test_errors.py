"""The one error format: every API error body has `detail` and `code`; invalid input adds one key per field;
domain errors from the services become their HTTP status in one place (lookout.api.errors)."""

import pytest
from rest_framework.test import APIClient

from lookout.api.errors import exception_handler
from lookout.core.errors import BrokerUnavailable, Conflict, NotFound, Refused, ValidationFailed

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


def test_invalid_input_names_each_field_besides_detail_and_code(alice_api):
    response = alice_api.post(MONITORS, {"name": "x", "url": "ftp://x", "interval": 20, "timeout": 21}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "url" in body["detail"] and "timeout" in body["detail"]
    assert isinstance(body["url"], list) and isinstance(body["timeout"], list)


def test_an_unknown_monitor_is_a_404_in_the_error_format(alice_api):
    response = alice_api.get(f"{MONITORS}999999/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and response.json()["detail"]


def test_an_anonymous_request_is_a_401_in_the_error_format():
    response = APIClient().get(MONITORS)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_wrong_method_is_a_405_in_the_error_format(alice_api):
    response = alice_api.put(MONITORS, {}, format="json")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_malformed_json_is_a_400_parse_error(alice_api):
    response = alice_api.generic("POST", MONITORS, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_check_now_of_a_push_monitor_is_refused_with_a_400(alice_api):
    monitor = alice_api.post(MONITORS, {"name": "beat", "type": "push", "interval": 60}, format="json").json()

    response = alice_api.post(f"{MONITORS}{monitor['id']}/check/")

    assert response.status_code == 400
    assert response.json()["code"] == "refused" and "push" in response.json()["detail"]


@pytest.mark.parametrize(("error", "status", "code"), [
    (ValidationFailed({"url": "bad"}), 400, "invalid"),
    (Refused("does not apply"), 400, "refused"),
    (NotFound("gone"), 404, "not_found"),
    (Conflict("taken"), 409, "conflict"),
    (BrokerUnavailable("down"), 503, "broker_unavailable"),
])
def test_each_domain_error_maps_to_one_status_and_code(error, status, code):
    response = exception_handler(error, {})

    assert (response.status_code, response.data["code"]) == (status, code)
    assert response.data["detail"] == error.detail


def test_a_field_named_like_the_envelope_reports_under_non_field_errors():
    response = exception_handler(ValidationFailed({"detail": "Unknown field."}), {})

    assert response.data["non_field_errors"] == ["Unknown field."]
    assert isinstance(response.data["detail"], str)


def test_the_schema_documents_the_error_format_on_every_operation(alice_api):
    schema = alice_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert schema["components"]["schemas"]["Error"]["required"] == ["detail", "code"]
    error = {"$ref": "#/components/schemas/Error"}
    create = schema["paths"]["/api/v1/monitors/"]["post"]["responses"]
    detail = schema["paths"]["/api/v1/monitors/{id}/"]["get"]["responses"]
    check = schema["paths"]["/api/v1/monitors/{id}/check/"]["post"]["responses"]
    assert create["400"]["content"]["application/json"]["schema"] == error
    assert {"401", "403", "429"} <= create.keys()
    assert "404" in detail and "503" in check


def test_a_nested_fields_errors_are_messages_in_its_fields_list_naming_where(alice_api):
    response = alice_api.post(MONITORS, {"name": "x", "url": "https://example.com", "interval": 60,
                                         "headers": {"X-Id": ["a"], "X-Ok": "fine"}, "expected_status": [200, "x"]},
                              format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["headers"] == ["X-Id: Not a valid string."]
    assert body["expected_status"] == ["[1]: A valid integer is required."]
