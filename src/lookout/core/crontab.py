"""5-field crontab strings (minute hour day-of-month month day-of-week), parsed by Celery's own parser.

Each field is checked on its own first, so a mistake is reported by the field it is in and never reaches
Celery's parser, which raises its own ParseException on some inputs and quietly reads others another way
(`1-` as the weekday Monday, `mon` as minute 1).
"""

import re
from dataclasses import dataclass, field
from typing import Protocol, TypedDict, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import ParseException, crontab

CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class CrontabFields(TypedDict):
    """A crontab's fields by name, as Celery's crontab and django-celery-beat's CrontabSchedule take them."""

    minute: str
    hour: str
    day_of_month: str
    month_of_year: str
    day_of_week: str


class ExpandedCrontab(Protocol):
    """What Celery's crontab holds once built, each field expanded to its values; celery-types leaves these out."""

    minute: set[int]
    hour: set[int]
    day_of_week: set[int]
    day_of_month: set[int]
    month_of_year: set[int]


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SUNDAY_AS_SEVEN = 7
_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, {name: number for number, name in enumerate(_MONTHS, start=1)}),
    # 0-7: standard cron's Sunday is both 0 and 7.
    _Field("day-of-week", 0, _SUNDAY_AS_SEVEN, {name: number for number, name in enumerate(_WEEKDAYS)}),
)
_NUMBER = re.compile(r"[0-9]{1,9}", re.ASCII)


class _FieldError(ValueError):
    pass


def crontab_fields(cron: str) -> CrontabFields:
    """Split and validate a crontab; raise ValueError with a message fit for an API client.

    A message about one field starts with the field's name ("minute field: ..."); only a combination Celery
    refuses (a day of the month that never occurs in the months given) names the whole crontab.
    """
    parts = cron.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(
            f"a crontab has 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
        )
    for spec, rule in zip(parts, _FIELDS, strict=True):
        try:
            _field_check(spec, rule)
        except _FieldError as exc:
            raise ValueError(f"{rule.label} field: {exc}") from None
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    fields = CrontabFields(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                           day_of_week=_sunday_as_zero(day_of_week))
    try:
        crontab(**fields)
    except (ValueError, IndexError, KeyError, ParseException) as exc:
        raise ValueError(f"invalid crontab {cron!r}: {exc}") from exc
    return fields


def crontab_expanded(cron: str) -> ExpandedCrontab:
    """The values each field of a valid crontab stands for, as Celery's parser expands them."""
    return cast(ExpandedCrontab, crontab(**crontab_fields(cron)))


def crontab_as_celery_reads(cron: str) -> str:
    """`cron` when crontab_fields accepts it; else, for a crontab saved before these rules, what Celery's parser
    made of it, spelled so they accept it: `1-2-3 * * * *` ran at minutes 1 and 2 and becomes `1-2 * * * *`.

    Raises ValueError for a crontab Celery's parser refuses as well.
    """
    try:
        crontab_fields(cron)
        return cron
    except ValueError:
        pass
    parts = cron.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(f"a crontab has 5 fields, got {len(parts)}")
    try:
        schedule = cast(ExpandedCrontab, crontab(**dict(zip(CRON_FIELDS, parts, strict=True))))
    except (ValueError, IndexError, KeyError, ParseException) as exc:
        raise ValueError(f"invalid crontab {cron!r}: {exc}") from exc
    expanded = (schedule.minute, schedule.hour, schedule.day_of_month, schedule.month_of_year, schedule.day_of_week)
    # Celery's day-of-week runs 0-6 (Sunday 0), not the 0-7 the strict rules allow.
    bounds = [(rule.low, rule.high) for rule in _FIELDS[:-1]] + [(0, 6)]
    return " ".join(_spelled(values, low, high) for values, (low, high) in zip(expanded, bounds, strict=True))


def _spelled(values: set[int], low: int, high: int) -> str:
    if values == set(range(low, high + 1)):
        return "*"
    step = min(values - {low}, default=high) - low
    if len(values) > 2 and low in values and step > 1 and values == set(range(low, high + 1, step)):
        return f"*/{step}"
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _field_check(spec: str, rule: _Field) -> None:
    """A field is a comma-separated list of `*`, `*/n`, `v`, `a-b` or `a-b/n`, with a <= b within bounds."""
    for item in spec.split(","):
        _item_check(item, rule)


def _item_check(item: str, rule: _Field) -> None:
    if not item:
        raise _FieldError("empty list item (a comma at the start or end, or two in a row)")
    base, slash, step = item.partition("/")
    if slash:
        if "/" in step:
            raise _FieldError(f"{item!r} has more than one step ('/')")
        if not step:
            raise _FieldError(f"{item!r} has no step after '/'")
        if not _NUMBER.fullmatch(step):
            raise _FieldError(f"step {step!r} in {item!r} is not a number")
        if int(step) < 1:
            raise _FieldError(f"step in {item!r} must be at least 1 (a step cannot be zero)")
    if base == "*":
        return
    if "*" in base:
        raise _FieldError(f"{item!r}: '*' stands alone or before a step, as in '*/5'")
    start, dash, end = base.partition("-")
    if not dash:
        if slash:
            raise _FieldError(f"{item!r}: a step follows '*' or a range, as in '*/5' or '0-30/5'")
        _value(base, rule)
        return
    if not start:
        raise _FieldError(f"{item!r}: a range has a start before '-' (negative numbers are not allowed)")
    if not end:
        raise _FieldError(f"{item!r}: a range has an end after '-'")
    if "-" in end:
        raise _FieldError(f"{item!r}: a range has one '-', as in '1-5'")
    first, last = _value(start, rule), _value(end, rule)
    if first > last:
        raise _FieldError(f"range {base!r} runs backwards ({first} > {last})")


def _value(token: str, rule: _Field) -> int:
    if _NUMBER.fullmatch(token):
        number = int(token)
    elif token.lower() in rule.names:
        return rule.names[token.lower()]
    elif rule.names:
        names = list(rule.names)
        raise _FieldError(f"{token!r} is neither a number ({rule.low}-{rule.high}) nor a name "
                          f"({names[0]}..{names[-1]})")
    elif token.isascii() and token.isdigit():
        raise _FieldError(f"{token} is not within {rule.low}-{rule.high}")
    else:
        raise _FieldError(f"{token!r} is not a number ({rule.low}-{rule.high})")
    if not rule.low <= number <= rule.high:
        raise _FieldError(f"{number} is not within {rule.low}-{rule.high}")
    return number


def _sunday_as_zero(day_of_week: str) -> str:
    """Standard cron accepts 7 for Sunday (alone or ending a range); Celery's parser only 0.

    Runs on a field `_field_check` accepted: 7 can only be a value or a range's end.
    """
    rule = _FIELDS[-1]
    items = []
    for item in day_of_week.split(","):
        base, slash, step = item.partition("/")
        start, dash, end = base.partition("-")
        if base == "7":
            item = "0"
        elif dash and _value(end, rule) == _SUNDAY_AS_SEVEN:
            first = _value(start, rule)
            if slash:
                days = dict.fromkeys(day % _SUNDAY_AS_SEVEN for day in range(first, 8, int(step)))
                item = ",".join(str(day) for day in days)
            else:
                item = f"{first}-6,0" if first != _SUNDAY_AS_SEVEN else "0"
        items.append(item)
    return ",".join(items)


def timezone_validate(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Paris')") from exc
