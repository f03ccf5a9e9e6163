"""Rendering: serializers whose read fields are built once per class, not once per request."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rest_framework import ISO_8601, serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject
from rest_framework.settings import api_settings

# The stock fields whose representation of a value of exactly this type is the value itself (str(s) is s,
# int(i) is i...); of any other type (an int for a FloatField: 5 is not 5.0 in JSON) the field's own.
_SAME_VALUE: dict[Callable[..., Any], type] = {
    serializers.CharField.to_representation: str,
    serializers.IntegerField.to_representation: int,
    serializers.FloatField.to_representation: float,
    serializers.BooleanField.to_representation: bool,
}
_METHOD, _TIME = "method", "time"

_Plan = list[tuple[str, Field[Any, Any, Any, Any], str, type | str | None]]
_PLANS: dict[type, _Plan] = {}


class FieldsOnceMixin:
    """A representation rendered through read fields built once per serializer class.

    DRF builds a serializer's fields anew for every serializer it makes (a ModelSerializer's from the model, each
    declared field deep-copied): ~2 ms for a monitor's 45 fields, a quarter of a detail request's CPU. The same
    fields render the same way, so one built set serves every request; only method fields (which read the
    request's context) are called on the serializer at hand. A plain attribute already of the type its stock
    field renders is taken as it is, and an aware time is rendered as DRF's DateTimeField renders it, with the
    time zone looked up once per object (a list page walks 45 fields of 50 monitors). Fields that take part in
    validation are still this serializer's own (`self.fields`), and a serializer that changes its fields per
    request must not use this.
    """

    def to_representation(self, instance: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        zone = None
        for name, field, attribute_name, kind in _plan(type(self)):
            if kind is _METHOD:
                answer[name] = getattr(self, field.method_name)(instance)  # type: ignore[attr-defined]
                continue
            if kind is not None:
                try:
                    value = getattr(instance, attribute_name)
                except AttributeError:
                    pass  # what DRF does about it (a default, None, skipped or an error) below
                else:
                    if value is None or type(value) is kind:
                        answer[name] = value
                        continue
                    if kind is _TIME and isinstance(value, datetime) and value.tzinfo is not None:
                        zone = zone or field.default_timezone()  # type: ignore[attr-defined]
                        text = value.astimezone(zone).isoformat()
                        answer[name] = text[:-6] + "Z" if text.endswith("+00:00") else text
                        continue
                    answer[name] = field.to_representation(value)
                    continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            # As DRF's Serializer.to_representation: None stays None, whatever the field.
            if (attribute.pk if isinstance(attribute, PKOnlyObject) else attribute) is None:
                answer[name] = None
            else:
                answer[name] = field.to_representation(attribute)
        return answer


def _kind(field: Field[Any, Any, Any, Any]) -> type | str | None:
    if isinstance(field, serializers.SerializerMethodField):
        return _METHOD
    if len(field.source_attrs) != 1:
        return None
    render = type(field).to_representation
    if (render is serializers.DateTimeField.to_representation and not hasattr(field, "format")
            and not hasattr(field, "timezone") and api_settings.DATETIME_FORMAT == ISO_8601):
        return _TIME
    return _SAME_VALUE.get(render)


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:  # two threads may both build it: the same plan, one of them kept
        plan = _PLANS[cls] = [(name, field, field.source_attrs[0] if field.source_attrs else name, _kind(field))
                              for name, field in cls().fields.items() if not field.write_only]
    return plan
