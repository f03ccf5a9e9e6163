"""Probe results become a table partitioned by day on checked_at (PostgreSQL only; SQLite keeps a plain table).

The existing rows are copied into the new table in this migration's transaction: writes of results wait
meanwhile (roughly a minute per few million rows), and a write already waiting when it commits fails once.
Self-contained on purpose: lookout.monitors.partitions may change, what this migration did may not.
"""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

TABLE = "monitors_proberesult"
OLD = f"{TABLE}_unpartitioned"
SEQUENCE = f"{TABLE}_id_seq"
DAYS_AHEAD = 7
# The names Django gave these in 0001/0002, kept so later migrations find them.
INDEXES = {
    "monitors_pr_monitor_278c71_idx": "(monitor_id, checked_at DESC)",
    "monitors_pr_checked_cdde41_idx": "(checked_at)",
}
FOREIGN_KEY = "monitors_proberesult_monitor_id_c3bad37d_fk_monitors_monitor_id"


def _bound(day) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    today = timezone.now().astimezone(UTC).date()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'SELECT min(checked_at) FROM "{TABLE}"')
        oldest = cursor.fetchone()[0]
        # Partitions for the days retention keeps and a week ahead; older rows go to the default partition,
        # where retention deletes them row by row.
        first = today - timedelta(days=settings.LOOKOUT_RESULTS_RETENTION_DAYS + 1)
        first = max(first, oldest.astimezone(UTC).date()) if oldest else today
        cursor.execute(f"SELECT pg_get_serial_sequence('{TABLE}', 'id')")
        old_sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")
        last_value, is_called = cursor.fetchone()

        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        # LIKE: the same columns in the same order, NOT NULL and CHECK constraints; no identity (PostgreSQL 15
        # has none on partitioned tables), no keys or indexes (made once the rows are in: faster).
        cursor.execute(f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                       f"PARTITION BY RANGE (checked_at)")
        # The old id default (if not an identity) names the old sequence, which goes with the old table.
        cursor.execute(f'ALTER TABLE "{TABLE}" ALTER COLUMN id DROP DEFAULT')
        cursor.execute(f'CREATE TABLE "{TABLE}_default" PARTITION OF "{TABLE}" DEFAULT')
        day = first
        while day <= today + timedelta(days=DAYS_AHEAD):
            cursor.execute(f"CREATE TABLE \"{TABLE}_p{day:%Y%m%d}\" PARTITION OF \"{TABLE}\" "
                           f"FOR VALUES FROM ('{_bound(day)}') TO ('{_bound(day + timedelta(days=1))}')")
            day += timedelta(days=1)
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"')
        cursor.execute(f'DROP TABLE "{OLD}"')  # and its sequence

        cursor.execute(f'SELECT max(id) FROM "{TABLE}"')
        highest = cursor.fetchone()[0] or 0
        cursor.execute(f'CREATE SEQUENCE "{SEQUENCE}" OWNED BY "{TABLE}".id')
        # Ids go on from where the old sequence was: an id handed out once (e.g. in a task result) stays unique.
        next_id = max(last_value + 1 if is_called else last_value, highest + 1)
        cursor.execute("SELECT setval(%s, %s, false)", [SEQUENCE, next_id])
        cursor.execute(f"ALTER TABLE \"{TABLE}\" ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')")
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id, checked_at)')
        for name, columns in INDEXES.items():
            cursor.execute(f'CREATE INDEX "{name}" ON "{TABLE}" {columns}')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{FOREIGN_KEY}" FOREIGN KEY (monitor_id) '
                       f'REFERENCES "monitors_monitor" (id) DEFERRABLE INITIALLY DEFERRED')


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        cursor.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT "{TABLE}_pkey"')
        cursor.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT "{FOREIGN_KEY}"')
        for name in INDEXES:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"')
        cursor.execute(f'ALTER SEQUENCE "{SEQUENCE}" OWNED BY "{TABLE}".id')
        cursor.execute(f'DROP TABLE "{OLD}"')  # with its partitions
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY (id)')
        for name, columns in INDEXES.items():
            cursor.execute(f'CREATE INDEX "{name}" ON "{TABLE}" {columns}')
        cursor.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{FOREIGN_KEY}" FOREIGN KEY (monitor_id) '
                       f'REFERENCES "monitors_monitor" (id) DEFERRABLE INITIALLY DEFERRED')


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0003_state_machine_channels'),
    ]

    operations = [
        # (monitor, -checked_at) serves every lookup by monitor: one index less on the busiest table.
        migrations.AlterField(
            model_name='proberesult',
            name='monitor',
            field=models.ForeignKey(db_index=False, on_delete=models.deletion.CASCADE, related_name='results',
                                    to='monitors.monitor'),
        ),
        migrations.RunPython(partition, unpartition),
    ]
