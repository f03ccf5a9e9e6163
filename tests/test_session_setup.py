"""What the root conftest promises: the probe engine's tests run alone, with no Django and no services; any
other test needs PostgreSQL and RabbitMQ, and a run without them fails instead of skipping."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.stack import base_environment, free_port

TESTS = Path(__file__).parent
# A plugin of the child run: which modules it imported by its end.
MODULES_REPORT = """
import json, os, sys

def pytest_sessionfinish(session):
    with open(os.environ["MODULES_REPORT"], "w") as report:
        json.dump(sorted(sys.modules), report)
"""


def child_pytest(*args: str, tmp_path: Path, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    """pytest in a fresh process with nothing listening on the services' ports (and none of this run's settings),
    but for the services `env` names."""
    (tmp_path / "modules_report.py").write_text(MODULES_REPORT)
    closed = {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/lookout_unreachable",
              "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "modules_report", *args],
        env={**closed, **env, "PYTHONPATH": str(tmp_path), "MODULES_REPORT": str(tmp_path / "modules.json")},
        cwd=TESTS.parent, capture_output=True, text=True, timeout=timeout)


def test_the_engine_tests_pass_with_no_django_and_neither_postgresql_nor_rabbitmq_reachable(tmp_path):
    done = child_pytest("-q", str(TESTS / "probes" / "engine"), tmp_path=tmp_path, timeout=600,
                        env=base_environment())

    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), summary
    assert not re.search(r"skipped|deselected|xfail|xpass|error|failed", summary), summary
    imported = (tmp_path / "modules.json").read_text()
    assert '"django' not in imported and '"rest_framework' not in imported


@pytest.mark.parametrize("ci", [None, "true"], ids=["locally", "on CI"])
@pytest.mark.parametrize("missing", ["PostgreSQL", "RabbitMQ"])
def test_a_run_with_any_django_test_fails_without_postgresql_or_rabbitmq(tmp_path, missing, ci):
    # The real service for the one that is not missing.
    present = {"PostgreSQL": {"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"},
               "RabbitMQ": {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres"}}[missing]
    env = base_environment(**present)
    env.pop("CI", None)
    if ci:
        env["CI"] = ci
    done = child_pytest("--collect-only", "-q", str(TESTS / "probes" / "engine"), str(TESTS / "monitors"),
                        tmp_path=tmp_path, timeout=120, env=env)

    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{missing} not reachable" in done.stderr
    assert "skipped" not in done.stdout + done.stderr
