"""Probe engine benchmark: probes per second per core of lookout's ``probe()`` under gevent, against
Debian's prometheus-blackbox-exporter probing the same local target in the same run.

    .venv/bin/python bench/probe_engine.py [--seconds 3] [--warmup 1] [--rounds 3] [--concurrency 50,200]

Everything runs on 127.0.0.1, each part in its own process:
- target: a minimal asyncio HTTP server (200, 2-byte body, "Connection: close"), so every probe of both
  engines opens a new TCP connection, as a monitor's probe does;
- lookout: one gevent process (as a worker), N greenlets calling probe() in a loop;
- blackbox_exporter (GOMAXPROCS=1, so one core at most, like one Python process), driven by one gevent
  process with N keep-alive connections asking /probe?module=http_2xx&target=<the target>.

"Per core" is probes per CPU-second of the prober's own process (its user + system time during the
measured window): how many probes one fully busy core sustains. The target's and the driver's CPU are
not counted. blackbox_exporter's figure includes answering /probe over HTTP and rendering its metrics,
work lookout's worker does not do per probe (it writes a database row instead, which is not measured
here either): a fair price for an exporter, but it favours lookout slightly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from _target import serve

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


# --- roles (each in its own process) ---------------------------------------------------------------


def role_target() -> None:
    serve(backlog=4096)


def role_lookout(url: str, concurrency: int, warmup: float, seconds: float) -> None:
    from gevent import monkey

    monkey.patch_all()  # first, as `celery worker -P gevent` does

    import resource

    import gevent

    from lookout.probes.engine import ProbeSpec, TargetPolicy, probe

    spec = ProbeSpec(url, policy=TargetPolicy(allow_private=True), timeout=5)

    def one() -> tuple[bool, float]:
        outcome = probe(spec)
        return outcome.success, outcome.response_time_ms

    print(json.dumps(_measure(one, concurrency, warmup, seconds, lambda: _rusage_seconds(resource), gevent)))


def role_blackbox_driver(port: int, url: str, concurrency: int, warmup: float, seconds: float, pid: int) -> None:
    from gevent import monkey

    monkey.patch_all()

    import re
    import socket
    import threading
    from urllib.parse import quote

    import gevent

    request = (f"GET /probe?module=http_2xx&target={quote(url, safe='')} HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{port}\r\n\r\n").encode()
    duration = re.compile(rb"\nprobe_duration_seconds ([0-9.e+-]+)")
    local = threading.local()  # one keep-alive connection per greenlet

    def one() -> tuple[bool, float]:
        if getattr(local, "file", None) is None:
            local.sock = socket.create_connection(("127.0.0.1", port))
            local.file = local.sock.makefile("rb")
        local.sock.sendall(request)
        length, chunked = 0, False
        while (line := local.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked:
            body = local.file.read(length)
        else:  # what Go's server sends for blackbox's answer
            parts = []
            while size := int(local.file.readline().split(b";")[0], 16):
                parts.append(local.file.read(size + 2)[:-2])
            while local.file.readline() not in (b"\r\n", b""):  # trailers
                pass
            body = b"".join(parts)
        match = duration.search(body)
        return b"\nprobe_success 1" in body, float(match.group(1)) * 1000 if match else 0.0

    print(json.dumps(_measure(one, concurrency, warmup, seconds, lambda: _proc_cpu_seconds(pid), gevent)))


def _measure(one, concurrency: int, warmup: float, seconds: float, cpu, gevent) -> dict:
    """Run ``one`` in ``concurrency`` greenlets; count what completes in [warmup, warmup + seconds]."""
    start = time.perf_counter()
    window_start, window_end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    failures = 0
    marks: dict[str, float] = {}

    def loop() -> None:
        nonlocal failures
        while time.perf_counter() < window_end:
            success, latency_ms = one()
            if window_start <= time.perf_counter() < window_end:
                latencies.append(latency_ms)
                failures += not success

    def mark(name: str, at: float) -> None:
        gevent.sleep(max(0.0, at - time.perf_counter()))
        marks[name + "_wall"], marks[name + "_cpu"] = time.perf_counter(), cpu()

    greenlets = [gevent.spawn(loop) for _ in range(concurrency)]
    greenlets += [gevent.spawn(mark, "start", window_start), gevent.spawn(mark, "end", window_end)]
    gevent.joinall(greenlets, raise_error=True)
    latencies.sort()
    return {
        "probes": len(latencies), "failures": failures,
        "wall": marks["end_wall"] - marks["start_wall"], "cpu": marks["end_cpu"] - marks["start_cpu"],
        "p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def _rusage_seconds(resource) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


# --- orchestration ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured window per run (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured start of each run (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per engine and concurrency, interleaved; "
                        "medians are reported (default 3)")
    parser.add_argument("--concurrency", default="50,200", help="greenlets per run, comma-separated")
    args = parser.parse_args()

    import shutil
    import socket
    import statistics
    import subprocess
    import tempfile

    if shutil.which(BLACKBOX) is None:
        print(f"{BLACKBOX} is not installed: apt-get install -y prometheus-blackbox-exporter", file=sys.stderr)
        return 2
    concurrencies = [int(value) for value in args.concurrency.split(",")]
    me = [sys.executable, os.path.abspath(__file__)]
    # The probers get a CPU of their own, the target and the driver share the others: less noise.
    cpus = sorted(os.sched_getaffinity(0))
    prober_cpus, helper_cpus = ({cpus[-1]}, set(cpus[:-1])) if len(cpus) > 1 else (set(cpus), set(cpus))

    def pinned(cpu_set: set[int]):
        return lambda: os.sched_setaffinity(0, cpu_set)

    processes: list[subprocess.Popen] = []
    workdir = tempfile.mkdtemp(prefix="lookout-bench-")
    try:
        target = subprocess.Popen([*me, "--role", "target"], stdout=subprocess.PIPE, text=True,
                                  preexec_fn=pinned(helper_cpus))
        processes.append(target)
        assert target.stdout is not None
        url = f"http://127.0.0.1:{int(target.stdout.readline())}/"

        config = os.path.join(workdir, "blackbox.yml")
        with open(config, "w") as file:
            file.write(BLACKBOX_CONFIG)
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            blackbox_port = free.getsockname()[1]
        blackbox = subprocess.Popen(
            [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{blackbox_port}",
             "--log.level=error"],
            env={**os.environ, "GOMAXPROCS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pinned(prober_cpus),
        )
        processes.append(blackbox)
        _wait_for_port(blackbox_port)
        versions = subprocess.run([BLACKBOX, "--version"], capture_output=True, text=True)
        version = (versions.stdout or versions.stderr).split("\n")[0].strip()

        print(f"Probe engine benchmark: GET {url} (200, 2-byte body, Connection: close); {len(cpus)} CPUs, "
              f"probers pinned to CPU {sorted(prober_cpus)}, Python {sys.version.split()[0]}")
        print(f"baseline: {version}, GOMAXPROCS=1; {args.rounds} interleaved rounds of {args.seconds:g} s "
              f"(after {args.warmup:g} s warm-up) per engine and concurrency; medians")
        results: dict[tuple[str, int], list[dict]] = {}
        for _ in range(args.rounds):
            for concurrency in concurrencies:
                timing = [str(concurrency), str(args.warmup), str(args.seconds)]
                results.setdefault(("lookout", concurrency), []).append(
                    _run([*me, "--role", "lookout", url, *timing], pinned(prober_cpus)))
                results.setdefault(("blackbox", concurrency), []).append(
                    _run([*me, "--role", "blackbox-driver", str(blackbox_port), url, *timing, str(blackbox.pid)],
                         pinned(helper_cpus)))

        print(f"{'engine':<9} {'conc':>5} {'probes':>7} {'fail':>5} {'probes/s':>9} {'CPU ms/probe':>13} "
              f"{'probes/s/core (min-max)':>24} {'p50 ms':>7} {'p99 ms':>7}")
        ratios = []
        for concurrency in concurrencies:
            medians = {}
            for engine in ("lookout", "blackbox"):
                runs = results[(engine, concurrency)]
                per_core = sorted(_per_core(run) for run in runs)
                medians[engine] = statistics.median(per_core)
                middle = sorted(runs, key=_per_core)[len(runs) // 2]
                probes = sum(run["probes"] for run in runs)
                print(f"{engine:<9} {concurrency:>5} {probes:>7} {sum(run['failures'] for run in runs):>5} "
                      f"{statistics.median(run['probes'] / run['wall'] for run in runs):>9.0f} "
                      f"{1000 / medians[engine]:>13.3f} "
                      f"{medians[engine]:>8.0f} ({per_core[0]:.0f}-{per_core[-1]:.0f}){'':>4} "
                      f"{middle['p50_ms']:>7.2f} {middle['p99_ms']:>7.2f}")
            ratios.append((concurrency, medians["lookout"] / medians["blackbox"]))
        print("ratio lookout / blackbox_exporter, probes per second per core: "
              + ", ".join(f"{ratio:.2f}x at concurrency {concurrency}" for concurrency, ratio in ratios))
        return 0
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def _run(command: list[str], preexec) -> dict:
    import subprocess

    done = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=preexec)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:4])} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _per_core(result: dict) -> float:
    return result["probes"] / result["cpu"] if result["cpu"] else float("inf")


def _wait_for_port(port: int, seconds: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--role"]:
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "target":
            role_target()
        elif role == "lookout":
            role_lookout(rest[0], int(rest[1]), float(rest[2]), float(rest[3]))
        elif role == "blackbox-driver":
            role_blackbox_driver(int(rest[0]), rest[1], int(rest[2]), float(rest[3]), float(rest[4]), int(rest[5]))
        sys.exit(0)
    sys.exit(main())
