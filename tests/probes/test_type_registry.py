"""What derives from the probe engine's type registry and the alert channel registry, instead of being typed
again: the monitor's type choices, the fields a worker reads, each probe's spec, metric label sets."""

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from lookout.alerting.channels import CHANNEL_KINDS
from lookout.alerting.models import ChannelKind
from lookout.monitors import services
from lookout.monitors.models import MonitorType, RecordType
from lookout.monitors.probe_spec import PROBE_FIELDS, probe_spec
from lookout.monitors.spec import MonitorSpec
from lookout.observability.metrics import worker_series_initialize
from lookout.probes.engine import PROBE_TYPES, RECORD_TYPES, spec_fields


def test_the_monitor_types_are_the_engines_and_push():
    assert MonitorType.values == [*PROBE_TYPES, "push"]
    assert RecordType.values == list(RECORD_TYPES)


def test_the_channel_kinds_are_the_transports():
    assert ChannelKind.values == list(CHANNEL_KINDS)


@pytest.mark.django_db
@pytest.mark.parametrize(("probe_type", "url"), [("http", "https://example.com/"), ("tcp", "tcp://example.com:25"),
                                                ("dns", "dns:///example.com")])
def test_a_probe_spec_carries_its_types_fields_and_the_engine_defaults_for_the_rest(alice, probe_type, url):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(
        name=probe_type, type=probe_type, url=url, interval=60, send="HELO" if probe_type == "tcp" else "",
        keyword="k" if probe_type == "http" else None))

    spec = probe_spec(monitor)

    assert spec.type == probe_type
    assert (spec.keyword == "k") is (probe_type == "http")
    assert (spec.send == b"HELO") is (probe_type == "tcp")


def test_a_worker_reads_every_field_any_type_needs():
    needed = {name for probe_type in PROBE_TYPES for name in spec_fields(probe_type)} - {"policy", "ca_pem"}
    read = set(PROBE_FIELDS) | {"headers", "basic_auth"}

    assert needed <= read
    assert {"secret_headers", "basic_auth_username", "basic_auth_password", "enabled"} <= set(PROBE_FIELDS)


def test_the_probe_metrics_get_a_series_per_registered_type_at_worker_start():
    worker_series_initialize(tasks=[], concurrency=1, in_flight=lambda: 0, loop_age=lambda: 0,
                             broker_connected=lambda: 1)

    for probe_type in PROBE_TYPES:
        assert REGISTRY.get_sample_value("lookout_probes_total", {"type": probe_type, "result": "failure",
                                                                "region": settings.LOOKOUT_REGION}) is not None
