"""Regions in the chart: LOOKOUT_REGIONS everywhere at home, in-cluster region workers, and the agent-only install.

An agent-only install renders the agent and nothing of the home side (no database, no keys, no api or beat), and
its NetworkPolicy lets it reach DNS, the broker and the targets only. Validity (kubernetes-validate, strict lint)
comes from the value sets "regions", "agent-only" and "agent-existing-secrets" in test_chart_render.py. The agent
is not run under podman here: its command is new and tested with the agent itself.
"""

import pytest

from support.chart import VALUE_SETS, container_env, helm, of_kind, one, pod_spec, render, secret_data

AGENT = VALUE_SETS["agent-only"]


def main_container(item) -> dict:
    return pod_spec(item)["containers"][0]


GENERATED = {"lookout-generated": {key: "x" for key in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY",
                                                         "LOOKOUT_ENCRYPTION_KEY", "LOOKOUT_METRICS_TOKEN")}}


def test_lookout_regions_reaches_api_worker_beat_and_the_migrations():
    objects = render({"regions": ["home", "eu-west", "us-east"]})
    for item in [one(objects, "Deployment", f"lookout-{name}") for name in ("api", "worker", "beat")] + \
            [item for item in of_kind(objects, "Job") if "migrate" in item.name]:
        assert container_env(main_container(item), objects, GENERATED)["LOOKOUT_REGIONS"] == \
            "home,eu-west,us-east", item.name


def test_one_region_by_default_and_the_home_worker_consumes_the_results():
    objects = render({})
    assert one(objects, "ConfigMap", "lookout-config").body["data"]["LOOKOUT_REGIONS"] == "home"
    worker = main_container(one(objects, "Deployment", "lookout-worker"))
    assert worker["args"] == ["--queues", "probes,results,alerts,celery"]
    assert not [item for item in of_kind(objects, "Deployment") if item.name.startswith("lookout-worker-")]


def test_region_workers_consume_only_their_region():
    objects = render(VALUE_SETS["regions"])
    eu, us = one(objects, "Deployment", "lookout-worker-eu-west"), one(objects, "Deployment", "lookout-worker-us-east")
    assert main_container(eu)["command"] + main_container(eu)["args"] == ["lookout", "worker", "--region", "eu-west"]
    assert main_container(us)["args"] == ["--region", "us-east"]
    assert eu.body["spec"]["replicas"] == 2 and us.body["spec"]["replicas"] == 1
    # Their own pods only: the home worker's PDB, policy and selector must not count them.
    home_selector = one(objects, "Deployment", "lookout-worker").body["spec"]["selector"]["matchLabels"]
    assert eu.body["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "region-worker"
    assert eu.body["spec"]["selector"]["matchLabels"]["lookout/region"] == "eu-west"
    assert home_selector["app.kubernetes.io/component"] == "worker"
    assert {"lookout-worker-eu-west", "lookout-worker-us-east"} <= \
        {item.name for item in of_kind(objects, "PodDisruptionBudget")}
    # A region worker is a home-side process: the database, the keys, and the migrations first.
    env = container_env(main_container(eu), objects, GENERATED)
    assert env["LOOKOUT_REGIONS"] == "home,eu-west,us-east" and env["LOOKOUT_WORKER_CONCURRENCY"] == "50"
    assert "migrate --check" in pod_spec(eu)["initContainers"][0]["args"][0]


def test_region_workers_can_reach_the_bundled_broker_and_database():
    objects = render(VALUE_SETS["regions"])
    for name in ("lookout-rabbitmq", "lookout-postgresql"):
        peer = one(objects, "NetworkPolicy", name).body["spec"]["ingress"][0]["from"][0]["podSelector"]
        assert "region-worker" in peer["matchExpressions"][0]["values"]


@pytest.mark.parametrize("values, message", [
    ({"regionWorkers": [{"region": "eu-west"}]}, "not in regions"),
    ({"regions": ["home", "eu-west"], "regionWorkers": [{"region": "home"}]}, "is the home region"),
    ({"agent": {"enabled": True, "region": "eu-west", "regionKey": {"value": "k"}}}, "agent.broker"),
    ({"agent": {"enabled": True, "region": "eu-west", "broker": {"url": "amqps://x@y/z"}}}, "agent.regionKey"),
])
def test_what_cannot_work_fails_rendering_with_a_clear_message(values, message):
    with pytest.raises(helm().HelmRenderError, match=message):
        render(values)


@pytest.mark.parametrize("values", [
    {"agent": {"enabled": True}},
    {"agent": {"enabled": True, "region": ""}},
    {"agent": {"enabled": True, "region": "EU-West"}},
    {"agent": {"enabled": True, "region": "eu_west"}},
    {"agent": {"enabled": True, "region": "a" * 33}},
    {"regions": []},
    {"regions": ["home", "home"]},
    {"regions": ["home", "1eu"]},
    {"regionWorkers": [{"replicas": 2}]},
    {"agent": {"broker": {"password": "x"}}},
])
def test_the_schema_refuses_an_agent_without_a_region_and_bad_region_names(values):
    with pytest.raises(helm().HelmValuesError):
        render(values)


def test_an_agent_only_install_renders_the_agent_and_nothing_else():
    objects = render(AGENT, name="lookout-eu")
    assert {(item.kind, item.name) for item in objects} == {
        ("Deployment", "lookout-eu-agent"), ("Secret", "lookout-eu-agent"), ("ServiceAccount", "lookout-eu"),
        ("NetworkPolicy", "lookout-eu-agent"), ("PodDisruptionBudget", "lookout-eu-agent")}


def test_an_agent_only_install_with_existing_secrets_and_monitoring_renders_no_secret_and_no_dashboards():
    objects = render(VALUE_SETS["agent-existing-secrets"])
    assert {item.kind for item in objects} == \
        {"Deployment", "ServiceAccount", "NetworkPolicy", "PodDisruptionBudget", "PodMonitor"}
    monitor = one(objects, "PodMonitor", "lookout-agent").body["spec"]
    assert monitor["selector"]["matchLabels"]["app.kubernetes.io/component"] == "agent"
    env = main_container(one(objects, "Deployment", "lookout-agent"))["env"]
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in env if "valueFrom" in v}
    assert refs == {"CELERY_BROKER_URL": {"name": "lookout-eu-broker", "key": "CELERY_BROKER_URL"},
                    "LOOKOUT_REGION_KEY": {"name": "lookout-eu-key", "key": "LOOKOUT_REGION_KEY"}}


def test_the_agent_has_the_broker_and_its_key_and_nothing_of_the_home_side():
    objects = render(AGENT)
    secret = secret_data(one(objects, "Secret", "lookout-agent").body)
    assert secret == {"CELERY_BROKER_URL": "amqps://eu-west:pw@mq.example.com:5671/lookout",
                      "LOOKOUT_REGION_KEY": "region-key"}
    assert not [item for item in of_kind(objects, "Secret") if "DATABASE_URL" in secret_data(item.body)]
    agent = one(objects, "Deployment", "lookout-agent")
    container = main_container(agent)
    assert container["command"] + container["args"] == ["lookout", "agent", "--region", "eu-west"]
    assert container["image"] == "ghcr.io/lookout/lookout-worker:0.1.0"
    assert "envFrom" not in container and not pod_spec(agent).get("initContainers")
    env = container_env(container, objects)
    assert env == {"CELERY_BROKER_URL": "amqps://eu-west:pw@mq.example.com:5671/lookout",
                   "LOOKOUT_REGION_KEY": "region-key", "LOOKOUT_WORKER_CONCURRENCY": "50",
                   "LOOKOUT_METRICS_PORT": "9542", "LOOKOUT_ALLOW_PRIVATE_TARGETS": "0",
                   "LOOKOUT_TARGET_ALLOWLIST": "", "LOOKOUT_LOG_FORMAT": "json"}
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {"metrics": 9542}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "metrics"}


def test_a_new_broker_url_rolls_the_agent():
    def checksum(url):
        values = {"agent": {**AGENT["agent"], "broker": {"url": url}}}
        return one(render(values), "Deployment", "lookout-agent").body["spec"]["template"]["metadata"][
            "annotations"]["checksum/connections"]
    assert checksum("amqps://a@mq/lookout") != checksum("amqps://b@mq/lookout")


def test_the_agent_network_policy_allows_dns_the_broker_and_the_targets_only():
    policy = one(render(AGENT), "NetworkPolicy", "lookout-agent").body["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": "metrics"}], "from": [{"namespaceSelector": {}}]}]
    dns, broker, targets = policy["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert broker == {"ports": [{"port": 5671, "protocol": "TCP"}, {"port": 5672, "protocol": "TCP"}]}
    assert targets == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}


def test_the_agent_network_policy_narrows_to_the_broker_and_keeps_the_cluster_out():
    values = {"agent": {**AGENT["agent"], "networkPolicy": {
        "brokerPorts": [5671], "brokerTo": [{"ipBlock": {"cidr": "203.0.113.10/32"}}],
        "targetExcept": ["10.0.0.0/8", "172.16.0.0/12", "fd00::/8"]}},
        "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}}
    policy = one(render(values), "NetworkPolicy", "lookout-agent").body["spec"]
    _, broker, targets = policy["egress"]
    assert broker == {"ports": [{"port": 5671, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "203.0.113.10/32"}}]}
    assert targets["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12"]}},
                             {"ipBlock": {"cidr": "::/0", "except": ["fd00::/8"]}}]
    assert policy["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]


def test_the_agent_notes_name_the_region_and_the_key_command():
    from support.chart import notes

    text = notes(AGENT)
    assert "probes.eu-west" in text and "lookout manage regionkey eu-west" in text
    assert "createapiuser" not in text
