"""Lookout's beat scheduler: django-celery-beat's DatabaseScheduler, reading the same PeriodicTask rows.

It adds what probes need on top of the stock scheduler: every crontab probe message expires before its
next run is due (interval probes carry their interval as `expire_seconds` on the row).
"""

from datetime import UTC, datetime

from celery.schedules import crontab
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry


def seconds_until_next_run(schedule: crontab, now: datetime) -> float:
    return max(1.0, schedule.remaining_estimate(now).total_seconds())


class LookoutScheduler(DatabaseScheduler):
    def reserve(self, entry: ModelEntry) -> ModelEntry:
        # reserve() builds the entry that is sent, afresh from its row: set this run's expiry on it.
        new_entry = super().reserve(entry)
        if isinstance(new_entry.schedule, crontab) and "expires" not in new_entry.options:
            new_entry.options["expires"] = seconds_until_next_run(new_entry.schedule, datetime.now(UTC))
        return new_entry
