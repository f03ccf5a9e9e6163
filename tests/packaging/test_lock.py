"""The lock (requirements/*.txt, made by ./scripts/lock) is complete, hashed and agrees with pyproject.toml.

pyproject.toml's ranges are the constraints; the lock pins one release of everything in them, with its hashes,
and the images (runtime.txt), the tests and CI (test.txt: the same runtime pins plus the test extra) and the
image build's tools (build.txt) install from it with `pip install --require-hashes`. A dependency added to
pyproject.toml without `./scripts/lock` fails here, not in an image build.
"""

import re
import tomllib
from dataclasses import dataclass

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.chart import REPO

REQUIREMENTS = REPO / "requirements"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = ("runtime", "test", "build", "lock-tools")


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: frozenset[str]


def pins(name: str) -> dict[str, Pin]:
    """{canonical name: Pin} of requirements/<name>.txt."""
    text = (REQUIREMENTS / f"{name}.txt").read_text()
    logical = re.sub(r"\\\n", " ", "\n".join(line.split("#", 1)[0] for line in text.splitlines()))
    found = {}
    for line in filter(None, (line.strip() for line in logical.splitlines())):
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{name}.txt: not a hashed pin: {line[:120]}"
        found[canonicalize_name(match[1])] = Pin(match[2], frozenset(re.findall(r"sha256:[0-9a-f]{64}", match[3])))
    return found


def assert_satisfied(requirements: list[str], locked: dict[str, Pin], where: str) -> None:
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} ({where}) is not in the lock: run ./scripts/lock"
        assert requirement.specifier.contains(locked[name].version, prereleases=True), (
            f"{requirement} ({where}) but the lock pins {locked[name].version}: run ./scripts/lock")


@pytest.mark.parametrize("name", LOCKS)
def test_every_lock_pins_every_package_with_hashes_and_names_its_refresh_command(name):
    assert pins(name), f"{name}.txt pins nothing"
    assert "./scripts/lock" in (REQUIREMENTS / f"{name}.txt").read_text().split("\n\n", 1)[0]


def test_the_runtime_lock_satisfies_pyprojects_dependencies():
    assert_satisfied(PYPROJECT["project"]["dependencies"], pins("runtime"), "project.dependencies")


def test_the_test_lock_is_the_runtime_lock_plus_the_test_extra():
    runtime, test = pins("runtime"), pins("test")
    differing = {name: (pin.version, test.get(name)) for name, pin in runtime.items() if test.get(name) != pin}
    assert not differing, f"the tests must run what the images ship: {differing}"
    assert_satisfied(PYPROJECT["project"]["optional-dependencies"]["test"], test, "the test extra")


def test_the_build_lock_holds_pip_and_pyprojects_build_requirements():
    listed = [line.strip() for line in (REQUIREMENTS / "build.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == ["pip", *PYPROJECT["build-system"]["requires"]], "build.in follows [build-system] requires"
    assert_satisfied(listed, pins("build"), "build.in")


def test_the_lock_tools_are_pinned_to_what_lock_tools_in_asks_for():
    listed = [line.strip() for line in (REQUIREMENTS / "lock-tools.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert any(line.startswith("pip-tools==") for line in listed), "pip-tools itself is pinned"
    assert_satisfied(listed, pins("lock-tools"), "lock-tools.in")
