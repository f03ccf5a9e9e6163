"""Monitors share IntervalSchedule/CrontabSchedule rows, which have no unique constraint: creating the first monitor
of a new interval from two requests at once made two rows, and every later create at that interval failed
(MultipleObjectsReturned, a 500). Found by bench/soak.py creating 1,000 monitors 8 at a time."""

import threading

import pytest
from django.db import connection, connections, transaction
from django_celery_beat.models import IntervalSchedule

from lookout.scheduling.schedules import schedule_create, shared_schedule
from support.stack import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_schedule_duplicated_before_still_serves_new_monitors_from_its_first_row():
    first = IntervalSchedule.objects.create(every=37, period=IntervalSchedule.SECONDS)
    IntervalSchedule.objects.create(every=37, period=IntervalSchedule.SECONDS)

    task = schedule_create(interval=37, cron=None, tz="UTC")

    assert task.interval_id == first.pk


def test_two_transactions_creating_the_same_new_schedule_at_once_share_one_row():
    created = threading.Event()
    commit = threading.Event()
    rows: dict[str, int] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                rows["first"] = shared_schedule(IntervalSchedule, every=41, period=IntervalSchedule.SECONDS).pk
                created.set()
                commit.wait(10)  # holds the new row uncommitted while the second looks for it
        finally:
            connections.close_all()

    def second() -> None:
        try:
            with transaction.atomic():
                rows["second"] = shared_schedule(IntervalSchedule, every=41, period=IntervalSchedule.SECONDS).pk
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert created.wait(10)
    threads.append(threading.Thread(target=second))
    threads[1].start()

    def second_waits_on_the_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())")
            return cursor.fetchone()[0] == 1

    wait_until(second_waits_on_the_lock, timeout=10, what="the second creator to wait for the first's commit")
    commit.set()
    for thread in threads:
        thread.join(10)

    assert rows["first"] == rows["second"]
    assert IntervalSchedule.objects.filter(every=41, period=IntervalSchedule.SECONDS).count() == 1
