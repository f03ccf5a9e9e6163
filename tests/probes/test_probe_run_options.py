"""probe_run hands the monitor's options, decrypted secrets included, to the engine, and records what it says."""

import base64
import uuid

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from lookout.monitors import services
from lookout.monitors.models import Monitor, ProbeResult
from lookout.monitors.probe_spec import PROBE_FIELDS, probe_spec
from lookout.monitors.selectors import monitors_for_probe
from lookout.monitors.spec import MonitorSpec
from lookout.observability.collector import MonitorCollector
from lookout.probes.services import probe_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_secret_headers_and_basic_auth_reach_the_target_decrypted(alice, http_target):
    monitor = services.monitor_create(
        owner=alice, spec=MonitorSpec(name="secret", url=http_target.url, interval=60, headers={"X-Plain": "p"},
        secret_headers={"X-Api-Key": "k3y"}, basic_auth_username="bot", basic_auth_password="pa55",
    ))
    probe_run(monitor_id=monitor.pk, task_id=str(uuid.uuid4()))
    headers = http_target.hits[0].headers
    assert headers["X-Plain"] == "p"
    assert headers["X-Api-Key"] == "k3y"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"bot:pa55").decode()


def test_a_post_with_a_body_is_sent_as_configured(alice, http_target):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="post", url=http_target.url, interval=60,
                                                                    method="POST",
                                      body='{"ping": true}'))
    probe_run(monitor_id=monitor.pk, task_id=str(uuid.uuid4()))
    assert http_target.hits[0].method == "POST"


def test_a_failed_condition_is_recorded_with_the_result(alice, http_target):
    http_target.set(body=b'{"status": "DOWN"}')
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="cond", url=http_target.url, interval=60,
                                      conditions=["[STATUS] == 200", '[BODY].status == "UP"']))
    outcome = probe_run(monitor_id=monitor.pk, task_id=str(uuid.uuid4()))
    result = ProbeResult.objects.get(monitor=monitor)
    assert outcome["success"] is False and result.success is False
    assert result.failed_condition == '[BODY].status == "UP"'


def test_phases_are_recorded_and_exported_for_the_fleet_and_the_monitor(alice, http_target):
    processing = {"phase": "processing", "region": settings.LOOKOUT_REGION}
    before = REGISTRY.get_sample_value("lookout_probe_phase_duration_seconds_count", processing) or 0
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="phases", url=http_target.url, interval=60,
                                                                                 metrics=["phases"]))
    probe_run(monitor_id=monitor.pk, task_id=str(uuid.uuid4()))
    result = ProbeResult.objects.get(monitor=monitor)
    assert {"dns", "connect", "processing", "transfer"} <= set(result.phases)
    assert sum(result.phases.values()) == pytest.approx(result.response_time_ms, abs=1.5)
    after = REGISTRY.get_sample_value("lookout_probe_phase_duration_seconds_count", processing)
    assert after == before + 1
    families = {family.name: family for family in MonitorCollector(cache_seconds=0).collect()}
    samples = [s for s in families["lookout_monitor_last_phase_duration_seconds"].samples
               if s.labels["monitor_id"] == str(monitor.pk)]
    assert {s.labels["phase"] for s in samples} >= {"connect", "processing"}
    info = [s for s in families["lookout_monitor_info"].samples if s.labels["monitor_id"] == str(monitor.pk)]
    assert info[0].labels["type"] == "http"
    assert Monitor.objects.get(pk=monitor.pk).last_phases["processing"] == result.phases["processing"]


def test_the_fields_a_worker_reads_are_all_that_building_the_probe_needs(alice, django_assert_num_queries):
    services.monitor_create(
        owner=alice, spec=MonitorSpec(
            name="everything", url="https://example.com/", interval=60, method="POST", body="b",
        headers={"X": "1"}, secret_headers={"Y": "2"}, basic_auth_username="u", basic_auth_password="p",
        keyword="k", expected_status=[200], conditions=["[STATUS] == 200"],
    ))
    (monitor,) = monitors_for_probe(monitor_ids=[Monitor.objects.get().pk], fields=PROBE_FIELDS).values()

    with django_assert_num_queries(0):  # a field missing from PROBE_FIELDS would be loaded here, one query each
        spec = probe_spec(monitor)
        assert monitor.enabled

    assert (spec.method, spec.headers, spec.basic_auth) == ("POST", {"X": "1", "Y": "2"}, ("u", "p"))
