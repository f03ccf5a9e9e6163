"""Crontabs saved before the strict rules (lookout.core.crontab) rewritten as what Celery's parser made of them,
so every stored one passes the rules an edit applies and reads as what it runs: `*/5/2 * * * *` ran every
5 minutes and now says `*/5 * * * *`. Valid crontabs stay as they were written."""

import logging

from django.db import migrations

from lookout.core.crontab import crontab_as_celery_reads

logger = logging.getLogger("lookout.migrations")

CRON_MAX_LENGTH = 120  # Monitor.cron's


def _rewritten(cron: str, *, what: str) -> str | None:
    """The strict spelling of a crontab that fails the rules, or None where it passes them or cannot be kept."""
    try:
        spelled = crontab_as_celery_reads(cron)
    except ValueError:
        logger.warning("%s: crontab %r is not one Celery can parse either; left as it is", what, cron)
        return None
    if spelled == cron:
        return None
    if len(spelled) > CRON_MAX_LENGTH:
        logger.warning("%s: crontab %r spelled out is too long (%r); left as it is", what, cron, spelled)
        return None
    logger.warning("%s: crontab %r rewritten as %r (what it ran as)", what, cron, spelled)
    return spelled


def crontabs_rewrite(apps, schema_editor):
    Monitor = apps.get_model("monitors", "Monitor")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    for monitor in Monitor.objects.filter(cron__isnull=False).only("pk", "cron"):
        spelled = _rewritten(monitor.cron, what=f"monitor {monitor.pk}")
        if spelled is not None:
            Monitor.objects.filter(pk=monitor.pk).update(cron=spelled)
    # The schedules beat runs (a monitor's and those of /periodic-tasks/): same meaning, so in place even where
    # several tasks share one.
    fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    for schedule in CrontabSchedule.objects.all():
        cron = " ".join(getattr(schedule, name) for name in fields)
        spelled = _rewritten(cron, what=f"crontab schedule {schedule.pk}")
        if spelled is not None:
            CrontabSchedule.objects.filter(pk=schedule.pk).update(**dict(zip(fields, spelled.split(), strict=True)))


class Migration(migrations.Migration):
    dependencies = [("monitors", "0007_proberesult_task_id"), ("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(crontabs_rewrite, migrations.RunPython.noop)]
