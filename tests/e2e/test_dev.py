"""`lookout dev` with no PostgreSQL or RabbitMQ configured: it serves the API and probes on schedule."""

import re
import signal
import subprocess
import time

import pytest
import requests

from support.stack import LOOKOUT, base_environment, free_port, http_ok, wait_until

pytestmark = pytest.mark.e2e


def test_lookout_dev_serves_the_api_and_probes_a_monitor_on_its_schedule(tmp_path, http_target):
    port = free_port()
    # No LOOKOUT_ALLOW_PRIVATE_TARGETS: `lookout dev` lets a local instance watch local servers by default.
    env = base_environment(LOOKOUT_MIN_INTERVAL="1", LOOKOUT_METRICS_PORT=str(free_port()))
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115
    dev = subprocess.Popen([*LOOKOUT, "dev", "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")],
                           env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def printed_token() -> str | None:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            match = re.search(r"API token:\s+(\w+)", (tmp_path / "dev.log").read_text())
            return match.group(1) if match else None

        token = wait_until(printed_token, timeout=90, what="lookout dev to print its token")
        assert f"http://127.0.0.1:{port}/" in (tmp_path / "dev.log").read_text()
        headers = {"Authorization": f"Token {token}"}
        api = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), timeout=60, what="the API")

        created = requests.post(f"{api}/monitors/", headers=headers, timeout=10,
                                json={"name": "dev", "url": http_target.url, "interval": 2})
        assert created.status_code == 201, created.text
        monitor_id = created.json()["id"]
        wait_until(lambda: len(http_target.hits) >= 3, timeout=60, what="three scheduled probes")
        times = http_target.hit_times()[:3]
        assert 1.5 < times[2] - times[1] < 2.6
        results = requests.get(f"{api}/results/?monitor={monitor_id}", headers=headers, timeout=10).json()
        assert len(results["results"]) >= 3 and all(r["success"] for r in results["results"])
        assert (tmp_path / "data" / "lookout.sqlite3").exists()
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            code = dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
    assert code == 0, (tmp_path / "dev.log").read_text()
    time.sleep(0.5)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
