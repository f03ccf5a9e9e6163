"""Keys that never change: no render generates a key, and the key generator creates them once, in the cluster.

The generator is the chart's own script, taken from the rendered hook ConfigMap and run against a Kubernetes
API stand-in, the way the hook Job runs it.
"""

import json
import subprocess
import sys

import pytest

from support.chart import CHART, VALUE_SETS, of_kind, one, render, secret_data
from support.fake_kubernetes import FakeKubernetes


def test_no_template_generates_anything_at_render_time():
    for template in (CHART / "templates").rglob("*"):
        if template.is_file():
            text = template.read_text()
            for function in ("randAlphaNum", "randAlpha", "randNumeric", "randAscii", "randBytes", "uuidv4",
                             "genPrivateKey", "genCA", "lookup", "now"):
                assert f"{function} " not in text and f"({function}" not in text, f"{template.name} uses {function}"


@pytest.mark.parametrize("value_set", ["defaults", "external-urls", "external-existing-secrets"])
def test_two_renders_are_identical_secrets_included(value_set):
    first, second = render(VALUE_SETS[value_set]), render(VALUE_SETS[value_set])
    assert [item.body for item in first] == [item.body for item in second]
    assert [secret_data(item.body) for item in of_kind(first, "Secret")] == \
        [secret_data(item.body) for item in of_kind(second, "Secret")]


def test_existing_secrets_replace_the_generator_entirely():
    objects = render(VALUE_SETS["external-existing-secrets"])
    assert not [item for item in objects if "keygen" in item.name]
    api = one(objects, "Deployment", "lookout-api").body["spec"]["template"]["spec"]["containers"][0]
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"]["name"] for v in api["env"] if "valueFrom" in v}
    assert refs == {"DATABASE_URL": "lookout-database", "CELERY_BROKER_URL": "lookout-broker",
                    "SECRET_KEY": "lookout-keys", "LOOKOUT_ENCRYPTION_KEY": "lookout-keys",
                    "LOOKOUT_METRICS_TOKEN": "lookout-keys"}


def keygen_run(fake: FakeKubernetes, values: dict, workdir) -> str:
    """Run the rendered hook Job's script on the rendered spec, as the Job would."""
    config = one(render(values), "ConfigMap", "lookout-keygen").body["data"]
    (workdir / "keygen.py").write_text(config["keygen.py"])
    (workdir / "keys.json").write_text(config["keys.json"])
    done = subprocess.run([sys.executable, str(workdir / "keygen.py"), str(workdir / "keys.json"),
                           "--serviceaccount", str(fake.serviceaccount)],
                          env=fake.environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def fake_kubernetes(tmp_path):
    fake = FakeKubernetes(tmp_path)
    yield fake
    fake.close()


def test_the_generator_creates_keys_once_and_never_changes_them(fake_kubernetes, tmp_path):
    assert "created Secret lookout-generated" in keygen_run(fake_kubernetes, {}, tmp_path)
    first = fake_kubernetes.data("lookout-generated")
    assert len(first["SECRET_KEY"]) >= 50
    assert first["DATABASE_URL"] == (f"postgres://lookout:{first['postgresql-password']}"
                                     "@lookout-postgresql.lookout.svc:5432/lookout")
    assert first["CELERY_BROKER_URL"].startswith(f"amqp://lookout:{first['rabbitmq-password']}@lookout-rabbitmq.")

    assert "nothing changed" in keygen_run(fake_kubernetes, {}, tmp_path)  # an upgrade
    assert fake_kubernetes.data("lookout-generated") == first


def test_the_generator_adds_missing_keys_and_keeps_the_others(fake_kubernetes, tmp_path):
    keygen_run(fake_kubernetes, {"rabbitmq": {"enabled": False}, "broker": {"url": "amqp://x@y/z"}}, tmp_path)
    before = fake_kubernetes.data("lookout-generated")
    assert "rabbitmq-password" not in before
    assert "added" in keygen_run(fake_kubernetes, {}, tmp_path)  # rabbitmq switched on later
    after = fake_kubernetes.data("lookout-generated")
    assert {key: after[key] for key in before} == before and "rabbitmq-password" in after


def test_the_generated_secret_is_labelled_but_not_owned_by_helm(fake_kubernetes, tmp_path):
    keygen_run(fake_kubernetes, {}, tmp_path)
    labels = fake_kubernetes.secrets["lookout-generated"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "lookout" and labels["app.kubernetes.io/managed-by"] != "Helm"


def test_the_generator_may_touch_only_its_own_secret():
    role = one(render({}), "Role", "lookout-keygen").body
    scoped = [rule for rule in role["rules"] if "resourceNames" in rule]
    assert scoped == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["lookout-generated"],
                       "verbs": ["get", "patch"]}]
    assert json.dumps(role["rules"]).count('"secrets"') == 2
