"""The chart renders under every value set, lints clean in strict mode, and every object it renders is valid.

Built-in kinds are checked with kubernetes-validate --strict (unknown fields rejected) for the oldest and the
newest Kubernetes minor we support; the KEDA and Prometheus Operator objects against the CRD schemas kept in
tests/packaging/schemas/.
"""

import json
from pathlib import Path

import jsonschema
import pytest

from support.chart import CHART, KUBERNETES_VERSIONS, VALUE_SETS, helm, of_kind, render

CUSTOM_RESOURCE_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
}
SCHEMAS = Path(__file__).parent / "schemas"


def kubernetes_validate_all(bodies: list[dict]) -> list[str]:
    """Every problem kubernetes-validate --strict finds, for each supported minor; CRs against our schemas."""
    import kubernetes_validate

    problems = []
    for body in bodies:
        key = (body["apiVersion"], body["kind"])
        if key in CUSTOM_RESOURCE_SCHEMAS:
            schema = json.loads((SCHEMAS / CUSTOM_RESOURCE_SCHEMAS[key]).read_text())
            for error in jsonschema.Draft202012Validator(schema).iter_errors(body):
                problems.append(f"{body['kind']} {body['metadata']['name']}: {error.json_path}: {error.message}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(body, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{body['kind']} {body['metadata']['name']} (Kubernetes {version}): "
                                f"{'.'.join(map(str, error.path))}: {error.message}")
    return problems


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_rendered_object_is_valid(value_set):
    objects = render(VALUE_SETS[value_set])
    assert objects
    assert kubernetes_validate_all([item.body for item in objects]) == []


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_the_chart_lints_clean_in_strict_mode(value_set):
    report = helm().lint(CHART, VALUE_SETS[value_set], strict=True, namespace="lookout", kube_version="v1.30.0")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_value_sets_render_what_they_switch_on():
    kinds = {name: {item.kind for item in render(values)} for name, values in VALUE_SETS.items()}
    assert "ScaledObject" in kinds["keda-prometheus"] and "HorizontalPodAutoscaler" not in kinds["keda-prometheus"]
    assert "HorizontalPodAutoscaler" in kinds["hpa"] and "ScaledObject" not in kinds["hpa"]
    assert "Ingress" in kinds["ingress"] and "Ingress" not in kinds["defaults"]
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds["monitoring"]
    assert "StatefulSet" in kinds["defaults"] and "StatefulSet" not in kinds["bundled-off"]
    assert "NetworkPolicy" in kinds["defaults"] and "NetworkPolicy" not in kinds["bundled-off"]


def test_keda_and_hpa_together_fail_rendering():
    values = {"worker": {"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}}}
    with pytest.raises(helm().HelmRenderError, match="either hpa or keda, not both"):
        render(values)


@pytest.mark.parametrize("values, message", [
    ({"postgresql": {"enabled": False}}, "no database"),
    ({"rabbitmq": {"enabled": False}}, "no broker"),
    ({"database": {"url": "postgres://x@y/z"}}, "bundles a database"),
])
def test_ambiguous_or_missing_services_fail_rendering_with_a_clear_message(values, message):
    with pytest.raises(helm().HelmRenderError, match=message):
        render(values)


@pytest.mark.parametrize("values", [
    {"beat": {"replicas": 3}},
    {"worker": {"autoscaling": {"keda": {"trigger": "cpu"}}}},
    {"api": {"typo": 1}},
])
def test_the_values_schema_refuses_what_the_chart_cannot_honour(values):
    with pytest.raises(helm().HelmValuesError):
        render(values)


def test_keda_prometheus_trigger_targets_a_share_of_the_greenlets():
    objects = render({"worker": {"concurrency": 40, "autoscaling": {"keda": {"enabled": True}}}})
    trigger = of_kind(objects, "ScaledObject")[0].body["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert "lookout_probe_duration_seconds_sum" in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) == pytest.approx(24)


def test_keda_rabbitmq_trigger_reads_the_broker_url_the_worker_has():
    objects = render(VALUE_SETS["keda-rabbitmq"])
    trigger = of_kind(objects, "ScaledObject")[0].body["spec"]["triggers"][0]
    worker = next(item for item in of_kind(objects, "Deployment") if item.name.endswith("-worker"))
    env_names = {variable["name"] for variable in worker.body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert trigger["type"] == "rabbitmq" and trigger["metadata"]["queueName"] == "probes"
    assert trigger["metadata"]["hostFromEnv"] in env_names
