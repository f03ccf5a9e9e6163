"""Beat's exit on SIGTERM under load: a real `lookout beat` dispatching --schedules probe runs every --interval
seconds (2,000 runs/s by default) is sent SIGTERM --rounds times, one beat process per round, and each exit time
is measured, against an idle beat's (nothing due) measured in the same run.

    .venv/bin/python bench/beat_sigterm.py [--schedules 10000] [--interval 5] [--rounds 20] [--idle-rounds 5]

One fresh PostgreSQL database and RabbitMQ vhost; the schedules are PeriodicTask rows (tests/support/beat_load.py),
their runs spread evenly over the interval. A kombu consumer in this process takes every probe message (as
workers would), which gives the dispatch rate in the second before each SIGTERM. Per round: start beat, wait
until it has dispatched for --dispatch-seconds, SIGTERM, time until the process is gone (SIGKILL after 30 s,
counted as a failure). Also checked per round: exit status 0, the lock taken once (beat's log), and over the
whole run no task id received twice (a run sent again after a restart carries the same id).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support import stack  # noqa: E402
from support.beat_load import ProbeRecorder, schedules_seed  # noqa: E402

KILL_AFTER = 30.0


def beat_round(env: dict[str, str], log: Path, recorder: ProbeRecorder, *, dispatch_seconds: float,
               loaded: bool) -> dict:
    beat = stack.process_start([*stack.LOOKOUT, "beat"], env={**env, "LOOKOUT_METRICS_PORT": str(stack.free_port())},
                               log=log)
    try:
        stack.wait_until(lambda: beat.poll() is not None or "dispatching " in log.read_text(errors="replace"),
                         timeout=60, what="beat to take the lock")
        if beat.poll() is not None:
            raise SystemExit(f"beat exited early:\n{stack.log_tail(log)}")
        time.sleep(dispatch_seconds)
        before = len(recorder.messages)
        time.sleep(1.0)
        rate = len(recorder.messages) - before
        signalled = time.monotonic()
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=KILL_AFTER)
            killed = False
        except subprocess.TimeoutExpired:
            beat.kill()
            beat.wait()
            killed = True
        exit_seconds = time.monotonic() - signalled
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
    text = log.read_text(errors="replace")
    return {"loaded": loaded, "exit": exit_seconds, "rate": rate, "killed": killed, "code": beat.returncode,
            "locks": text.count("acquired the scheduler lock"), "tracebacks": text.count("Traceback")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10000, help="probe schedules (default 10000)")
    parser.add_argument("--interval", type=int, default=5, help="their interval, seconds (default 5)")
    parser.add_argument("--rounds", type=int, default=20, help="SIGTERMs to a loaded beat (default 20)")
    parser.add_argument("--idle-rounds", type=int, default=5, help="SIGTERMs to an idle beat (default 5)")
    parser.add_argument("--dispatch-seconds", type=float, default=2.0,
                        help="dispatching before the rate is measured and SIGTERM sent (default 2)")
    args = parser.parse_args()

    name = f"lookout_bench_beatterm_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
    rounds: list[dict] = []
    recorder = None
    try:
        database_url = stack.database_create(name)
        broker_url = stack.vhost_create(name, required=True)
        env = common.bench_environment(database_url, broker_url)
        stack.lookout_run(env, "migrate")
        recorder = ProbeRecorder(broker_url)
        print(f"Beat SIGTERM benchmark: {args.schedules} schedules every {args.interval} s "
              f"({args.schedules / args.interval:.0f} runs/s due), {args.rounds} loaded and {args.idle_rounds} idle "
              f"rounds, {len(os.sched_getaffinity(0))} CPUs, Python {sys.version.split()[0]}", flush=True)
        # Idle first: only Lookout's own few schedules (sweeps every few seconds or minutes), no probe due.
        for index in range(args.idle_rounds):
            rounds.append(beat_round(env, workdir / f"idle-{index}.log", recorder, dispatch_seconds=1.0,
                                     loaded=False))
            print(f"idle   {index + 1:>2}: exit {rounds[-1]['exit']:.3f} s", flush=True)
        schedules_seed(database_url, count=args.schedules, interval=args.interval, first_due=time.time() + 1,
                       spread=True)
        for index in range(args.rounds):
            rounds.append(beat_round(env, workdir / f"loaded-{index}.log", recorder,
                                     dispatch_seconds=args.dispatch_seconds, loaded=True))
            r = rounds[-1]
            notes = [note for note, bad in (("SIGKILLed", r["killed"]), (f"exit status {r['code']}", r["code"] != 0),
                                            (f"lock taken {r['locks']} times", r["locks"] != 1)) if bad]
            print(f"loaded {index + 1:>2}: exit {r['exit']:.3f} s at {r['rate']} runs/s {' '.join(notes)}",
                  flush=True)
        messages = recorder.settled(quiet=1.0)
    finally:
        if recorder is not None:
            recorder.close()
        common.run_services_drop(name)
        shutil.rmtree(workdir, ignore_errors=True)

    def summary(label: str, selected: list[dict]) -> str:
        exits = [r["exit"] for r in selected]
        if not exits:
            return f"{label}: no rounds"
        return (f"{label:<6} rounds {len(exits):>2}  exit p50 {common.percentile(exits, 0.5):.3f} s  "
                f"max {max(exits):.3f} s  min {min(exits):.3f} s")

    idle = [r for r in rounds if not r["loaded"]]
    loaded = [r for r in rounds if r["loaded"]]
    print(summary("idle", idle))
    print(summary("loaded", loaded))
    rates = [r["rate"] for r in loaded]
    if rates:
        print(f"dispatch rate in the second before SIGTERM: p50 {common.percentile(rates, 0.5):.0f} runs/s, "
              f"min {min(rates)} runs/s")
    if idle and loaded:
        loaded_p50 = common.percentile([r["exit"] for r in loaded], 0.5)
        idle_p50 = common.percentile([r["exit"] for r in idle], 0.5)
        print(f"ratio loaded / idle exit time: p50 {loaded_p50 / idle_p50:.2f}x, "
              f"max {max(r['exit'] for r in loaded) / max(r['exit'] for r in idle):.2f}x")
    task_ids = [m.task_id for m in messages]
    failures = [r for r in rounds if r["killed"] or r["code"] != 0 or r["locks"] != 1 or r["tracebacks"]]
    print(f"{len(messages)} probe messages received, {len(task_ids) - len(set(task_ids))} task ids twice; "
          f"rounds SIGKILLed, failed or taking the lock twice: {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
