"""Rendering: serializers whose read fields are built once per class, not once per request."""

from collections.abc import Callable
from typing import Any

from rest_framework import serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

# The stock fields whose representation of a value of exactly this type is the value itself (str(s) is s,
# int(i) is i...); of any other type (an int for a FloatField: 5 is not 5.0 in JSON) the field's own.
_SAME_VALUE: dict[Callable[..., Any], type] = {
    serializers.CharField.to_representation: str,
    serializers.IntegerField.to_representation: int,
    serializers.FloatField.to_representation: float,
    serializers.BooleanField.to_representation: bool,
}

_Plan = list[tuple[str, Field[Any, Any, Any, Any], str | None, type | None]]
_PLANS: dict[type, _Plan] = {}


class FieldsOnceMixin:
    """A representation rendered through read fields built once per serializer class.

    DRF builds a serializer's fields anew for every serializer it makes (a ModelSerializer's from the model, each
    declared field deep-copied): ~2 ms for a monitor's 45 fields, a quarter of a detail request's CPU. The same
    fields render the same way, so one built set serves every request; only method fields (which read the
    request's context) are called on the serializer at hand. A plain attribute already of the type its stock
    field renders is taken as it is (a list page walks 45 fields of 50 monitors). Fields that take part in
    validation are still this serializer's own (`self.fields`), and a serializer that changes its fields per
    request must not use this.
    """

    def to_representation(self, instance: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for name, field, attribute_name, same in _plan(type(self)):
            if same is not None:
                try:
                    value = getattr(instance, attribute_name)  # type: ignore[arg-type]
                except AttributeError:
                    pass  # what DRF does about it (a default, None, skipped or an error) below
                else:
                    answer[name] = value if value is None or type(value) is same else field.to_representation(value)
                    continue
            elif isinstance(field, serializers.SerializerMethodField):
                answer[name] = getattr(self, field.method_name)(instance)
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


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:  # two threads may both build it: the same plan, one of them kept
        plan = _PLANS[cls] = [
            (name, field, field.source_attrs[0] if len(field.source_attrs) == 1 else None,
             _SAME_VALUE.get(type(field).to_representation) if len(field.source_attrs) == 1 else None)
            for name, field in cls().fields.items() if not field.write_only]
    return plan
