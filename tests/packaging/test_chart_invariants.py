"""Invariants of every rendered object, under every value set: the properties a platform team reviews for.

One beat pod by default; every container non-root, with resources, and (long-running ones) probes on ports
and paths that exist; selectors that select; Services that reach real container ports; and environment
variable names that the code actually reads.
"""

import re
from pathlib import Path

import pytest

from support.chart import (
    REPO,
    VALUE_SETS,
    Rendered,
    is_hook,
    named_ports,
    of_kind,
    one,
    pod_spec,
    probe_targets,
    render,
    workloads,
)

RECOMMENDED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                      "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by")
SOURCE = REPO / "src" / "lookout"


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def objects(request) -> list[Rendered]:
    return render(VALUE_SETS[request.param])


def containers_of(item: Rendered, *, init: bool = True) -> list[dict]:
    spec = pod_spec(item) or {}
    return [*(spec.get("initContainers") or [] if init else []), *spec["containers"]]


def pod_labels(item: Rendered) -> dict[str, str]:
    metadata = item.body["metadata"] if item.kind == "Pod" else item.body["spec"]["template"]["metadata"]
    return metadata["labels"]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    if not all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] == "NotIn" and value in expression["values"]:
            return False
    return True


def is_lookout_process(container: dict) -> bool:
    command = [*container.get("command", []), *container.get("args", [])]
    return bool(command) and (command[0] == "lookout" or "lookout manage" in " ".join(command))


def paths_the_code_serves() -> set[str]:
    """Paths the health code answers, read from the source rather than restated here."""
    text = "".join(path.read_text() for path in (SOURCE / "observability").glob("*.py"))
    return set(re.findall(r'path == "(/[a-z]+)"', text))


def env_names_the_code_reads() -> set[str]:
    names: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        names |= set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', path.read_text()))
    return names


def test_one_beat_pod_by_default_and_nothing_scales_it():
    objects = render({})
    beat = one(objects, "Deployment", "lookout-beat")
    assert beat.body["spec"]["replicas"] == 1
    scalers = of_kind(objects, "HorizontalPodAutoscaler") + of_kind(objects, "ScaledObject")
    assert all(item.body["spec"]["scaleTargetRef"]["name"] != "lookout-beat" for item in scalers)


def test_a_hot_standby_is_two_beats_spread_over_nodes():
    beat = one(render({"beat": {"replicas": 2}}), "Deployment", "lookout-beat")
    assert beat.body["spec"]["replicas"] == 2
    assert beat.body["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"] == \
        "kubernetes.io/hostname"


def test_every_object_carries_the_recommended_labels(objects):
    for item in objects:
        labels = item.body["metadata"].get("labels") or {}
        missing = [label for label in RECOMMENDED_LABELS if label not in labels]
        assert not missing, f"{item.kind} {item.name} lacks {missing}"
        if pod_spec(item) is not None and item.kind != "Pod":
            pod_missing = [label for label in RECOMMENDED_LABELS if label not in pod_labels(item)]
            assert not pod_missing, f"pods of {item.kind} {item.name} lack {pod_missing}"


def test_every_container_runs_as_non_root_with_resources(objects):
    for item in workloads(objects):
        spec = pod_spec(item)
        pod_context = spec.get("securityContext") or {}
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", item.name
        for container in containers_of(item):
            context = {**pod_context, **(container.get("securityContext") or {})}
            where = f"{item.kind} {item.name} container {container['name']}"
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            resources = container.get("resources") or {}
            assert resources.get("requests", {}).get("memory") and resources.get("limits", {}).get("memory"), where
            if "lookout" in container["image"]:
                assert context.get("readOnlyRootFilesystem") is True, where
                mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: a read-only root needs an emptyDir at /tmp"


def test_long_running_containers_have_probes_on_real_ports_and_served_paths(objects):
    served = paths_the_code_serves()
    assert {"/healthz", "/readyz"} <= served
    for item in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        for container in containers_of(item, init=False):
            where = f"{item.kind} {item.name} container {container['name']}"
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert kind in container, f"{where} has no {kind}"
                if "httpGet" in container[kind]:
                    assert container[kind]["httpGet"]["port"] in named_ports(container), f"{where} {kind} port"
            for _, path in probe_targets(container).values():
                assert path in served, f"{where} probes {path}, which the code does not serve"


def test_api_probes_liveness_on_healthz_and_readiness_on_readyz():
    api = one(render({}), "Deployment", "lookout-api")
    targets = probe_targets(containers_of(api, init=False)[0])
    assert targets["livenessProbe"] == (8000, "/healthz") and targets["readinessProbe"] == (8000, "/readyz")


def test_the_api_multiprocess_metrics_directory_is_a_writable_volume():
    api = containers_of(one(render({}), "Deployment", "lookout-api"), init=False)[0]
    directory = next(v["value"] for v in api["env"] if v["name"] == "PROMETHEUS_MULTIPROC_DIR")
    assert directory in {mount["mountPath"] for mount in api["volumeMounts"]}


def test_workload_selectors_match_their_pod_labels(objects):
    for item in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        assert selects(item.body["spec"]["selector"], pod_labels(item)), item.name


def test_every_selector_selects_a_workload_it_means(objects):
    pods = [pod_labels(item) for item in workloads(objects) if item.kind in ("Deployment", "StatefulSet")]
    selectors = [(item, item.body["spec"]["selector"]) for item in of_kind(objects, "PodDisruptionBudget")]
    selectors += [(item, item.body["spec"]["podSelector"]) for item in of_kind(objects, "NetworkPolicy")]
    selectors += [(item, item.body["spec"]["selector"]) for item in of_kind(objects, "PodMonitor")]
    selectors += [(item, {"matchLabels": item.body["spec"]["selector"]}) for item in of_kind(objects, "Service")]
    for item, selector in selectors:
        assert any(selects(selector, labels) for labels in pods), f"{item.kind} {item.name} selects no pod"
    for monitor in of_kind(objects, "ServiceMonitor"):
        assert any(selects(monitor.body["spec"]["selector"], service.body["metadata"]["labels"])
                   for service in of_kind(objects, "Service")), monitor.name
    deployments = {item.name for item in of_kind(objects, "Deployment")}
    for scaler in of_kind(objects, "HorizontalPodAutoscaler") + of_kind(objects, "ScaledObject"):
        assert scaler.body["spec"]["scaleTargetRef"]["name"] in deployments, scaler.name


def test_services_point_at_real_container_ports(objects):
    for service in of_kind(objects, "Service"):
        selected = [item for item in workloads(objects) if item.kind in ("Deployment", "StatefulSet")
                    and selects({"matchLabels": service.body["spec"]["selector"]}, pod_labels(item))]
        assert len(selected) == 1, service.name
        ports = {}
        for container in containers_of(selected[0], init=False):
            ports.update(named_ports(container))
        for port in service.body["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {service.name} targets {port['targetPort']}, not a port"


def test_env_names_the_chart_sets_are_names_the_code_reads(objects):
    read = env_names_the_code_reads()
    config_maps = {item.name: item.body.get("data") or {} for item in of_kind(objects, "ConfigMap")}
    for item in workloads(objects):
        for container in containers_of(item):
            if not is_lookout_process(container):
                continue
            names = {variable["name"] for variable in container.get("env", [])}
            for source in container.get("envFrom", []):
                names |= set(config_maps[source["configMapRef"]["name"]])
            unread = names - read
            assert not unread, f"{item.name}/{container['name']} sets {sorted(unread)}, which nothing in src/ reads"
            if container.get("command") == ["lookout", "agent"]:
                # The agent has the broker and its region's key, and nothing of the home side.
                required = {"CELERY_BROKER_URL", "LOOKOUT_REGION_KEY"}
                home_only = {"DATABASE_URL", "SECRET_KEY", "LOOKOUT_ENCRYPTION_KEY", "LOOKOUT_METRICS_TOKEN"}
                assert not names & home_only, f"{item.name}/{container['name']} sets {sorted(names & home_only)}"
            else:
                required = {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS", "LOOKOUT_METRICS_TOKEN"}
            assert required <= names, f"{item.name}/{container['name']} lacks {sorted(required - names)}"


def test_every_lookout_pod_rolls_on_configuration_change(objects):
    for item in of_kind(objects, "Deployment"):
        annotations = item.body["spec"]["template"]["metadata"].get("annotations") or {}
        reads_config = any("configMapRef" in source for container in containers_of(item)
                           for source in container.get("envFrom", []))
        wanted = {"checksum/config", "checksum/connections"} if reads_config else {"checksum/connections"}
        assert wanted <= set(annotations), item.name


def test_configuration_changes_change_the_checksum():
    def checksum(values):
        return one(render(values), "Deployment", "lookout-worker").body["spec"]["template"]["metadata"][
            "annotations"]["checksum/config"]
    assert checksum({}) != checksum({"config": {"logLevel": "DEBUG"}})


def test_workers_spread_over_zones_and_nodes():
    worker = one(render({}), "Deployment", "lookout-worker")
    keys = {c["topologyKey"] for c in worker.body["spec"]["template"]["spec"]["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_workloads_wait_for_migrations_and_the_migrations_job_runs_lookout_migrate(objects):
    jobs = [item for item in of_kind(objects, "Job") if "migrate" in item.name]
    if any(item.name == "lookout-agent" for item in of_kind(objects, "Deployment")):
        assert not jobs  # an agent-only install has no database to migrate
        return
    assert len(jobs) == 1
    assert containers_of(jobs[0])[0]["command"] == ["lookout", "migrate"]
    for name in ("api", "worker", "beat"):
        init = pod_spec(one(objects, "Deployment", f"lookout-{name}"))["initContainers"]
        assert "migrate --check" in init[0]["args"][0]


def test_migrations_are_a_hook_only_when_asked():
    def migrations_job(values):
        return next(item for item in render(values) if item.kind == "Job" and "migrate" in item.name)
    plain, hooked = migrations_job({}), migrations_job(VALUE_SETS["migration-hooks"])
    assert not is_hook(plain) and is_hook(hooked, "post-install")


def test_the_migrations_job_name_follows_its_content():
    def name(values):
        return next(item.name for item in render(values) if item.kind == "Job" and "migrate" in item.name)
    assert name({}) == name({})
    assert name({}) != name({"image": {"tag": "9.9.9"}})


def test_lookout_pods_get_no_kubernetes_api_token_except_the_key_generator(objects):
    for item in workloads(objects):
        spec = pod_spec(item)
        wanted = item.name.endswith("-keygen")
        assert spec.get("automountServiceAccountToken") is wanted, item.name


def test_notes_tell_how_to_get_a_token_and_create_a_monitor():
    from support.chart import notes

    text = notes()
    assert "exec deploy/lookout-api -c api -- lookout manage createapiuser" in text
    assert "/api/v1/monitors/" in text


def test_dashboards_and_rules_come_from_the_chart_files():
    objects = render(VALUE_SETS["monitoring"])
    dashboards = [item for item in of_kind(objects, "ConfigMap")
                  if item.body["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted(Path(REPO / "helm/lookout/files/dashboards").glob("*.json"))
    assert len(dashboards) == len(files) >= 1
    alerts = {rule["alert"] for group in of_kind(objects, "PrometheusRule")[0].body["spec"]["groups"]
              for rule in group["rules"]}
    assert {"LookoutBeatDown", "LookoutApiErrors", "LookoutProbeFailureRate"} <= alerts
