"""5-field crontab strings (minute hour day-of-month month day-of-week), parsed by Celery's own parser."""

from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class CrontabFields(TypedDict):
    """A crontab's fields by name, as Celery's crontab and django-celery-beat's CrontabSchedule take them."""

    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str


def crontab_fields(cron: str) -> CrontabFields:
    """Split and validate a crontab; raise ValueError with a message fit for an API client."""
    parts = cron.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(
            f"a crontab has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    fields = CrontabFields(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                           day_of_week=_sunday_as_zero(day_of_week))
    try:
        crontab(**fields)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"invalid crontab {cron!r}: {exc}") from exc
    return fields


def _sunday_as_zero(day_of_week: str) -> str:
    """Standard cron accepts 7 for Sunday (alone or ending a range); Celery's parser only 0."""
    items = []
    for item in day_of_week.split(","):
        if item == "7":
            item = "0"
        elif item.endswith("-7") and item[:-2].isdigit():
            item = f"{item[:-2]}-6,0" if item[:-2] != "7" else "0"
        items.append(item)
    return ",".join(items)


def timezone_validate(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from exc
