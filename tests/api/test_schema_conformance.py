"""The API answers as its OpenAPI schema says: schemathesis generates requests from the schema and sends them to
a real `lookout api` (gunicorn, its own PostgreSQL database and broker vhost), as a regular user and as staff,
and fails on any server error, undocumented status, undocumented content type or response that does not match
its schema.

The schema is generated here at collection, so that each operation is a test of its own (schemathesis's loader
from a fixture, which would wait for the API to start, does not run under pytest 9.2: it sets a node attribute
pytest no longer has); test_the_schema_under_test_is_the_one_the_api_serves holds it equal to the served one.

Bounded for the suite: a fixed seed, a few examples per operation, no example database. Generated ids mostly name
nothing (a 404, documented); so that the operations also answer about real objects, a generated id is pointed at
an object of the user's that exists; a change at a scratch object of its kind and a deletion at a throwaway one
made for it: the fixtures the other operations read are never changed or deleted by the run.
"""

import json
import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.api_process import ApiUser, api_start, api_user, failures_record
from support.receivers import WebhookReceiver
from support.stack import LookoutStack

pytestmark = pytest.mark.e2e

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The examples phase sends the schema's request examples; the fuzzing phase max-examples cases per operation;
# the coverage phase its boundary and wrong-type cases (hundreds for a monitor's body), once: for the staff-only
# operations as staff, for the others as the regular user.
CONFIG = """
seed = 20261203
[generation]
max-examples = 5
database = "none"
# Each test sends its user's token itself.
with-security-parameters = false
"""
COVERAGE_STAFF_ONLY = """
[[operations]]
include-tag = "periodic-tasks"
phases.coverage.enabled = {staff}
[[operations]]
exclude-tag = "periodic-tasks"
phases.coverage.enabled = {user}
"""
PRUNE = "lookout.stats.tasks.results_prune"


def _schema_generated() -> dict[str, Any]:
    """The schema the API serves, as its view renders it (lazy strings and all)."""
    from drf_spectacular.generators import SchemaGenerator

    generated: dict[str, Any] = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True),
                                                      default=str))
    return generated


def _schema_for(who: str) -> Any:
    coverage = COVERAGE_STAFF_ONLY.format(staff=str(who == "staff").lower(), user=str(who == "user").lower())
    return schemathesis.openapi.from_dict(SCHEMA, config=schemathesis.Config.from_str(CONFIG + coverage))


SCHEMA = _schema_generated()
user_schema, staff_schema = _schema_for("user"), _schema_for("staff")


def _throwaway_body(kind: str) -> dict[str, Any]:
    name = f"throwaway-{uuid.uuid4().hex[:8]}"
    return {
        "monitors": {"name": name, "url": "http://127.0.0.1:9/", "interval": 60},
        "channels": {"name": name, "kind": "email", "address": "ops@example.com"},
        "maintenance-windows": {"name": name, "cron": "0 3 * * *", "duration_seconds": 3600},
        "periodic-tasks": {"name": name, "task": PRUNE, "interval": {"every": 1, "period": "hours"}},
    }[kind]


def _fixtures(stack: LookoutStack, user: ApiUser, receiver: WebhookReceiver, *, staff: bool) -> None:
    channel = user.create("channels", {"name": "hook", "kind": "webhook", "url": receiver.url})
    monitor = user.create("monitors", {"name": "site", "url": "http://127.0.0.1:9/health", "interval": 60,
                                       "channels": [channel["id"]]})
    push = user.create("monitors", {"name": "cron job", "type": "push", "interval": 3600})
    window = user.create("maintenance-windows", {"name": "nightly", "monitor": monitor["id"], "cron": "0 3 * * *",
                                                 "duration_seconds": 3600})
    failures_record(stack, monitor_id=monitor["id"], count=2)  # an incident, results, a notification
    check = user.call("POST", f"monitors/{monitor['id']}/check/")
    assert check.status_code == 202, check.text
    incidents = user.call("GET", "incidents/").json()["results"]
    notifications = user.call("GET", "notifications/").json()["results"]
    assert incidents and notifications, (incidents, notifications)
    user.objects.update({
        "monitors": monitor["id"], "channels": channel["id"], "maintenance-windows": window["id"],
        "incidents": incidents[0]["id"], "notifications": notifications[0]["id"],
        "push": push["push_url"].rstrip("/").rsplit("/", 1)[1], "tasks": check.json()["task_id"],
    })
    if staff:
        task = user.create("periodic-tasks", {"name": "conformance", "task": PRUNE, "crontab": "0 4 * * *"})
        user.objects["periodic-tasks"] = task["id"]


@pytest.fixture(scope="module")
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def lookout_api(tmp_path_factory, receiver):
    name = f"lookout_conformance_{uuid.uuid4().hex[:8]}"
    with LookoutStack(tmp_path_factory.mktemp("stack"), name=name) as stack:
        # Limits far above the run's requests: 429s are documented, but would hide what the run is for.
        api_start(stack, LOOKOUT_USER_RATE="100000/minute", LOOKOUT_LOGIN_RATE="100000/minute",
                  LOOKOUT_PUSH_RATE="100000/minute")
        users = {"user": api_user(stack, "conformance-user"), "staff": api_user(stack, "conformance-staff", staff=True)}
        for who, user in users.items():
            _fixtures(stack, user, receiver, staff=who == "staff")
        yield stack, users


def test_the_schema_under_test_is_the_one_the_api_serves(lookout_api):
    stack, users = lookout_api
    served = users["user"].call("GET", "schema/", headers={"Accept": "application/vnd.oai.openapi+json"})

    assert served.status_code == 200
    assert served.json() == SCHEMA


def _aim(case, user: ApiUser) -> None:
    """Point a generated id (a valid one: negative cases keep theirs) at an object of the user's: a change at a
    scratch one of its kind, a deletion at a fresh one, anything else at the fixture."""
    if case.method.upper() != case.operation.method.upper():
        return  # a method the path does not have (coverage's 405 cases): nothing to point at
    kind = case.path.split("/")[3]  # /api/v1/<kind>/...
    for name, value in case.path_parameters.items():
        if name == "id" and str(value).isdigit() and kind in user.objects:
            if case.path.count("/") == 5 and case.method.upper() == "DELETE":
                case.path_parameters[name] = user.create(kind, _throwaway_body(kind))["id"]
            elif case.path.count("/") == 5 and case.method.upper() in ("PUT", "PATCH"):
                if f"{kind} scratch" not in user.objects:
                    user.objects[f"{kind} scratch"] = user.create(kind, _throwaway_body(kind))["id"]
                case.path_parameters[name] = user.objects[f"{kind} scratch"]
            else:
                case.path_parameters[name] = user.objects[kind]
        elif name in ("token", "task_id") and isinstance(value, str) and value.isalnum():
            case.path_parameters[name] = user.objects[kind]


@user_schema.parametrize()
def test_the_api_answers_a_regular_user_as_its_schema_says(case, lookout_api):
    stack, users = lookout_api
    _aim(case, users["user"])
    case.call_and_validate(base_url=stack.url, headers=users["user"].headers, checks=CHECKS)


@staff_schema.parametrize()
def test_the_api_answers_staff_as_its_schema_says(case, lookout_api):
    stack, users = lookout_api
    _aim(case, users["staff"])
    case.call_and_validate(base_url=stack.url, headers=users["staff"].headers, checks=CHECKS)
