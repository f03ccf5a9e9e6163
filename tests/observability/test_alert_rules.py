"""Alert rules: `promtool check rules` and `promtool test rules` (every alert firing and not), a runbook each."""

import re
import subprocess

import yaml

from support.dashboards import CHART_RULES, REPO, RULE_TESTS, RULES
from support.prometheus import binary

REQUIRED = {
    "LookoutBeatDown", "LookoutBeatNotTicking",  # beat not ticking (or gone)
    "LookoutScheduleLagHigh",
    "LookoutWorkersSaturated", "LookoutWorkersDown",
    "LookoutProbeFailureRate",
    "LookoutAlertDeliveriesFailing",
    "LookoutApiErrors",
}


def alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_promtool_accepts_the_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout


def test_promtool_unit_tests_pass():
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_both_firing_and_not_firing():
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    firing = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert firing == set(alerts()), "alerts never shown firing"
    assert quiet == set(alerts()), "alerts never shown staying quiet"


def test_the_issue_s_alerts_exist_with_a_severity_and_a_runbook_paragraph():
    runbooks = (REPO / "docs/runbooks.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n\n(.+?)(?=^## |\Z)", runbooks, flags=re.M | re.S))
    assert REQUIRED <= set(alerts())
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert len(sections.get(name, "").split()) >= 40, f"{name}: no runbook paragraph in docs/runbooks.md"
    assert set(sections) == set(alerts()), "runbooks for alerts that do not exist"


def test_the_chart_ships_the_same_rules():
    assert CHART_RULES.read_bytes() == RULES.read_bytes()
    assert not list(CHART_RULES.parent.glob("*.test.yaml")), "the chart wraps every files/rules/*.yaml as rules"
