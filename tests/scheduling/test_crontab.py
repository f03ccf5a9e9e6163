"""Crontab and time zone validation (the scheduler's crontab arithmetic: test_scheduler.py)."""

from zoneinfo import ZoneInfo

import pytest

from lookout.core.crontab import crontab_fields, timezone_validate

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
