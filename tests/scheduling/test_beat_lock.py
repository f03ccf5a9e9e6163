"""The single-beat guard on the real PostgreSQL: one lock holder, standbys wait, a lost connection stops sending.

The end-to-end tests run two real `lookout beat` processes on one database and read the probe cadence from
the target server's own log of hits, so "not doubled" is measured, not inferred from Lookout's state.
"""

import random
import signal
import time
import uuid

import psycopg
import pytest
import requests

from lookout.scheduling.lock import APPLICATION_NAME, NoLock, SchedulerLock, scheduler_lock_for
from support.http_target import HttpTarget
from support.stack import ADMIN_DSN, LookoutStack, free_port, wait_until

LOCAL = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def terminate_lock_sessions(database: str, key: int | None = None) -> int:
    """What a failover, a network cut or an administrator does to the lock's session."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, APPLICATION_NAME)).fetchall()
    return len(rows)


@pytest.fixture
def lock_key():
    # A key of this test's own: nothing else on this server competes for it.
    return random.randint(1, 2**62)


def test_it_lets_one_holder_at_a_time(lock_key):
    first = SchedulerLock(LOCAL, key=lock_key, poll_seconds=0)
    second = SchedulerLock(LOCAL, key=lock_key, poll_seconds=0)
    try:
        assert first.ensure_held()
        assert not second.ensure_held()
        assert first.ensure_held() and first.held and not second.held
        first.release()
        assert second.ensure_held()
        assert not first.ensure_held()
    finally:
        first.release()
        second.release()


def test_it_notices_a_terminated_session_and_lets_the_other_take_over(lock_key):
    first = SchedulerLock(LOCAL, key=lock_key, poll_seconds=0)
    second = SchedulerLock(LOCAL, key=lock_key, poll_seconds=0)
    try:
        assert first.ensure_held()
        assert terminate_lock_sessions("postgres") >= 1
        # A terminated session frees the lock at once; the next check must see that, not trust old state.
        assert second.ensure_held()
        assert not first.ensure_held()
        assert not first.held
    finally:
        first.release()
        second.release()


def test_it_polls_no_faster_than_its_interval(lock_key):
    holder = SchedulerLock(LOCAL, key=lock_key, poll_seconds=0)
    waiter = SchedulerLock(LOCAL, key=lock_key, poll_seconds=30)
    try:
        assert holder.ensure_held()
        assert not waiter.ensure_held()
        holder.release()
        assert not waiter.ensure_held(), "a second attempt within the poll interval must not reach the database"
    finally:
        holder.release()
        waiter.release()


def test_sqlite_needs_no_lock():
    lock = scheduler_lock_for({"ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/x.sqlite3"})
    assert isinstance(lock, NoLock) and lock.ensure_held()


# --- two real beats ----------------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path):
    with LookoutStack(tmp_path, name=f"lookout_lock_{uuid.uuid4().hex[:8]}") as stack:
        yield stack.up()


def beat_state(port: int) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text.strip()
    except requests.RequestException as exc:
        return f"unreachable: {exc}"


def hits_per_second(http_target: HttpTarget, seconds: float) -> float:
    start = time.time()
    time.sleep(seconds)
    return len(http_target.hits_between(start, time.time())) / seconds


@pytest.mark.e2e
def test_two_beats_dispatch_once_and_the_standby_takes_over(stack, http_target, capsys):
    standby_port = free_port()
    stack.start("beat2", "beat", LOOKOUT_METRICS_PORT=str(standby_port))
    wait_until(lambda: beat_state(standby_port).startswith("standby"), timeout=60, what="the second beat to wait")
    assert beat_state(stack.beat_metrics_port).startswith("active"), beat_state(stack.beat_metrics_port)
    assert "waiting for the scheduler lock" in stack.log("beat2")

    response = stack.api("POST", "monitors/", json={"name": "lock", "url": http_target.url, "interval": 1})
    assert response.status_code == 201, response.text
    wait_until(lambda: len(http_target.hits) >= 3, timeout=20, what="the first probes")
    rate_with_two = hits_per_second(http_target, 8)

    stack.processes["beat"].send_signal(signal.SIGKILL)
    stack.processes["beat"].wait()
    killed_at = time.time()
    wait_until(lambda: beat_state(standby_port).startswith("active"), timeout=20, what="the standby to take over")
    took_over = time.time() - killed_at
    wait_until(lambda: http_target.hits_between(killed_at + took_over, time.time()), timeout=10,
               what="a probe from the new active beat")
    rate_after = hits_per_second(http_target, 6)
    with capsys.disabled():
        print(f"\n[beat lock] two beats: {rate_with_two:.2f} probes/s at interval 1 s; SIGKILL -> standby active "
              f"after {took_over:.1f} s, then {rate_after:.2f} probes/s")
    del stack.processes["beat"]  # already dead; down() must not wait for it
    assert 0.7 <= rate_with_two <= 1.3, f"two beats must not double the cadence: {rate_with_two:.2f}/s"
    assert 0.7 <= rate_after <= 1.3, f"the standby must keep probing at the same cadence: {rate_after:.2f}/s"
    assert took_over < 10


@pytest.mark.e2e
def test_a_beat_whose_lock_session_dies_stops_dispatching_and_recovers(stack, http_target):
    standby_port = free_port()
    stack.start("beat2", "beat", LOOKOUT_METRICS_PORT=str(standby_port))
    wait_until(lambda: beat_state(standby_port).startswith("standby"), timeout=60, what="the second beat to wait")
    response = stack.api("POST", "monitors/", json={"name": "lock", "url": http_target.url, "interval": 1})
    assert response.status_code == 201, response.text
    wait_until(lambda: len(http_target.hits) >= 3, timeout=20, what="the first probes")

    assert terminate_lock_sessions(stack.name) == 1
    wait_until(lambda: "stopped dispatching" in stack.log("beat"), timeout=10,
               what="the active beat to notice its lost lock")

    def one_active() -> list[str] | None:
        states = [beat_state(stack.beat_metrics_port), beat_state(standby_port)]
        return states if sum(state.startswith("active") for state in states) == 1 else None

    states = wait_until(one_active, timeout=20, what="exactly one beat to hold the lock again")
    settled = time.time()
    wait_until(lambda: http_target.hits_between(settled, time.time()), timeout=10, what="probing to continue")
    rate = hits_per_second(http_target, 6)
    assert 0.7 <= rate <= 1.3, f"after the lost session: {rate:.2f} probes/s, states {states}"
    stack.assert_running()
