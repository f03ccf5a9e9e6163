"""Input rules every Lookout API shares: a typo or a read-only field never passes silently, JSON true is not the
number 1, an integer fits the database's bigint, crontabs and time zones are checked by the parser that will run
them."""

from typing import Any

from rest_framework import serializers

from lookout.core.crontab import crontab_fields, timezone_validate

# PostgreSQL's bigint, the type of every id and integer column: a value beyond it is an error of the input, not
# of the database.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class RejectUnknownFieldsMixin:
    """Unknown fields and read-only fields are errors, where DRF ignores both: a client sending `status` or `id`
    expects it to take effect, and it would not. (So a representation read from a GET is not a valid PUT body
    as it is: drop its read-only fields first.)"""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            fields = self.fields  # type: ignore[attr-defined]
            errors = {name: ["Unknown field."] for name in data if name not in fields}
            errors.update({name: ["This field is read-only."] for name in data
                           if name in fields and fields[name].read_only})
            if errors:
                raise serializers.ValidationError(dict(sorted(errors.items())))
        return super().to_internal_value(data)  # type: ignore[misc, no-any-return]


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An integer, not a boolean, within the signed 64-bit range whatever narrower bounds the field has."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        value: int = super().to_internal_value(data)
        if value > INT64_MAX:
            self.fail("max_value", max_value=INT64_MAX)
        if value < INT64_MIN:
            self.fail("min_value", min_value=INT64_MIN)
        return value


class CrontabField(serializers.CharField):
    """A 5-field crontab, validated by Celery's parser and stored with single spaces."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 120)
        kwargs.setdefault("help_text", "5-field crontab: minute hour day-of-month month day-of-week.")
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            crontab_fields(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return " ".join(value.split())


class TimeZoneField(serializers.CharField):
    """An IANA time zone name."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            timezone_validate(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value
