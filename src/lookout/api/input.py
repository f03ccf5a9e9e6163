"""Input rules every Lookout API shares: a typo never passes silently, JSON true is not the number 1,
crontabs and time zones are checked by the parser that will run them."""

from typing import Any

from rest_framework import serializers

from lookout.core.crontab import crontab_fields, timezone_validate


class RejectUnknownFieldsMixin:
    """Unknown fields are errors (read-only fields sent back from a GET are ignored, as DRF does)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))  # type: ignore[attr-defined]
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc, no-any-return]


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


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
