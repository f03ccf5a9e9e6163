"""The Helm chart as objects: rendered by the real Helm library (PyPI helm-python-sdk), offline.

Also the pieces the packaging tests share: the value sets every test renders, the tools they need (which
must fail the run, not skip it, under CI=true), and how a rendered container's environment resolves.
"""

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "lookout"
RELEASE = "lookout"
NAMESPACE = "lookout"
VENV_BIN = Path(os.sys.executable).parent
# The oldest Kubernetes minor the chart supports (Chart.yaml kubeVersion) and the newest we have schemas for.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

EXTERNAL = {
    "postgresql": {"enabled": False}, "rabbitmq": {"enabled": False},
    "database": {"existingSecret": "lookout-database"}, "broker": {"existingSecret": "lookout-broker"},
    "secrets": {"existingSecret": "lookout-keys"},
}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "external-existing-secrets": EXTERNAL,
    "external-urls": {"postgresql": {"enabled": False}, "rabbitmq": {"enabled": False},
                      "database": {"url": "postgres://lookout:pw@db.example.com:5432/lookout"},
                      "broker": {"url": "amqp://lookout:pw@mq.example.com:5672/lookout"}},
    "keda-prometheus": {"worker": {"autoscaling": {"keda": {"enabled": True}}}},
    "keda-rabbitmq": {"worker": {"autoscaling": {"keda": {"enabled": True, "trigger": "rabbitmq"}}}},
    "hpa": {"api": {"autoscaling": {"enabled": True}}, "worker": {"autoscaling": {"hpa": {"enabled": True}}}},
    "ingress": {"api": {"ingress": {"enabled": True, "className": "nginx",
                                    "tls": [{"secretName": "lookout-tls", "hosts": ["lookout.example.com"]}]}}},
    "monitoring": {"monitoring": {key: {"enabled": True} for key in
                                  ("serviceMonitor", "podMonitor", "prometheusRule", "grafanaDashboards")}},
    "bundled-off": {**EXTERNAL, "networkPolicy": {"enabled": False}},
    "migration-hooks": {**EXTERNAL, "migrations": {"useHelmHooks": True}},
    "beat-standby": {"beat": {"replicas": 2}},
    "regions": {"regions": ["home", "eu-west", "us-east"],
                "regionWorkers": [{"region": "eu-west", "replicas": 2}, {"region": "us-east"}]},
    "agent-only": {"agent": {"enabled": True, "region": "eu-west",
                             "broker": {"url": "amqps://eu-west:pw@mq.example.com:5671/lookout"},
                             "regionKey": {"value": "region-key"}}},
    "agent-existing-secrets": {"agent": {"enabled": True, "region": "eu-west",
                                         "broker": {"existingSecret": "lookout-eu-broker"},
                                         "regionKey": {"existingSecret": "lookout-eu-key"},
                                         "networkPolicy": {"targetExcept": ["10.0.0.0/8", "fd00::/8"]}},
                               "monitoring": {key: {"enabled": True} for key in
                                              ("serviceMonitor", "podMonitor", "prometheusRule", "grafanaDashboards")}},
}


def require_tool(path: str | Path | None, name: str) -> str:
    """The tool's path; without it the test fails under CI=true and is skipped on a developer's machine."""
    if path and Path(path).exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (pip install -e '.[test]' provides it)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def helm():
    try:
        import helm_python
    except ImportError:
        require_tool(None, "helm-python-sdk (module helm_python)")
    return helm_python


@dataclass(frozen=True)
class Rendered:
    template: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> list[Rendered]:
    """Validate the values against values.schema.json (as `helm install` does), then render every template."""
    helm_python = helm()
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(values or {})
        manifests = chart.render(values=values or {}, name=name, namespace=namespace)
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects.append(Rendered(template, document))
    return objects


def notes(values: dict[str, Any] | None = None) -> str:
    helm_python = helm()
    with helm_python.Chart.load(CHART) as chart:
        manifests = chart.render(values=values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for template, text in manifests.items() if template.endswith("NOTES.txt"))


def of_kind(objects: list[Rendered], kind: str) -> list[Rendered]:
    return [item for item in objects if item.kind == kind]


def one(objects: list[Rendered], kind: str, name: str) -> Rendered:
    matches = [item for item in objects if item.kind == kind and item.name == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {[m.name for m in of_kind(objects, kind)]}"
    return matches[0]


def pod_spec(item: Rendered) -> dict[str, Any] | None:
    body = item.body
    if body["kind"] == "Pod":
        return body["spec"]
    if body["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        return body["spec"]["template"]["spec"]
    return None


def workloads(objects: list[Rendered]) -> list[Rendered]:
    return [item for item in objects if pod_spec(item) is not None]


def is_hook(item: Rendered, kind: str = "") -> bool:
    hook = (item.body["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
    return bool(hook) and kind in hook


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    import base64

    data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_env(container: dict[str, Any], objects: list[Rendered],
                  external_secrets: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """The environment Kubernetes would give this container: envFrom, then env, $(VAR) references expanded.

    ConfigMaps and Secrets come from the rendered objects, or from `external_secrets` for those the chart does
    not render (the keygen hook's Secret, a user's existingSecret). A missing one fails, as the kubelet would.
    """
    config_maps = {item.name: item.body.get("data") or {} for item in of_kind(objects, "ConfigMap")}
    secrets = {item.name: secret_data(item.body) for item in of_kind(objects, "Secret")}
    secrets.update(external_secrets or {})
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), variable["value"])
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            assert ref["name"] in secrets, f"{variable['name']} needs Secret {ref['name']}, which does not exist"
            env[variable["name"]] = secrets[ref["name"]][ref["key"]]
        elif "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            env[variable["name"]] = config_maps[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"unsupported valueFrom in {variable}")
    return env


def named_ports(container: dict[str, Any]) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


def probe_targets(container: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """{probe kind: (container port, path)} for the container's httpGet probes."""
    ports = named_ports(container)
    targets = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        http = (container.get(kind) or {}).get("httpGet")
        if http:
            targets[kind] = (ports[http["port"]], http["path"])
    return targets


def monitor_through_api(base: str, token: str, *, name: str, url: str) -> Callable[[], list[dict[str, Any]]]:
    """Create a 1-s monitor of `url` through the api at `base` with `token`; returns a reader of its results."""
    import requests

    headers = {"Authorization": f"Token {token}"}
    created = requests.post(f"{base}/api/v1/monitors/", headers=headers, timeout=10,
                            json={"name": name, "url": url, "interval": 1})
    assert created.status_code == 201, created.text
    monitor = created.json()["id"]

    def results() -> list[dict[str, Any]]:
        return requests.get(f"{base}/api/v1/results/?monitor={monitor}", headers=headers, timeout=10
                            ).json()["results"]

    return results
