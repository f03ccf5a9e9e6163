"""A real `lookout api` (gunicorn) on a database and broker vhost of its own, and users of it (regular or staff)
(support.stack's processes and environment). For tests that drive the API from outside, as clients do: the schema
conformance run and the generated client."""

import subprocess
import textwrap
from dataclasses import dataclass, field
from typing import Any

import requests

from support.stack import LOOKOUT, LookoutStack, wait_until


@dataclass
class ApiUser:
    """A user of the running API, with its token and the objects it owns there (by kind, as in the paths)."""

    base_url: str
    token: str
    objects: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
             **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base_url}/api/v1/{path.lstrip('/')}",
                                headers={**self.headers, **(headers or {})}, timeout=30, **kwargs)

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.call("POST", f"{kind}/", json=body)
        assert response.status_code == 201, f"POST {kind}/: {response.status_code} {response.text[:500]}"
        created: dict[str, Any] = response.json()
        return created


def api_start(stack: LookoutStack, **env: str) -> None:
    """`lookout migrate`, then `lookout api` alone (no worker or beat: nothing is probed)."""
    stack.run("migrate")
    stack.start("api", "api", "--bind", f"127.0.0.1:{stack.api_port}", **env)
    wait_until(lambda: stack._ok(stack.api_port, "/readyz"), timeout=60, what="the API's /readyz")


def api_user(stack: LookoutStack, username: str, *, staff: bool = False) -> ApiUser:
    token = stack.run("manage", "createapiuser", username, *(["--superuser"] if staff else [])).strip()
    return ApiUser(base_url=stack.url, token=token)


def stack_shell(stack: LookoutStack, code: str) -> str:
    """Python run by `lookout manage shell` against the stack's database: what a worker or an operator would do."""
    done = subprocess.run([*LOOKOUT, "manage", "shell", "-c", textwrap.dedent(code)], env=stack.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"lookout manage shell failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def failures_record(stack: LookoutStack, *, monitor_id: int, count: int) -> None:
    """`count` failed probes of the monitor recorded through the probes' service, as a worker records them: enough
    of them open an incident (and alert the monitor's channels)."""
    stack_shell(stack, f"""
        from datetime import timedelta
        from django.utils import timezone
        from lookout.probes.results import ProbeRecord, probe_result_record
        now = timezone.now()
        for n in range({count}):
            probe_result_record(monitor_id={monitor_id}, record=ProbeRecord(
                checked_at=now - timedelta(seconds={count} - n), success=False, status_code=503,
                response_time_ms=12.5, error="HTTP 503", task_id=f"seeded-{{n}}", phases={{"connect": 1.5}}))
    """)

