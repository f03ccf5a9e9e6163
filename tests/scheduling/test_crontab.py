"""Crontab and time zone validation (the scheduler's crontab arithmetic: test_scheduler.py)."""

from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab

from lookout.core.crontab import crontab_as_celery_reads, crontab_fields, timezone_validate

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
    ("61 * * * *", "minute field: 61 is not within 0-59"),
    ("0 24 * * *", "hour field: 24 is not within 0-23"),
    ("* * * 13 *", "month field: 13 is not within 1-12"),
    ("* * *", "a crontab has 5 fields (minute hour day-of-month month day-of-week), got 3"),
    ("* * * * * *", "got 6"),
    ("", "got 0"),
    ("*/0 * * * *", "minute field: step in '*/0' must be at least 1"),
    ("0 0 31 2 *", "never occurs"),
    ("0 0 31 4,6,9,11 *", "never occurs"),
    ("every day", "got 2"),
    ("a b c d e", "minute field: 'a' is not a number (0-59)"),
])
def test_an_invalid_crontab_is_refused_with_a_message_naming_the_problem(cron, message):
    with pytest.raises(ValueError) as refused:
        crontab_fields(cron)

    assert message in str(refused.value)


# Before each field was checked on its own, these raised Celery's ParseException (a 500 from the API) or were
# read another way (`1-` as the weekday Monday, `mon` as minute 1).
@pytest.mark.parametrize(("cron", "message"), [
    ("1,,2 * * * *", "minute field: empty list item"),
    (", * * * *", "minute field: empty list item"),
    ("1, * * * *", "minute field: empty list item"),
    ("*/ * * * *", "minute field: '*/' has no step after '/'"),
    ("0-30/ * * * *", "minute field: '0-30/' has no step after '/'"),
    ("-1 * * * *", "minute field: '-1': a range has a start before '-' (negative numbers are not allowed)"),
    ("1- * * * *", "minute field: '1-': a range has an end after '-'"),
    ("1-2-3 * * * *", "minute field: '1-2-3': a range has one '-'"),
    ("*/5/2 * * * *", "minute field: '*/5/2' has more than one step"),
    ("5/2 * * * *", "minute field: '5/2': a step follows '*' or a range"),
    ("1** * * * *", "minute field: '1**'"),
    ("mon * * * *", "minute field: 'mon' is not a number (0-59)"),
    ("0 jan * * *", "hour field: 'jan' is not a number (0-23)"),
    ("0 0 0 * *", "day-of-month field: 0 is not within 1-31"),
    ("0 0 32 * *", "day-of-month field: 32 is not within 1-31"),
    ("0 0 * 0 *", "month field: 0 is not within 1-12"),
    ("0 0 * mon *", "month field: 'mon' is neither a number (1-12) nor a name (jan..dec)"),
    ("0 0 * * 8", "day-of-week field: 8 is not within 0-7"),
    ("0 0 * * jan", "day-of-week field: 'jan' is neither a number (0-7) nor a name (sun..sat)"),
    ("0 0 * * monday", "day-of-week field: 'monday'"),
    ("1 * * * mon-", "day-of-week field: 'mon-': a range has an end after '-'"),
    ("30-10 * * * *", "minute field: range '30-10' runs backwards (30 > 10)"),
    ("0 0 * * fri-mon", "day-of-week field: range 'fri-mon' runs backwards (5 > 1)"),
    ("0-30/0 * * * *", "minute field: step in '0-30/0' must be at least 1"),
    ("*/x * * * *", "minute field: step 'x' in '*/x' is not a number"),
    ("² * * * *", "minute field: '²' is not a number"),
    ("99999999999999999999 * * * *", "minute field: 99999999999999999999 is not within 0-59"),
])
def test_a_malformed_field_is_refused_with_a_message_naming_the_field(cron, message):
    with pytest.raises(ValueError) as refused:
        crontab_fields(cron)

    assert str(refused.value).startswith(message)


@pytest.mark.parametrize(("cron", "day_of_week"), [
    ("0 0 * * 1-7/2", "1,3,5,0"),
    ("0 0 * * fri-7", "5-6,0"),
    ("0 0 * * 7-7", "0"),
    ("0 0 * * 0-7", "0-6,0"),
    ("0 0 * * SUN,Sat", "SUN,Sat"),
    ("0 0 * * */2", "*/2"),
])
def test_sunday_as_seven_and_names_in_any_case_are_accepted_in_the_day_of_week(cron, day_of_week):
    assert crontab_fields(cron)["day_of_week"] == day_of_week


@pytest.mark.parametrize("cron", ["0 0 1 JAN-mar *", "0 0 1 jan,jul *", "0 0 1 */3 *", "0-59/15 0-23 1-31 1-12 0-6"])
def test_month_names_ranges_and_range_steps_are_accepted(cron):
    assert crontab_fields(cron)


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_an_iana_time_zone_is_accepted(name):
    assert timezone_validate(name) == ZoneInfo(name)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc ", "../../etc/passwd", "/etc/localtime", "Europe/"])
def test_an_unknown_time_zone_is_refused_with_a_hint(name):
    with pytest.raises(ValueError, match=r"unknown time zone .*\(use an IANA name"):
        timezone_validate(name)


# --- crontab_as_celery_reads: the crontabs saved before the strict rules -------------------------------------


def celery_sets(cron: str) -> tuple[set[int], ...]:
    schedule = crontab(**dict(zip(("minute", "hour", "day_of_month", "month_of_year", "day_of_week"),
                                  cron.split(), strict=True)))
    return (schedule.minute, schedule.hour, schedule.day_of_month, schedule.month_of_year, schedule.day_of_week)


@pytest.mark.parametrize(("cron", "spelled"), [
    ("1-2-3 * * * *", "1-2 * * * *"),
    ("*/5/2 * * * *", "*/5 * * * *"),
    ("1 * * * mon-", "1 * * * 1"),
    ("0 0 1 jan,jul,1-2-3 *", "0 0 1 1-2,7 *"),
])
def test_a_crontab_the_strict_rules_refuse_is_spelled_as_what_celery_ran(cron, spelled):
    with pytest.raises(ValueError):
        crontab_fields(cron)

    assert crontab_as_celery_reads(cron) == spelled
    assert celery_sets(spelled) == celery_sets(cron)
    crontab_fields(spelled)


@pytest.mark.parametrize("cron", ["*/5 * * * *", "0 9 * * 1-5", "30 2 1,15 * mon-fri", "0 0 * * 7"])
def test_a_crontab_the_strict_rules_accept_stays_as_written(cron):
    assert crontab_as_celery_reads(cron) == cron


def test_a_crontab_celery_refuses_too_is_an_error():
    with pytest.raises(ValueError, match="invalid crontab"):
        crontab_as_celery_reads("1,,2 * * * *")
