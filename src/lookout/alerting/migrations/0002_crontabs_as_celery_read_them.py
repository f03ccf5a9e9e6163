"""Recurring maintenance windows saved before the strict crontab rules, rewritten as what Celery's parser made of
them (as monitors/0008 does for monitors): each is evaluated by the strict parser, which would refuse them."""

import logging

from django.db import migrations

from lookout.core.crontab import crontab_as_celery_reads

logger = logging.getLogger("lookout.migrations")

CRON_MAX_LENGTH = 120  # MaintenanceWindow.cron's


def windows_rewrite(apps, schema_editor):
    MaintenanceWindow = apps.get_model("alerting", "MaintenanceWindow")
    for window in MaintenanceWindow.objects.filter(cron__isnull=False).only("pk", "cron"):
        try:
            spelled = crontab_as_celery_reads(window.cron)
        except ValueError:
            logger.warning("maintenance window %s: crontab %r is not one Celery can parse either", window.pk,
                           window.cron)
            continue
        if spelled != window.cron and len(spelled) <= CRON_MAX_LENGTH:
            logger.warning("maintenance window %s: crontab %r rewritten as %r", window.pk, window.cron, spelled)
            MaintenanceWindow.objects.filter(pk=window.pk).update(cron=spelled)


class Migration(migrations.Migration):
    dependencies = [("alerting", "0001_initial")]

    operations = [migrations.RunPython(windows_rewrite, migrations.RunPython.noop)]
