from typing import Any

from django_celery_beat.models import IntervalSchedule, PeriodicTask
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from lookout.api.input import CrontabField, RejectUnknownFieldsMixin, StrictIntegerField, TimeZoneField
from lookout.scheduling import periodic_tasks

PERIODS = [IntervalSchedule.SECONDS, IntervalSchedule.MINUTES, IntervalSchedule.HOURS, IntervalSchedule.DAYS]


class IntervalSerializer(RejectUnknownFieldsMixin, serializers.Serializer[Any]):
    every = StrictIntegerField(min_value=1, max_value=10**6)
    period = serializers.ChoiceField(choices=PERIODS)


@extend_schema_serializer(examples=[
    OpenApiExample("Nightly prune", request_only=True,
                   value={"name": "nightly results prune", "task": "lookout.stats.tasks.results_prune",
                          "crontab": "0 4 * * *", "timezone": "UTC"}),
])
class PeriodicTaskSerializer(RejectUnknownFieldsMixin, serializers.Serializer[Any]):
    """A django-celery-beat periodic task: exactly one of `interval` and `crontab`."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=200, help_text="Unique; set at creation.")
    task = serializers.CharField(max_length=200, help_text="An allowlisted task name; set at creation.")
    interval = IntervalSerializer(allow_null=True, required=False, help_text='e.g. {"every": 1, "period": "hours"}')
    crontab = CrontabField(allow_null=True, required=False, help_text="5-field crontab, e.g. '0 4 * * *'")
    # Null in a representation without a crontab; null in a request is the default, so a representation can be
    # sent back as it is.
    timezone = TimeZoneField(required=False, allow_null=True,
                             help_text="IANA zone of `crontab` (null or absent: UTC); null without a crontab.")
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    expire_seconds = serializers.IntegerField(read_only=True, allow_null=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    total_run_count = serializers.IntegerField(read_only=True)
    monitor = serializers.SerializerMethodField(help_text="The monitor owning this task (change it there), or null.")
    builtin = serializers.SerializerMethodField(help_text="Created by `lookout migrate`; can be disabled, not deleted.")

    def get_monitor(self, task: PeriodicTask) -> int | None:
        return getattr(task, "monitor_id", None)

    def get_builtin(self, task: PeriodicTask) -> bool:
        return periodic_tasks.builtin(task)

    def to_representation(self, task: PeriodicTask) -> dict[str, Any]:
        data = super().to_representation(task)
        interval, crontab = task.interval, task.crontab  # no query for a null one
        data["interval"] = {"every": interval.every, "period": interval.period} if interval is not None else None
        data["crontab"] = periodic_tasks.task_crontab(task)
        data["timezone"] = str(crontab.timezone) if crontab is not None else None
        return data

    def validate_task(self, value: str) -> str:
        allowed = periodic_tasks.allowed_tasks()
        if value not in allowed:
            raise serializers.ValidationError(
                f"Unknown task {value!r}: periodic tasks may run only {', '.join(sorted(allowed))} "
                "(a monitor's probes are scheduled through the monitor).")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "timezone" in attrs and attrs["timezone"] is None:
            del attrs["timezone"]  # the default on creation, unchanged on a change
        instance: PeriodicTask | None = self.instance
        if instance is not None:
            for name in ("name", "task"):
                if name in attrs and attrs[name] != getattr(instance, name):
                    raise serializers.ValidationError({name: ["Set at creation; create a new periodic task instead."]})
        interval = attrs["interval"] if "interval" in attrs else (
            periodic_tasks.task_interval(instance) if instance else None)
        crontab = attrs["crontab"] if "crontab" in attrs else (
            periodic_tasks.task_crontab(instance) if instance else None)
        if (interval is None) == (crontab is None):
            raise serializers.ValidationError({"interval": [
                "Give exactly one of `interval` ({every, period}) or `crontab`; send null for the other."]})
        return attrs
