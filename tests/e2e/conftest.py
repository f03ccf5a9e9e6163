"""Fixtures of the end-to-end tests: real `lookout` processes (support.stack), one stack per module.

The HTTP target probes hit (`http_target`) and the webhook receiver (`webhook`) come from the root conftest.
"""

import uuid

import pytest

from support.http_target import HttpTarget
from support.stack import LookoutStack


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    """Environment the module's stack adds to every process; a module overrides it (its SMTP server, timings)."""
    return {}


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, stack_env):
    """api, worker and beat on a database and a vhost of the module's own, up for all of its tests."""
    name = f"lookout_{request.module.__name__.removeprefix('test_')}_{uuid.uuid4().hex[:8]}"
    with LookoutStack(tmp_path_factory.mktemp("stack"), name=name, env=stack_env) as stack:
        yield stack.up()


@pytest.fixture
def report(capsys):
    """Prints a measurement into the test's output, past pytest's capture."""
    def measurement(line: str) -> None:
        with capsys.disabled():
            print(f"\n[e2e measurement] {line}")

    return measurement


@pytest.fixture
def targets():
    """Makes HTTP targets (`targets(delay=...)`: each answers after `delay` seconds), closed at the test's end."""
    made: list[HttpTarget] = []

    def target(delay: float = 0.0) -> HttpTarget:
        made.append(HttpTarget())
        made[-1].set(delay=delay)
        return made[-1]

    yield target
    for target in made:
        target.close()
