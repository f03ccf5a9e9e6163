"""`lookout dev`: API, worker and beat on embedded SQLite (WAL) and an SQLite-backed broker.

Everything lives in one data directory; nothing but this machine's Python is needed. Every listener (the API, the
worker's and beat's metrics ports) is bound to the API's host: loopback unless `--bind` says otherwise.
"""

import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lookout.accounts.keys import key_generate

DEV_USER = "admin"
DEV_CONCURRENCY = "10"
DEV_BIND = "127.0.0.1:8000"
DEV_DATA_DIR = ".lookout-dev"
API_START_SECONDS = 90


class DevRefused(SystemExit):
    """A one-line reason why `lookout dev` cannot start (printed without a traceback)."""


def bind_parse(bind: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) -> (host, port)."""
    host, colon, port = bind.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DevRefused(f"lookout dev: --bind {bind!r} is not HOST:PORT with a port from 1 to 65535 "
                         f"(e.g. {DEV_BIND})")
    return host, int(port)


def bind_check(bind: str) -> tuple[str, int]:
    """Refuse a --bind this machine cannot listen on (port taken, unknown host) before anything starts."""
    host, port = bind_parse(bind)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no conflict
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DevRefused(f"lookout dev: {bind} is already in use (another lookout dev?); stop it or choose "
                             "another port with --bind HOST:PORT") from None
        raise DevRefused(f"lookout dev: cannot listen on {bind}: {exc.strerror or exc}") from None
    return host, port


def dev_data_dir_find(directory: Path) -> Path | None:
    """The `lookout dev` data directory created in `directory`, if there is one."""
    data_dir = directory / DEV_DATA_DIR
    return data_dir if (data_dir / "lookout.sqlite3").exists() else None


def _secret(path: Path, length: int = 50, *, new: str | None = None) -> str:
    if not path.exists():
        path.write_text(new or secrets.token_urlsafe(length))
        path.chmod(0o600)
    return path.read_text().strip()


def dev_environment(data_dir: Path, bind: str) -> dict[str, str]:
    host = bind.rsplit(":", 1)[0].strip("[]")
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"sqlite:///{data_dir / 'lookout.sqlite3'}",
        # kombu's SQLAlchemy transport on SQLite: a broker shared by processes, with no server.
        "CELERY_BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}",
        "SECRET_KEY": _secret(data_dir / "secret_key"),
        "ALLOWED_HOSTS": ",".join(sorted({f"[{host}]" if ":" in host else host, "localhost", "127.0.0.1",
                                          "[::1]"})),
        "DEBUG": "0",
        # The worker's and beat's metrics and health ports listen where the API does, not on every interface.
        "LOOKOUT_METRICS_HOST": host,
    })
    env.setdefault("LOOKOUT_WORKER_CONCURRENCY", DEV_CONCURRENCY)
    # A local, single-user instance is for watching local services too: the SSRF guard protects shared
    # installations. Set LOOKOUT_ALLOW_PRIVATE_TARGETS=0 to try the production rules.
    env.setdefault("LOOKOUT_ALLOW_PRIVATE_TARGETS", "1")
    env.setdefault("LOOKOUT_BASE_URL", f"http://{bind}")
    # The embedded defaults win over anything external this shell may have configured.
    for name in ("CELERY_RESULT_BACKEND", "DATABASE_URL_FILE", "CELERY_BROKER_URL_FILE", "SECRET_KEY_FILE"):
        env.pop(name, None)
    return env


def _lookout(*args: str) -> list[str]:
    return [sys.executable, "-m", "lookout.cli", *args]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http:// URL)
            return bool(response.status == 200)
    except OSError:  # URLError included
        return False


def _children_stop(children: dict[str, "subprocess.Popen[bytes]"]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def dev_run(*, data_dir: str, bind: str, reset: bool) -> int:
    host, port = bind_check(bind)
    reach = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard bind is reached on loopback
    health_url = f"http://{f'[{reach}]' if ':' in reach else reach}:{port}/healthz"
    directory = Path(data_dir).resolve()
    if reset and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = dev_environment(directory, bind)

    subprocess.run(_lookout("migrate"), env=env, check=True, stdout=subprocess.DEVNULL)
    # Before the worker and beat start together: on the embedded broker, two processes creating a queue at once
    # could crash one of them (declarequeues says why).
    subprocess.run(_lookout("manage", "declarequeues"), env=env, check=True, stdout=subprocess.DEVNULL)
    password = _secret(directory / "admin_password", 18)
    # Kept in the data directory like the password, so the token printed stays the same across restarts (the
    # database only has its digest); createapiuser registers it once and then finds it. (So a revoked dev token
    # comes back at the next start: delete the file for a new key.)
    key = _secret(directory / "api_token", new=key_generate())
    token = subprocess.run(
        _lookout("manage", "createapiuser", DEV_USER, "--superuser", "--password-env", "LOOKOUT_DEV_PASSWORD",
                 "--name", "lookout dev", "--key-env", "LOOKOUT_DEV_TOKEN"),
        env={**env, "LOOKOUT_DEV_PASSWORD": password, "LOOKOUT_DEV_TOKEN": key}, check=True, capture_output=True,
        text=True,
    ).stdout.strip()

    metrics_base = int(env.get("LOOKOUT_METRICS_PORT") or 9540)
    commands = {
        "api": (_lookout("api", "--bind", bind, "--workers", "1"), {}),
        "worker": (_lookout("worker"), {"LOOKOUT_METRICS_PORT": str(metrics_base)}),
        "beat": (_lookout("beat"), {"LOOKOUT_METRICS_PORT": str(metrics_base + 1 if metrics_base else 0)}),
    }
    children = {name: subprocess.Popen(argv, env={**env, **extra}) for name, (argv, extra) in commands.items()}

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    url = f"http://{bind}/"
    add_user = ("lookout manage createapiuser NAME" if directory == Path.cwd() / DEV_DATA_DIR
                else f"lookout dev --data-dir {directory} manage createapiuser NAME")
    banner = (
        f"\nLookout is running at {url} (API docs: {url}api/v1/docs/, admin: {url}admin/)\n"
        f"  API token:       {token}\n"
        f"  admin login:     {DEV_USER} / {password}\n"
        f"  try:             curl -H 'Authorization: Token {token}' {url}api/v1/monitors/\n"
        f"  another user:    {add_user}\n"
        f"  data directory:  {directory}\n"
        f"  private targets: LOOKOUT_ALLOW_PRIVATE_TARGETS={env['LOOKOUT_ALLOW_PRIVATE_TARGETS']}\n"
        "Press Ctrl-C to stop.\n"
    )
    # The banner only once the API answers: a URL printed before would refuse connections for a few seconds.
    answered = False
    started = time.monotonic()
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"lookout dev: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                exit_code, stopping = 1, True
        if not (answered or stopping):
            answered = _answers(health_url)
            if answered:
                print(banner, flush=True)
            elif time.monotonic() - started > API_START_SECONDS:
                print(f"lookout dev: the API did not answer at {health_url} within {API_START_SECONDS} s; "
                      "stopping", file=sys.stderr)
                exit_code, stopping = 1, True
        time.sleep(0.2)
    _children_stop(children)
    return exit_code
