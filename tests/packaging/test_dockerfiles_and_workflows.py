"""Dockerfiles pass hadolint and follow the image rules; GitHub workflows validate against their JSON schema."""

import re
import subprocess

import pytest

from support.chart import REPO, VENV_BIN, require_tool

DOCKERFILES = sorted((REPO / "services").glob("*/Dockerfile"))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def test_there_is_one_dockerfile_per_process():
    assert [path.parent.name for path in DOCKERFILES] == ["api", "beat", "worker"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = require_tool(VENV_BIN / "hadolint", "hadolint")
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_images_are_multi_stage_slim_non_root_and_exec_their_process(dockerfile):
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and "slim" in text.split("PYTHON_IMAGE=")[1].split()[0]
    final = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", final, re.M), "numeric non-root user"
    assert "COPY --from=builder /opt/lookout /opt/lookout" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final), "no toolchain or installs at the end"
    process = dockerfile.parent.name
    assert f'ENTRYPOINT ["lookout", "{process}"]' in final, "exec form, so signals reach the process"


def test_dockerignore_sends_only_the_package():
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:3] == ["!pyproject.toml", "!README.md", "!src/"]


def test_the_workflows_exist():
    assert [path.name for path in WORKFLOWS] == ["chart.yml", "ci.yml", "images.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflows_validate_against_the_github_schema(workflow):
    check = require_tool(VENV_BIN / "check-jsonschema", "check-jsonschema")
    done = subprocess.run([check, "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ci_runs_the_suite_with_postgres_and_rabbitmq_services():
    import yaml

    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    job = next(iter(ci["jobs"].values()))
    assert {"postgres", "rabbitmq"} <= set(job["services"])
    assert any("./scripts/test" in (step.get("run") or "") for step in job["steps"])
