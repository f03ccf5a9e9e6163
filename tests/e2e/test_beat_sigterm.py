"""SIGTERM to a beat in the middle of a batch, with real `lookout beat` processes: it finishes the batch, records
what the broker took, exits within 5 s without taking the lock again, and the beat started after it sends every
run exactly once.

Beat reaches RabbitMQ through a throttled proxy, and thousands of schedules fall due in the same second, so the
publishing of that burst takes seconds, batch after batch: the SIGTERM lands while a batch is being written or
confirmed. No worker: a consumer in the test records every probe message (schedule, due time, task id).
"""

import signal
import time
import uuid
from collections import defaultdict

import pytest

from support.beat_load import ProbeRecorder, last_runs, schedules_seed
from support.stack import LookoutStack, free_port, wait_until
from support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SCHEDULES = 5000
INTERVAL = 20  # seconds: longer than the burst, the stop and the restart together
LEAD = 10.0  # seconds from seeding to the burst: beat's start-up
RATE = 150_000  # bytes/s through the proxy: the burst (~400 kB of batch messages) takes a few seconds
EXIT_LIMIT_SECONDS = 5.0


@pytest.fixture
def stack(tmp_path):
    stack = LookoutStack(tmp_path, name=f"lookout_beatterm_{uuid.uuid4().hex[:8]}")
    try:
        stack.run("migrate")
        yield stack
    finally:
        stack.down()


def beat_start(stack: LookoutStack, name: str, broker_url: str) -> None:
    stack.start(name, "beat", CELERY_BROKER_URL=broker_url, LOOKOUT_METRICS_PORT=str(free_port()))


def test_sigterm_during_a_batch_exits_at_once_and_the_next_beat_sends_every_run_once(stack, report):
    proxy = TcpProxy("127.0.0.1", 5672, rate=RATE)
    recorder = ProbeRecorder(stack.env["CELERY_BROKER_URL"])
    try:
        first_due = time.time() + LEAD
        ids = schedules_seed(stack.database_url, count=SCHEDULES, interval=INTERVAL, first_due=first_due)
        beat_start(stack, "beat", proxy.through(stack.env["CELERY_BROKER_URL"]))
        wait_until(lambda: stack.assert_running() or "acquired the scheduler lock" in stack.log("beat"),
                   timeout=LEAD, what="beat to take the lock before the burst")
        # A quarter of the burst is in: beat is writing or confirming one of its next batches.
        wait_until(lambda: len(recorder.messages) >= SCHEDULES // 4, timeout=LEAD + 20, interval=0.02,
                   what="the burst to be under way")
        beat = stack.processes.pop("beat")
        received_at_signal = len(recorder.messages)
        signalled = time.monotonic()
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=3 * EXIT_LIMIT_SECONDS)
        except Exception:
            beat.kill()
            beat.wait()
        exit_seconds = time.monotonic() - signalled
        log = (stack.workdir / "beat.log").read_text()
        first_part = recorder.settled()
        recorded = last_runs(stack.database_url, ids)

        # The next beat, through the same slow link, carries on with the rest of the burst and the next one.
        restarted = time.monotonic()
        beat_start(stack, "beat2", proxy.through(stack.env["CELERY_BROKER_URL"]))
        wait_until(lambda: stack.assert_running() or sum(1 for m in recorder.messages
                                                         if m.due > first_due + 1) >= SCHEDULES,
                   timeout=INTERVAL + 40, interval=0.2, what="the second burst")
        messages = recorder.settled()
        stack.processes["beat2"].send_signal(signal.SIGTERM)
        idle_signalled = time.monotonic()
        stack.processes.pop("beat2").wait(timeout=30)
        idle_exit = time.monotonic() - idle_signalled
    finally:
        recorder.close()
        proxy.close()

    in_first = [m for m in first_part if abs(m.due - first_due) < 0.01]
    report(f"beat SIGTERMed with {received_at_signal} of {SCHEDULES} runs of the burst received: exited after "
           f"{exit_seconds:.2f} s (limit {EXIT_LIMIT_SECONDS:g} s), {len(in_first)} runs received by then; "
           f"restarted beat sent the other {SCHEDULES - len(in_first)} (first burst complete "
           f"{max(m.at for m in messages if abs(m.due - first_due) < 0.01) - first_due:.1f} s after it was due, "
           f"restart at +{restarted - signalled:.1f} s after the SIGTERM); idle beat exited in {idle_exit:.2f} s")
    assert beat.returncode == 0, log[-3000:]
    assert exit_seconds < EXIT_LIMIT_SECONDS, log[-3000:]
    # It never took the lock again, nor read the schedules again, after the SIGTERM.
    assert log.count("acquired the scheduler lock") == 1, log[-3000:]
    assert log.count("dispatching ") == 1, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    # last_run_at written for exactly the runs the broker took (and the recorder therefore received).
    written = {schedule for schedule, last in recorded.items() if last is not None and abs(last - first_due) < 0.01}
    assert written == {m.schedule for m in in_first}, log[-3000:]
    # Every run once: each schedule's burst runs, both of them, no more and no fewer.
    runs = defaultdict(list)
    for message in messages:
        runs[message.schedule].append(message)
    assert set(runs) == set(ids)
    wrong = {schedule: [round(m.due - first_due, 3) for m in sent] for schedule, sent in runs.items()
             if sorted(round(m.due - first_due, 3) for m in sent) != [0.0, float(INTERVAL)]}
    assert not wrong, f"{len(wrong)} schedules with runs lost or doubled, e.g. {list(wrong.items())[:5]}"
    assert len({m.task_id for m in messages}) == len(messages)
