"""The OpenAPI schema tells the truth (lookout.api.schema): JSON request bodies only (and the API parses nothing
else), request components without read-only fields, every response field listed as present, and each operation's
statuses where, and only where, they can happen."""

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

MONITORS = "/api/v1/monitors/"


@pytest.fixture
def schema(alice_api) -> dict:
    return alice_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_a_form_body_is_a_415_in_the_error_format(alice_api):
    response = alice_api.post(MONITORS, {"name": "x", "url": "https://example.com", "interval": 60},
                              format="multipart")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type" and response.json()["detail"]


def test_the_token_exchange_takes_json_only_too(alice):
    client = Client()

    form = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})
    as_json = client.post("/api/v1/auth/token/", json.dumps({"username": "alice", "password": "alice-password-1"}),
                          content_type="application/json")

    assert form.status_code == 415 and form.json()["code"] == "unsupported_media_type"
    assert as_json.status_code == 200 and as_json.json()["token"]


def test_every_request_body_is_json_alone(schema):
    bodies = [operation["requestBody"] for _, _, operation in operations(schema) if "requestBody" in operation]

    assert bodies
    assert all(list(body["content"]) == ["application/json"] for body in bodies)


def test_no_request_component_has_a_read_only_field(schema):
    components = schema["components"]["schemas"]
    requests = {name: component for name, component in components.items() if name.endswith("Request")}

    assert {"MonitorRequest", "PatchedMonitorRequest", "ChannelRequest", "PeriodicTaskRequest"} <= requests.keys()
    for name, component in requests.items():
        assert not [field for field, spec in component["properties"].items() if spec.get("readOnly")], name
        assert "id" not in component["properties"], name


def test_every_response_field_is_listed_as_present(schema):
    components = schema["components"]["schemas"]

    for name, component in components.items():
        if name.endswith("Request") or "properties" not in component or name == "Error":
            continue
        assert sorted(component.get("required", [])) == sorted(component["properties"]), name


def test_values_that_can_be_null_are_nullable(schema):
    components = schema["components"]["schemas"]

    assert components["Monitor"]["properties"]["tls_expires_at"]["nullable"] is True
    assert components["PeriodicTask"]["properties"]["timezone"]["nullable"] is True
    assert components["Monitor"]["properties"]["push_url"]["nullable"] is True
    assert not components["Monitor"]["properties"]["name"].get("nullable")
    assert not components["MonitorRequest"]["properties"]["timezone"].get("nullable")


def test_a_patch_documents_no_defaults(schema):
    components = schema["components"]["schemas"]

    assert components["MonitorRequest"]["properties"]["type"]["default"] == "http"  # a creation's
    for name, component in components.items():
        if name.startswith("Patched"):
            assert not [field for field, spec in component["properties"].items() if "default" in spec], name


def test_filters_are_typed_and_only_on_the_lists(schema):
    notifications = {parameter["name"]: parameter["schema"]
                     for parameter in schema["paths"]["/api/v1/notifications/"]["get"]["parameters"]}
    incident = schema["paths"]["/api/v1/incidents/{id}/"]["get"]

    assert notifications["monitor"] == {"type": "integer", "minimum": 1}
    assert "monitor.down" in notifications["event"]["enum"] and "delivered" in notifications["state"]["enum"]
    assert [parameter["in"] for parameter in incident["parameters"]] == ["path"]
    assert "400" not in incident["responses"]


def test_each_operation_documents_the_statuses_it_can_answer(schema):
    paths = schema["paths"]
    error = {"$ref": "#/components/schemas/Error"}

    for path, method, operation in operations(schema):
        responses = operation["responses"]
        assert "503" in responses, (method, path)  # the database, everywhere
        assert responses["503"]["headers"]["Retry-After"]
        # A path id, or a paginated list (a page past the last, an invalid cursor).
        paginated = {"page", "cursor"} & {parameter["name"] for parameter in operation.get("parameters", [])}
        assert ("404" in responses) == ("{" in path or bool(paginated)), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == error, (method, path, status)
    assert "409" in paths["/api/v1/periodic-tasks/"]["post"]["responses"]
    assert "409" not in paths["/api/v1/monitors/"]["post"]["responses"]
    assert {"413", "415"} <= paths["/api/v1/monitors/"]["post"]["responses"].keys()
    assert not {"413", "415"} & paths["/api/v1/monitors/{id}/pause/"]["post"]["responses"].keys()
    assert "broker" in paths["/api/v1/monitors/{id}/check/"]["post"]["responses"]["503"]["description"]
    assert "400" in paths["/api/v1/monitors/{id}/check/"]["post"]["responses"]  # a push monitor is refused
    assert "400" not in paths["/api/v1/monitors/{id}/pause/"]["post"]["responses"]
    assert "400" in paths["/api/v1/periodic-tasks/{id}/"]["delete"]["responses"]  # a built-in one is refused
    assert "403" in paths["/api/v1/periodic-tasks/"]["get"]["responses"]  # staff only
    assert "403" not in paths["/api/v1/monitors/"]["get"]["responses"]
    assert "401" not in paths["/api/v1/push/{token}/"]["post"]["responses"]  # the token in the path is all
    assert "429" in paths["/api/v1/push/{token}/"]["post"]["responses"]


def test_page_is_a_number_from_1_or_last(schema):
    page = next(parameter["schema"] for parameter in schema["paths"]["/api/v1/monitors/"]["get"]["parameters"]
                if parameter["name"] == "page")

    assert page == {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "enum": ["last"]}]}
