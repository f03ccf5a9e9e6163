"""k8s/: the kustomize manifests are the chart's (fresh), build with `kubectl kustomize`, and validate strictly."""

import importlib.util
import subprocess

import pytest
import yaml
from test_chart_render import kubernetes_validate_all

from support.chart import REPO, VENV_BIN, require_tool

OVERLAYS = ("base", "overlays/dev", "overlays/production")


def kustomize(overlay: str) -> list[dict]:
    kubectl = require_tool(VENV_BIN / "kubectl", "kubectl")
    done = subprocess.run([kubectl, "kustomize", str(REPO / "k8s" / overlay)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_the_generated_manifests_match_the_chart():
    spec = importlib.util.spec_from_file_location("k8s_generate", REPO / "k8s" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    stale = [str(path.relative_to(REPO)) for path, text in generate.files().items()
             if not path.exists() or path.read_text() != text]
    assert not stale, f"run `.venv/bin/python k8s/generate.py`: {stale} differ from the chart"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_kustomized_object_is_valid(overlay):
    documents = kustomize(overlay)
    assert documents
    assert kubernetes_validate_all(documents) == []


def test_dev_bundles_the_services_and_production_uses_external_ones():
    def kinds(documents):
        return {(d["kind"], d["metadata"]["name"]) for d in documents}

    dev, production = kustomize("overlays/dev"), kustomize("overlays/production")
    assert {("StatefulSet", "lookout-postgresql"), ("StatefulSet", "lookout-rabbitmq")} <= kinds(dev)
    assert not [d for d in production if d["kind"] in ("StatefulSet", "Secret")]
    assert {("HorizontalPodAutoscaler", "lookout-api"), ("HorizontalPodAutoscaler", "lookout-worker")} <= \
        kinds(production)
    assert {name for kind, name in kinds(production) if kind == "PodDisruptionBudget"} == \
        {"lookout-api", "lookout-worker", "lookout-beat"}
    deployments = {d["metadata"]["name"]: d for d in production if d["kind"] == "Deployment"}
    assert "replicas" not in deployments["lookout-api"]["spec"] and deployments["lookout-beat"]["spec"]["replicas"] == 1
    assert all(d["metadata"].get("namespace") == "lookout" for d in production)


def test_dev_secrets_are_wired_to_what_the_workloads_reference():
    documents = kustomize("overlays/dev")
    secrets = {d["metadata"]["name"] for d in documents if d["kind"] == "Secret"}
    for document in documents:
        if document["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{document['metadata']['name']} needs Secret {ref['name']}"
