"""Rendering: serializers whose read fields are built once per class, not once per request."""

from typing import Any

from rest_framework import serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

_READABLE: dict[type, list[tuple[str, Field[Any, Any, Any, Any]]]] = {}


class FieldsOnceMixin:
    """A representation rendered through read fields built once per serializer class.

    DRF builds a serializer's fields anew for every serializer it makes (a ModelSerializer's from the model, each
    declared field deep-copied): ~2 ms for a monitor's 45 fields, a quarter of a detail request's CPU. The same
    fields render the same way, so one built set serves every request; only method fields (which read the
    request's context) are called on the serializer at hand. Fields that take part in validation are still this
    serializer's own (`self.fields`), and a serializer that changes its fields per request must not use this.
    """

    def to_representation(self, instance: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for name, field in _readable_fields(type(self)):
            if isinstance(field, serializers.SerializerMethodField):
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


def _readable_fields(cls: type) -> list[tuple[str, Field[Any, Any, Any, Any]]]:
    fields = _READABLE.get(cls)
    if fields is None:  # two threads may both build it: the same fields, one of them kept
        fields = _READABLE[cls] = [(name, field) for name, field in cls().fields.items() if not field.write_only]
    return fields
