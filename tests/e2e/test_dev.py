"""`lookout dev` with no PostgreSQL or RabbitMQ configured: it serves the API and probes on schedule."""

import re
import signal
import socket
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

        def results() -> list[dict] | None:
            # A worker writes a light load's results together, up to LOOKOUT_WORKER_WRITE_LINGER_SECONDS later.
            page = requests.get(f"{api}/results/?monitor={monitor_id}", headers=headers, timeout=10).json()
            return page["results"] if len(page["results"]) >= 3 else None

        assert all(r["success"] for r in wait_until(results, timeout=10, what="three results recorded"))
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


def dev_start(tmp_path, *args: str, **env: str) -> tuple[subprocess.Popen, str]:
    """`lookout dev` in tmp_path (its data in tmp_path/.lookout-dev unless args say otherwise) and its token,
    read as soon as the banner appears."""
    log = open(tmp_path / "dev.log", "w+")  # noqa: SIM115
    dev = subprocess.Popen([*LOOKOUT, "dev", *args], env=base_environment(**env), stdout=log,
                           stderr=subprocess.STDOUT, cwd=tmp_path)

    def printed_token() -> str | None:
        assert dev.poll() is None, (tmp_path / "dev.log").read_text()
        match = re.search(r"API token:\s+(\w+)", (tmp_path / "dev.log").read_text())
        return match.group(1) if match else None

    return dev, wait_until(printed_token, timeout=90, interval=0.02, what="lookout dev to print its token")


def dev_stop(dev: subprocess.Popen) -> None:
    dev.send_signal(signal.SIGINT)
    try:
        dev.wait(timeout=30)
    except subprocess.TimeoutExpired:
        dev.kill()
        raise


def test_lookout_dev_prints_its_banner_only_once_the_api_answers(tmp_path):
    port = free_port()
    dev, token = dev_start(tmp_path, "--bind", f"127.0.0.1:{port}", LOOKOUT_METRICS_PORT=str(free_port()))
    try:
        # At once, no waiting: the URL in the banner answers when it is printed.
        response = requests.get(f"http://127.0.0.1:{port}/api/v1/monitors/", timeout=5,
                                headers={"Authorization": f"Token {token}"})
        assert response.status_code == 200, response.text
    finally:
        dev_stop(dev)


def test_lookout_dev_binds_the_worker_and_beat_metrics_ports_to_the_api_host(tmp_path):
    # 127.0.0.2 is loopback too, but a listener bound to it alone does not answer on 127.0.0.1.
    port, metrics = free_port(), free_port()
    dev, _ = dev_start(tmp_path, "--bind", f"127.0.0.2:{port}", LOOKOUT_METRICS_PORT=str(metrics))
    try:
        for metrics_port in (metrics, metrics + 1):  # the worker's, beat's
            wait_until(lambda p=metrics_port: http_ok(f"http://127.0.0.2:{p}/healthz"), timeout=60,
                       what=f"port {metrics_port} on the API's host")
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2)
    finally:
        dev_stop(dev)


def test_lookout_dev_refuses_a_port_in_use_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*LOOKOUT, "dev", "--bind", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")],
                              env=base_environment(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr == f"lookout dev: 127.0.0.1:{port} is already in use (another lookout dev?); stop it or " \
                          "choose another port with --bind HOST:PORT\n"
    assert done.stdout == ""


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:99999", "127.0.0.1:", ":8000"])
def test_lookout_dev_refuses_an_invalid_bind_in_one_line(tmp_path, bind):
    done = subprocess.run([*LOOKOUT, "dev", "--bind", bind, "--data-dir", str(tmp_path / "d")],
                          env=base_environment(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.startswith(f"lookout dev: --bind {bind!r} is not HOST:PORT") and done.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_a_second_user_is_added_to_a_running_lookout_dev_without_any_variable(tmp_path):
    port = free_port()
    dev, _ = dev_start(tmp_path, "--bind", f"127.0.0.1:{port}", LOOKOUT_METRICS_PORT=str(free_port()))
    try:
        # Where `lookout dev` keeps .lookout-dev/, `lookout manage` finds it; elsewhere, `lookout dev manage`.
        found = subprocess.run([*LOOKOUT, "manage", "createapiuser", "bob"], env=base_environment(),
                               capture_output=True, text=True, timeout=60, cwd=tmp_path)
        named = subprocess.run([*LOOKOUT, "dev", "--data-dir", str(tmp_path / ".lookout-dev"), "manage",
                                "createapiuser", "carol"], env=base_environment(), capture_output=True, text=True,
                               timeout=60, cwd="/")
        for done in (found, named):
            assert done.returncode == 0, done.stderr
            response = requests.get(f"http://127.0.0.1:{port}/api/v1/monitors/", timeout=5,
                                    headers={"Authorization": f"Token {done.stdout.strip()}"})
            assert response.status_code == 200, response.text
    finally:
        dev_stop(dev)


def test_lookout_dev_prints_the_same_working_token_after_a_restart(tmp_path):
    # The database keeps only the key's digest: the key itself lives in the data directory, like the password.
    tokens = []
    for _ in range(2):
        port = free_port()
        dev, token = dev_start(tmp_path, "--bind", f"127.0.0.1:{port}", LOOKOUT_METRICS_PORT=str(free_port()))
        try:
            response = requests.get(f"http://127.0.0.1:{port}/api/v1/tokens/", timeout=5,
                                    headers={"Authorization": f"Token {token}"})
            assert response.status_code == 200, response.text
            assert [t["name"] for t in response.json()["results"]] == ["lookout dev"]
            tokens.append(token)
        finally:
            dev_stop(dev)
        (tmp_path / "dev.log").unlink()
    assert tokens[0] == tokens[1] == (tmp_path / ".lookout-dev" / "api_token").read_text().strip()
