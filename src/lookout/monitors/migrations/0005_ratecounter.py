"""Fixed-window counters for API throttling, instead of DRF's history lists in Django's database cache."""

from django.db import migrations, models

TABLE = "monitors_ratecounter"


def unlogged(apps, schema_editor):
    # Counters are rewritten on every API request: without WAL each upsert commits without waiting for a
    # flush to disk, and a crash only resets them (PostgreSQL truncates unlogged tables on recovery).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'ALTER TABLE "{TABLE}" SET UNLOGGED')


class Migration(migrations.Migration):
    dependencies = [("monitors", "0004_proberesult_partitioned")]

    operations = [
        migrations.CreateModel(
            name="RateCounter",
            fields=[
                ("key", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("window_end", models.BigIntegerField(help_text="Unix time the current window ends at.")),
                ("hits", models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(unlogged, migrations.RunPython.noop, elidable=True),
    ]
