"""Per-owner monitor counts (lookout.monitors.models.OwnerMonitorCount), filled from the existing monitors.

Written beside 0010 (on 0009), re-pointed at 0010 when main with 0010 was merged in.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def counts_fill(apps, schema_editor):
    # One INSERT ... SELECT ... GROUP BY: a million monitors are one index-only scan, not a million saves.
    Monitor = apps.get_model("monitors", "Monitor")
    Count = apps.get_model("monitors", "OwnerMonitorCount")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {Count._meta.db_table} (owner_id, monitors) "
                       f"SELECT owner_id, count(*) FROM {Monitor._meta.db_table} GROUP BY owner_id")


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('monitors', '0010_monitor_metrics'),
    ]

    operations = [
        migrations.CreateModel(
            name='OwnerMonitorCount',
            fields=[
                ('owner', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                               related_name='monitor_count', serialize=False,
                                               to=settings.AUTH_USER_MODEL)),
                ('monitors', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(counts_fill, migrations.RunPython.noop),
    ]
