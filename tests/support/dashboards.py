"""Read Grafana dashboard JSON the way Grafana does: panels (rows included), queries, variables, annotations."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
CHART_DASHBOARDS = REPO / "helm/lookout/files/dashboards"
RULES = REPO / "dashboards/lookout.rules.yaml"
RULE_TESTS = REPO / "dashboards/lookout.rules.test.yaml"
CHART_RULES = REPO / "helm/lookout/files/rules/lookout.rules.yaml"

METRIC_NAME = re.compile(r"\blookout_[a-z0-9_]+")
RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase)\s*\(")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def queries(dashboard: dict) -> Iterator[Query]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield Query(dashboard["title"], panel["title"], target["expr"])
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            yield Query(dashboard["title"], f"annotation {annotation['name']}", annotation["expr"])


def variable_queries(dashboard: dict) -> Iterator[tuple[dict, str]]:
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield variable, query["query"] if isinstance(query, dict) else query


def substitute(expr: str, variables: dict[str, str], *, rate_interval: str, interval: str = "2s") -> str:
    """Fill in template variables as Grafana would ($var and ${var}), built-ins included."""
    values = {"__rate_interval": rate_interval, "__interval": interval, "__range": "1h", **variables}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unfilled variable in {expr}"
    return expr


def range_windows(expr: str) -> list[tuple[str, str]]:
    """(function, window) for every rate(), irate() and increase() in the expression."""
    found = []
    for match in RANGE_FUNCTION.finditer(expr):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[end], 0)
            if depth == 0:
                break
        found += [(match.group(1), window) for window in re.findall(r"\[([^\]]+)\]", expr[match.end():end])]
    return found


def metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def grafana_regex(pattern: str) -> re.Pattern:
    """A Grafana variable regex (/.../ with JavaScript's named groups) as a Python pattern."""
    assert pattern.startswith("/") and pattern.endswith("/"), pattern
    return re.compile(pattern[1:-1].replace("(?<", "(?P<"))
