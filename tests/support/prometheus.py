"""A real Prometheus server (Debian package `prometheus`) scraping real Lookout processes, for the tests.

It runs the packaged binary directly: a temporary configuration and TSDB, a loopback port, bearer-token scrapes,
a short scrape interval. Targets get the `container` and `namespace` labels the Prometheus Operator would set,
so the chart's rules and dashboards apply unchanged.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from support.stack import free_port, wait_until

NAMESPACE = "lookout-test"


def binary(name: str) -> str:
    """The path of `prometheus` or `promtool`: a test fails without it on CI, and is skipped elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: install the Debian package `prometheus` (./scripts/test does so when it can)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


class PrometheusServer:
    def __init__(self, workdir: Path, *, targets: dict[str, str], token: str, rule_files: tuple[Path, ...] = (),
                 scrape_interval: str = "1s") -> None:
        """`targets`: container name (api, worker, beat) -> host:port of its /metrics."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "token").write_text(token)
        static_configs = "".join(
            f"      - targets: ['{address}']\n        labels: {{container: {name}, namespace: {NAMESPACE}}}\n"
            for name, address in targets.items())
        rules = "".join(f"  - {path}\n" for path in rule_files)
        (workdir / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {scrape_interval}\n  scrape_timeout: {scrape_interval}\n"
            f"  evaluation_interval: {scrape_interval}\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + "scrape_configs:\n  - job_name: lookout\n"
            f"    authorization: {{type: Bearer, credentials_file: {workdir / 'token'}}}\n"
            f"    static_configs:\n{static_configs}")
        self.process: subprocess.Popen | None = None

    def start(self) -> "PrometheusServer":
        log = open(self.workdir / "prometheus.log", "w")  # noqa: SIM115 (kept open for the process's life)
        self.process = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=30, what="Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-5000:]

    def api(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The value of a one-series instant query; None while it has no result."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, *, seconds: float, step: float = 2.0) -> list[dict]:
        end = time.time()
        return self.api("query_range", query=expr, start=end - seconds, end=end, step=step)["result"]

    def metric_names(self) -> set[str]:
        return set(self.api("label/__name__/values"))

    def targets(self) -> list[dict]:
        return self.api("targets")["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
