"""Crontab and time zone validation, and the expiry Lookout's beat scheduler puts on each probe message."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from lookout.config.celery_app import app as celery_app
from lookout.scheduling import schedules
from lookout.scheduling.crontab import crontab_fields, timezone_validate
from lookout.scheduling.scheduler import LookoutScheduler

# --- crontab_fields and timezone_validate --------------------------------------------------------------------


@pytest.mark.parametrize(("cron", "fields"), [
    ("*/5 * * * *", ("*/5", "*", "*", "*", "*")),
    ("0 9 * * 1-5", ("0", "9", "*", "*", "1-5")),
    ("  30   2 1,15 * mon-fri ", ("30", "2", "1,15", "*", "mon-fri")),
    ("0 0 29 2 *", ("0", "0", "29", "2", "*")),  # leap days exist
    ("0 0 * * 7", ("0", "0", "*", "*", "0")),  # standard cron's Sunday-as-7, which Celery spells 0
    ("0 0 * * 5-7", ("0", "0", "*", "*", "5-6,0")),
    ("0 0 * * 1,7", ("0", "0", "*", "*", "1,0")),
])
def test_a_valid_crontab_is_split_into_its_five_named_fields(cron, fields):
    assert crontab_fields(cron) == dict(zip(
        ("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), fields, strict=True))


@pytest.mark.parametrize(("cron", "message"), [
    ("61 * * * *", "61 > 59"),
    ("0 24 * * *", "24 > 23"),
    ("* * * 13 *", "13 > 12"),
    ("* * *", "a crontab has 5 fields (minute hour day-of-month month day-of-week), got 3"),
    ("* * * * * *", "got 6"),
    ("", "got 0"),
    ("*/0 * * * *", "step cannot be zero"),
    ("0 0 31 2 *", "never occurs"),
    ("0 0 31 4,6,9,11 *", "never occurs"),
    ("every day", "got 2"),
    ("a b c d e", "invalid crontab 'a b c d e'"),
])
def test_an_invalid_crontab_is_refused_with_a_message_naming_the_problem(cron, message):
    with pytest.raises(ValueError, match="crontab") as refused:
        crontab_fields(cron)

    assert message in str(refused.value)


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_an_iana_time_zone_is_accepted(name):
    assert timezone_validate(name) == ZoneInfo(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc ", "../../etc/passwd", "/etc/localtime", "Europe/"])
def test_an_unknown_time_zone_is_refused_with_a_hint(name):
    with pytest.raises(ValueError, match=r"unknown time zone .*\(use an IANA name"):
        timezone_validate(name)


# --- LookoutScheduler.apply_async: the expiry of each probe message as sent to the broker -----------------------


@pytest.fixture
def scheduler():
    # lazy: no initial read of every row; sending one entry needs none.
    beat = LookoutScheduler(app=celery_app, lazy=True)
    yield beat
    beat._finalize.cancel()  # nothing to write back: these entries were never sent


def sent_expires_in(scheduler: LookoutScheduler, task: PeriodicTask) -> float | None:
    """Seconds until the message beat put on the probes queue for this task expires (read back from it)."""
    schedules.schedule_attach(task, monitor_id=1)  # the probe task's one argument, as for a real monitor
    # As tick() does: send the entry it holds, without advancing (advance=False).
    result = scheduler.apply_async(ModelEntry(task, app=celery_app), advance=False)
    with celery_app.connection_for_read() as connection:
        channel = connection.channel()
        try:
            while (message := channel.basic_get("probes", no_ack=False)) is not None:
                if message.headers.get("id") == result.id:
                    channel.basic_ack(message.delivery_tag)
                    expires = message.headers.get("expires")
                    return seconds_until(datetime.fromisoformat(expires)) if expires else None
        finally:
            channel.close()
    raise AssertionError("beat's message is not in the probes queue")


def seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


@pytest.mark.django_db
def test_a_crontab_probe_expires_when_its_next_run_is_due(scheduler):
    task = schedules.schedule_create(interval=None, cron="*/5 * * * *", tz="UTC")
    now = datetime.now(UTC)
    next_run = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)

    expires_in = sent_expires_in(scheduler, task)

    assert expires_in == pytest.approx(seconds_until(next_run), abs=2)


@pytest.mark.django_db
def test_a_crontab_probes_expiry_follows_the_crontabs_own_time_zone(scheduler):
    # Kolkata is UTC+05:30: its minute 30 is minute 0 in UTC, so a zone mix-up is off by half an hour.
    task = schedules.schedule_create(interval=None, cron="30 * * * *", tz="Asia/Kolkata")
    next_run = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    expires_in = sent_expires_in(scheduler, task)

    assert expires_in == pytest.approx(seconds_until(next_run), abs=2)


@pytest.mark.django_db
def test_a_daily_crontab_probe_expires_a_day_later_at_most(scheduler):
    task = schedules.schedule_create(interval=None, cron="0 9 * * *", tz="Europe/Paris")
    paris_now = datetime.now(ZoneInfo("Europe/Paris"))
    next_run = paris_now.replace(hour=9, minute=0, second=0, microsecond=0)
    if next_run <= paris_now:
        next_run = (next_run + timedelta(days=1)).replace(hour=9)

    expires_in = sent_expires_in(scheduler, task)

    assert expires_in == pytest.approx(seconds_until(next_run), abs=2)
    assert 0 < expires_in <= 25 * 3600


@pytest.mark.django_db
def test_an_interval_probe_keeps_its_interval_as_its_expiry(scheduler):
    task = schedules.schedule_create(interval=45, cron=None, tz="UTC")

    expires_in = sent_expires_in(scheduler, task)

    assert expires_in == pytest.approx(45, abs=2)
