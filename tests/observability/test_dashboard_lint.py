"""Dashboard lint: what Grafana needs to import our JSON anywhere, and what keeps the queries honest.

(That every query returns data, and every metric it names exists, is proven against a real Prometheus in
test_prometheus_scrape.py.)
"""

import json

import pytest

from support.dashboards import (
    CHART_DASHBOARDS,
    DASHBOARDS,
    load,
    metric_names,
    panels,
    queries,
    range_windows,
    variable_queries,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
OVERVIEW_PANELS = {
    "Monitors up", "Monitors down", "Monitors paused", "Probe rate by type", "Probe failure rate",
    "Schedule lag p50 / p99", "Worker throughput", "Worker saturation", "Alert deliveries",
    "API latency p50 / p95 / p99", "API errors (5xx share)",
}
MONITOR_PANELS = {"Status", "Uptime", "Latency p50 / p95 / p99", "Phase breakdown", "TLS certificate: days left",
                  "Up by region"}


def by_title(title: str) -> dict:
    return next(load(path) for path in DASHBOARDS if load(path)["title"] == title)


@pytest.fixture(params=DASHBOARDS, ids=lambda path: path.name)
def dashboard(request) -> dict:
    return load(request.param)


def test_the_two_dashboards_exist_with_the_panels_the_issue_lists():
    assert sorted(load(path)["title"] for path in DASHBOARDS) == ["Lookout / Monitor", "Lookout / Overview"]
    assert OVERVIEW_PANELS <= {panel["title"] for panel in panels(by_title("Lookout / Overview"))}
    assert MONITOR_PANELS <= {panel["title"] for panel in panels(by_title("Lookout / Monitor"))}
    uptime = next(panel for panel in panels(by_title("Lookout / Monitor")) if panel["title"] == "Uptime")
    assert [target["legendFormat"] for target in uptime["targets"]] == ["1h", "24h", "7d"]
    phases = next(panel for panel in panels(by_title("Lookout / Monitor")) if panel["title"] == "Phase breakdown")
    assert phases["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"


def test_schema_version_uid_and_a_datasource_variable(dashboard):
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_query_variable_and_annotation_uses_the_datasource_variable(dashboard):
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable, _ in variable_queries(dashboard):
        assert variable["datasource"] == DATASOURCE, variable["name"]
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            assert annotation["datasource"] == DATASOURCE, annotation["name"]


def test_no_datasource_uid_is_hard_coded(dashboard):
    def uids(node):
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                yield node["datasource"].get("uid")
            for value in node.values():
                yield from uids(value)
        elif isinstance(node, list):
            for value in node:
                yield from uids(value)

    assert set(uids(dashboard)) <= {"${datasource}", "-- Grafana --"}  # the latter: Grafana's built-in annotations


def test_panel_ids_are_unique_and_panels_do_not_overlap(dashboard):
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_rates_use_rate_interval():
    windows = [(query.panel, function, window) for path in DASHBOARDS for query in queries(load(path))
               for function, window in range_windows(query.expr)]
    assert len(windows) > 10
    assert [entry for entry in windows if entry[2] != "$__rate_interval"] == []


def test_every_query_names_a_lookout_metric_and_filters_by_namespace(dashboard):
    for query in queries(dashboard):
        assert metric_names(query.expr), query
        assert 'namespace=~"$namespace"' in query.expr, query


def test_the_monitor_dashboard_annotates_status_changes_from_the_status_series():
    annotations = [a for a in by_title("Lookout / Monitor")["annotations"]["list"] if a.get("expr")]
    assert len(annotations) == 1
    assert "lookout_monitor_status" in annotations[0]["expr"] and "changes(" in annotations[0]["expr"]
    assert annotations[0]["titleFormat"] == "{{status}}"


def test_the_chart_ships_the_same_dashboards():
    chart = {path.name: path.read_bytes() for path in CHART_DASHBOARDS.glob("*.json")}
    assert chart == {path.name: path.read_bytes() for path in DASHBOARDS}
    for body in chart.values():
        json.loads(body)
