"""gunicorn settings for `lookout api` (`--config python:lookout.config.gunicorn`)."""

import os
import shutil
import tempfile
from typing import Any

# prometheus-client must see its multiprocess directory before any worker imports it.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lookout-prometheus-")

workers = int(os.environ.get("LOOKOUT_API_WORKERS", "2"))
threads = int(os.environ.get("LOOKOUT_API_THREADS", "4"))
timeout = 30
graceful_timeout = 25
keepalive = 5
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# The control socket would be written under $HOME: read-only in containers, and unused by Lookout.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:  # gunicorn has no type information: its Arbiter
    # Files left by a previous run would add stale counts to this run's.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
