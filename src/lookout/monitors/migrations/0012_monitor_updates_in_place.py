"""Recording a result updates its monitor's row in place (issue 18, bench/README.md "Recording results").

- The failing monitors' partial index is keyed on id instead of last_checked_at, which every result changes: with
  no indexed column changed, PostgreSQL updates a healthy monitor's row in place (HOT), adding nothing to the
  table's indexes.
- The monitors table leaves a fifth of each page free (fillfactor 80), so the new row version finds room on its page.
  Applies to pages written from now on (a VACUUM FULL would rewrite the table under an exclusive lock; not done
  here, on a table the workers write every second).
- Results keep no foreign key in the database: recording inserts them under the monitor's row lock, and deleting
  a monitor takes that lock first (Django cascades the delete).
"""

import django.db.models.deletion
from django.db import migrations, models

TABLE = "monitors_monitor"


def fillfactor_set(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{TABLE}" SET (fillfactor = 80)')


def fillfactor_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{TABLE}" RESET (fillfactor)')


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0011_ownermonitorcount'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='monitor',
            name='monitor_failing_idx',
        ),
        migrations.AddIndex(
            model_name='monitor',
            index=models.Index(condition=models.Q(('consecutive_failures__gt', 0), ('enabled', True)), fields=['id'],
                               name='monitor_failing_idx'),
        ),
        migrations.AlterField(
            model_name='proberesult',
            name='monitor',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='results', to='monitors.monitor'),
        ),
        migrations.RunPython(fillfactor_set, fillfactor_reset),
    ]
