"""Regions benchmark: time from the first failing probe to the confirmed-down alert, with three regions.

    .venv/bin/python bench/region_detection.py [--trials 20] [--interval 5]

A real stack on 127.0.0.1 (api, beat, a home worker, `lookout worker --region eu-west` and a database-less
`lookout agent --region us-east`), one monitor of the three regions (confirm: a majority, failure_threshold 2)
against a target that answers by the probing region, alerts to a webhook receiver. Each trial makes the target fail
for eu-west and us-east, and measures from the first 503 the target served to the down alert the receiver got; then
lets it recover (one up alert) before the next. Without re-checks the figure would be about one interval
(failure_threshold rounds, one interval apart); re-checks make every region probe again at once after a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import _common as common  # noqa: E402

from support.receivers import WebhookReceiver  # noqa: E402
from support.regional_target import RegionalTarget  # noqa: E402
from support.stack import LOOKOUT, LookoutStack, base_environment, free_port, process_start, wait_until  # noqa: E402

REGIONS = ["home", "eu-west", "us-east"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="outages measured (default 20)")
    parser.add_argument("--interval", type=int, default=5, help="the monitor's interval in seconds (default 5)")
    args = parser.parse_args()

    target, receiver = RegionalTarget(), WebhookReceiver()
    env = {"LOOKOUT_REGIONS": ",".join(REGIONS), "LOOKOUT_ALERT_SWEEP_SECONDS": "1",
           "LOOKOUT_ALERT_TIMEOUT_SECONDS": "2", "LOOKOUT_ALERT_LEASE_SECONDS": "4"}
    delays: list[float] = []
    with LookoutStack(Path(tempfile.mkdtemp(prefix="lookout-bench-")), name=f"lookout_bench_detect_{os.getpid()}",
                      env=env) as stack:
        stack.up()
        stack.start("eu", "worker", "--region", "eu-west", LOOKOUT_METRICS_PORT=str(free_port()))
        key = stack.run("manage", "regionkey", "us-east").strip()
        stack.processes["agent"] = process_start(
            [*LOOKOUT, "agent", "--region", "us-east"], log=stack.workdir / "agent.log",
            env=base_environment(CELERY_BROKER_URL=stack.env["CELERY_BROKER_URL"], LOOKOUT_REGION="us-east",
                                 LOOKOUT_REGION_KEY=key, LOOKOUT_ALLOW_PRIVATE_TARGETS="1",
                                 LOOKOUT_METRICS_PORT=str(free_port())))
        hook = stack.api("POST", "channels/", json={"name": "hook", "kind": "webhook", "url": receiver.url}).json()
        monitor = stack.api("POST", "monitors/", json={"name": "shop", "url": target.url("/shop"),
                                                       "interval": args.interval, "regions": REGIONS,
                                                       "channels": [hook["id"]]}).json()

        def events(event: str) -> list:
            return [received for received in receiver.received
                    if json.loads(received.body).get("event") == event]

        def status() -> str:
            return stack.api("GET", f"monitors/{monitor['id']}/").json()["status"]

        wait_until(lambda: status() == "up", timeout=60, what="the monitor up")
        print(f"Region detection benchmark: interval {args.interval} s, failure_threshold 2, confirm 2 of 3, "
              f"{args.trials} trials, {len(os.sched_getaffinity(0))} CPUs", flush=True)
        for trial in range(args.trials):
            downs = len(events("monitor.down"))
            time.sleep(args.interval * (trial % 5) / 5)  # outages begin anywhere in the interval
            started = time.time()
            target.fail("/shop", "eu-west", "us-east")
            wait_until(lambda downs=downs: len(events("monitor.down")) > downs, timeout=args.interval * 4 + 30,
                       what="the down alert")
            first = min(hit.at for hit in target.hits_of("/shop", since=started) if hit.status == 503)
            delays.append(events("monitor.down")[-1].at - first)
            ups = len(events("monitor.up"))
            target.fail("/shop")
            wait_until(lambda ups=ups: len(events("monitor.up")) > ups, timeout=args.interval * 4 + 30,
                       what="the up alert")
            wait_until(lambda: status() == "up", timeout=30, what="up again")
    target.close()
    receiver.close()
    delays.sort()
    print("first failing probe -> down alert received: "
          f"median {common.percentile(delays, 0.5):.2f} s, p99 {common.percentile(delays, 0.99):.2f} s, "
          f"min {delays[0]:.2f} s, max {delays[-1]:.2f} s over {len(delays)} trials "
          f"(ratio to one interval: median {common.percentile(delays, 0.5) / args.interval:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
