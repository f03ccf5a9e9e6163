"""`lookout dev`: API, worker and beat on embedded SQLite (WAL) and an SQLite-backed broker.

Everything lives in one data directory; nothing but this machine's Python is needed.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DEV_USER = "admin"
DEV_CONCURRENCY = "10"


def _secret(path: Path, length: int = 50) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(length))
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
        "ALLOWED_HOSTS": ",".join(sorted({host, "localhost", "127.0.0.1", "[::1]"})),
        "DEBUG": "0",
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


def dev_run(*, data_dir: str, bind: str, reset: bool) -> int:
    directory = Path(data_dir).resolve()
    if reset and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    env = dev_environment(directory, bind)

    subprocess.run(_lookout("migrate"), env=env, check=True, stdout=subprocess.DEVNULL)
    password = _secret(directory / "admin_password", 18)
    token = subprocess.run(
        _lookout("manage", "createapiuser", DEV_USER, "--superuser", "--password-env", "LOOKOUT_DEV_PASSWORD"),
        env={**env, "LOOKOUT_DEV_PASSWORD": password}, check=True, capture_output=True, text=True,
    ).stdout.strip()

    metrics_base = int(env.get("LOOKOUT_METRICS_PORT") or 9540)
    commands = {
        "api": (_lookout("api", "--bind", bind, "--workers", "1"), {}),
        "worker": (_lookout("worker"), {"LOOKOUT_METRICS_PORT": str(metrics_base)}),
        "beat": (_lookout("beat"), {"LOOKOUT_METRICS_PORT": str(metrics_base + 1 if metrics_base else 0)}),
    }
    children = {name: subprocess.Popen(argv, env={**env, **extra}) for name, (argv, extra) in commands.items()}

    url = f"http://{bind}/"
    print(
        f"\nLookout is running at {url} (API docs: {url}api/v1/docs/, admin: {url}admin/)\n"
        f"  API token:       {token}\n"
        f"  admin login:     {DEV_USER} / {password}\n"
        f"  try:             curl -H 'Authorization: Token {token}' {url}api/v1/monitors/\n"
        f"  data directory:  {directory}\n"
        f"  private targets: LOOKOUT_ALLOW_PRIVATE_TARGETS={env['LOOKOUT_ALLOW_PRIVATE_TARGETS']}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"lookout dev: {name} exited with {child.returncode}; stopping", file=sys.stderr)
                exit_code, stopping = 1, True
        time.sleep(0.2)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code
