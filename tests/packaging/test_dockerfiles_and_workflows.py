"""Dockerfiles pass hadolint and follow the image rules; GitHub workflows validate against their JSON schema.

One build (services/Dockerfile) is shared by the three images; each process's home (services/<process>/Dockerfile)
adds only its own lines on top of it.
"""

import re
import subprocess

import pytest

from support.chart import REPO, VENV_BIN, require_tool

SHARED = REPO / "services" / "Dockerfile"
PROCESS_DOCKERFILES = sorted((REPO / "services").glob("*/Dockerfile"))
DOCKERFILES = [SHARED, *PROCESS_DOCKERFILES]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
EXPOSED = {"api": "8000", "worker": "9540", "beat": "9541"}


def _name(path):
    return path.parent.name if path != SHARED else "shared"


def _stages(text: str) -> dict[str, str]:
    """{stage name: its instructions} of a multi-stage Dockerfile."""
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    return {part.split("\n", 1)[0].split(" AS ")[-1].strip(): part for part in parts}


def test_there_is_one_shared_build_and_one_dockerfile_per_process():
    assert SHARED.exists()
    assert [path.parent.name for path in PROCESS_DOCKERFILES] == ["api", "beat", "worker"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_name)
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = require_tool(VENV_BIN / "hadolint", "hadolint")
    done = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_shared_build_installs_only_the_lock_with_hashes_and_ends_slim_and_non_root():
    text = SHARED.read_text()
    assert "slim" in text.split("ARG PYTHON_IMAGE=")[1].split()[0]
    stages = _stages(text)
    assert list(stages) == ["build", "user", "runtime"], "runtime is the last stage: the default target"
    assert all(body.startswith("${PYTHON_IMAGE} AS") for body in stages.values()), "one base image, an argument"
    build = stages["build"]
    installs = re.findall(r"pip (?:--python \S+ )?install ([^\n\\&]*)", build)
    assert installs == ["--require-hashes -r requirements/build.txt ",
                        "--require-hashes -r requirements/runtime.txt",
                        "--no-deps wheels/lookout-*.whl"], installs
    # The lock's layer comes before the source: a change to src/ does not reinstall the dependencies.
    assert build.index("requirements/runtime.txt") < build.index("COPY src")
    runtime = stages["runtime"]
    assert re.search(r"^USER 10001:10001$", runtime, re.M), "numeric non-root user"
    assert "COPY --from=build /opt/lookout /opt/lookout" in runtime
    assert "HOME=/tmp" in runtime and "PYTHONDONTWRITEBYTECODE=1" in runtime, "read-only root friendly"
    assert not re.search(r"^RUN ", runtime, re.M), "the image runs nothing at build time: no installs, no tools"
    assert "ENTRYPOINT" not in runtime and "EXPOSE" not in runtime, "those belong to each process's Dockerfile"


@pytest.mark.parametrize("dockerfile", PROCESS_DOCKERFILES, ids=_name)
def test_each_process_image_is_the_shared_build_plus_its_exec_form_entrypoint(dockerfile):
    text = dockerfile.read_text()
    assert re.findall(r"^FROM (.+)$", text, re.M) == ["${LOOKOUT_RUNTIME}"], "one stage, on the shared build"
    assert "ARG LOOKOUT_RUNTIME=lookout-runtime" in text
    assert not re.search(r"^(RUN|COPY|ADD|USER) ", text, re.M), "nothing but the process's own lines"
    process = dockerfile.parent.name
    assert re.search(rf'^ENTRYPOINT \["lookout", "{process}"\]$', text, re.M), "exec form, so signals reach it"
    assert re.search(rf"^EXPOSE {EXPOSED[process]}$", text, re.M)
    assert re.search(r"^CMD \[.*\]$", text, re.M), "exec form"


def test_dockerignore_sends_only_the_package_and_its_lock():
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:][:5] == ["!pyproject.toml", "!README.md", "!src/",
                                                  "!requirements/runtime.txt", "!requirements/build.txt"]


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
