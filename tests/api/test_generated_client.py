"""A client generated from the served schema (openapi-python-client), imported as generated, drives the main
flows against real `lookout` processes (api, worker and beat on a database and vhost of their own): channels,
monitors, check-now and its task, results, stats, pause and resume, and an incident a real probe opened.

A schema that lies breaks this client: a form body listed beside JSON, read-only fields in a request model, a
default in a PATCH model (sent on every PATCH), a null or a field the models do not expect all fail here.
"""

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from support.http_target import HttpTarget
from support.receivers import WebhookReceiver
from support.stack import LookoutStack, wait_until

pytestmark = pytest.mark.e2e

PACKAGE = "lookout_client"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    name = f"lookout_client_{uuid.uuid4().hex[:8]}"
    with LookoutStack(tmp_path_factory.mktemp("stack"), name=name) as stack:
        yield stack.up()


@pytest.fixture(scope="module")
def generated(stack, tmp_path_factory):
    """The client package generated from the schema the API serves, imported from where it was written."""
    out = tmp_path_factory.mktemp("client")
    schema = requests.get(f"{stack.url}/api/v1/schema/", headers={"Accept": "application/vnd.oai.openapi+json"},
                          timeout=30)
    assert schema.status_code == 200
    (out / "schema.json").write_bytes(schema.content)
    # Its formatting step runs `ruff`: the one of this virtualenv.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([Path(sys.executable).parent / "openapi-python-client", "generate", "--path",
                           str(out / "schema.json"), "--meta", "none", "--output-path", str(out / PACKAGE)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for module in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[module]


def _api(name: str):
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def _ok(response, status: int = 200):
    assert response.status_code == status, (response.status_code, response.content[:500])
    return response.parsed


def test_the_main_flows_through_the_generated_client(stack, generated):
    models = importlib.import_module(f"{PACKAGE}.models")
    client = generated.AuthenticatedClient(base_url=stack.url, token=stack.token, prefix="Token",
                                           raise_on_unexpected_status=True)
    monitors = {name: _api(f"monitors.monitors_{name}") for name in (
        "create", "list", "retrieve", "update", "partial_update", "destroy", "pause_create", "resume_create",
        "check_create", "stats_retrieve")}
    channels = {name: _api(f"channels.channels_{name}") for name in (
        "create", "list", "retrieve", "partial_update", "destroy", "test_create")}
    target, hook = HttpTarget(), WebhookReceiver()
    try:
        # Channels
        channel = _ok(channels["create"].sync_detailed(client=client, body=models.ChannelRequest(
            name="hook", kind=models.ChannelKindEnum.WEBHOOK, url=hook.url, secret="s3cret")), 201)
        assert channel.secret_set is True and channel.failing is False and channel.failing_since is None
        renamed = _ok(channels["partial_update"].sync_detailed(
            channel.id, client=client, body=models.PatchedChannelRequest(name="on-call hook")))
        assert (renamed.name, renamed.kind, renamed.url) == ("on-call hook", models.ChannelKindEnum.WEBHOOK, hook.url)
        assert _ok(channels["test_create"].sync_detailed(channel.id, client=client)).delivered is True
        assert [c.id for c in _ok(channels["list"].sync_detailed(client=client)).results] == [channel.id]
        assert _ok(channels["retrieve"].sync_detailed(channel.id, client=client)).name == "on-call hook"

        # Monitors: create, read, change (PUT and PATCH), an invalid one refused in the error format
        monitor = _ok(monitors["create"].sync_detailed(client=client, body=models.MonitorRequest(
            name="site", url=target.url, interval=2, timeout=1.0, method=models.MethodEnum.HEAD,
            channels=[channel.id], failure_threshold=2)), 201)
        assert monitor.tls_expires_at is None and monitor.last_checked_at is None and monitor.push_url is None
        assert monitor.method == models.MethodEnum.HEAD
        refused = monitors["create"].sync_detailed(client=client, body=models.MonitorRequest(
            name="bad", url="ftp://nowhere", interval=60))
        assert refused.status_code == 400 and refused.parsed.code == "invalid"
        assert refused.parsed.additional_properties["url"]
        patched = _ok(monitors["partial_update"].sync_detailed(
            monitor.id, client=client, body=models.PatchedMonitorRequest(name="homepage")))
        # Fields the PATCH left out kept their values (no default sent for them)
        assert (patched.name, patched.method, patched.interval) == ("homepage", models.MethodEnum.HEAD, 2)
        put = _ok(monitors["update"].sync_detailed(monitor.id, client=client, body=models.MonitorRequest(
            name="homepage", url=target.url, interval=2, timeout=1.0, channels=[channel.id], failure_threshold=2)))
        assert put.method == models.MethodEnum.GET  # a PUT is the whole monitor: its defaults apply
        listed = _ok(monitors["list"].sync_detailed(client=client))
        assert listed.count == 1 and listed.results[0].id == monitor.id

        # Check now, then its task's state until it ran
        queued = _ok(monitors["check_create"].sync_detailed(monitor.id, client=client), 202)
        tasks_retrieve = _api("tasks.tasks_retrieve")
        state = wait_until(lambda: (lambda s: s if s.state == models.TaskStateStateEnum.SUCCESS else None)(
            _ok(tasks_retrieve.sync_detailed(queued.task_id, client=client))), timeout=60, what="the check-now task")
        assert state.error is None and state.result is not None

        # Results and stats
        results_list = _api("results.results_list")
        results = _ok(results_list.sync_detailed(client=client, monitor=monitor.id, success=True))
        assert results.results and all(r.success and r.monitor == monitor.id for r in results.results)
        stats = _ok(monitors["stats_retrieve"].sync_detailed(monitor.id, client=client))
        assert stats.checks >= 1 and stats.monitor == monitor.id

        # A real outage: the worker's probes fail, the monitor goes down and an incident opens
        target.set(status=503)
        incidents_list, incidents_retrieve = _api("incidents.incidents_list"), _api("incidents.incidents_retrieve")
        incident = wait_until(lambda: next(iter(_ok(incidents_list.sync_detailed(
            client=client, monitor=monitor.id, open_=True)).results), None), timeout=60, what="an incident")
        assert incident.open_ is True and incident.ended_at is None
        assert _ok(incidents_retrieve.sync_detailed(incident.id, client=client)).id == incident.id
        notifications_list = _api("notifications.notifications_list")
        delivered = wait_until(lambda: _ok(notifications_list.sync_detailed(
            client=client, incident=incident.id, state=models.NotificationsListState.DELIVERED)).results,
            timeout=60, what="the monitor.down alert delivered")
        assert delivered[0].event == models.EventEnum.MONITOR_DOWN and delivered[0].attempt_log
        failures = _ok(results_list.sync_detailed(client=client, monitor=monitor.id, success=False))
        assert failures.results and failures.results[0].status_code == 503

        # Pause and resume
        paused = _ok(monitors["pause_create"].sync_detailed(monitor.id, client=client))
        assert paused.enabled is False and paused.status == models.StatusEnum.PAUSED
        assert _ok(monitors["resume_create"].sync_detailed(monitor.id, client=client)).enabled is True

        # Delete
        assert monitors["destroy"].sync_detailed(monitor.id, client=client).status_code == 204
        assert monitors["retrieve"].sync_detailed(monitor.id, client=client).status_code == 404
        assert channels["destroy"].sync_detailed(channel.id, client=client).status_code == 204
    finally:
        target.close()
        hook.close()
