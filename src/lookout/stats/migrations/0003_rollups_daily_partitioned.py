"""Rollups: one column per latency bucket (instead of a JSON list), a daily level, both tables partitioned on
PostgreSQL (hourly rows by UTC day, daily rows by UTC month; SQLite keeps plain tables).

On PostgreSQL the hourly rollups of the last LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS are copied into the new
partitioned table, and every whole day already rolled up gets its daily rows from the old hourly ones (of any
age, so no statistics are lost), in this migration's transaction: the rollup task and the stats endpoint wait
meanwhile (roughly a minute per 10-20M hourly rows on a 2-vCPU machine). Reversed, the hourly rollups get their
JSON list back from the bucket columns and the daily level is dropped; on PostgreSQL the hourly table stays
partitioned, with a default partition so that the older code can write any hour.
Self-contained on purpose: lookout.stats.partitions may change, what this migration did may not.
"""

from datetime import UTC, date, datetime, timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

BUCKETS = 49
FIELDS = [f"bucket_{index}" for index in range(BUCKETS)]
COUNTS = ["checks", "failures", "latency_count", "latency_sum_ms", *FIELDS]
HOURLY, DAILY = "stats_resultrollup", "stats_dailyrollup"
DAYS_AHEAD = 2


def _bucket_fields() -> "list[tuple[str, models.PositiveIntegerField[int | None, int | None]]]":
    return [(field, models.PositiveIntegerField(blank=True, null=True)) for field in FIELDS]


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _utc(day: date) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


def _keys_move_aside(cursor, table: str, old: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Rename the table to `old` and drop its unique and foreign keys and its indexes (their names are to be
    reused by the replacement); returns their definitions, (name, definition) each."""
    cursor.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                   "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')", [table])
    constraints = cursor.fetchall()
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
                   "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)", [table, table])
    indexes = cursor.fetchall()
    cursor.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE "{old}" DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    return constraints, indexes


def _partition(cursor, table: str, key: str) -> None:
    """Replace the (Django-made) table by a partitioned one of the same columns, constraints and indexes; the old
    one stays as <table>_unpartitioned, its rows to copy."""
    old = f"{table}_unpartitioned"
    constraints, indexes = _keys_move_aside(cursor, table, old)
    cursor.execute(f'ALTER TABLE "{old}" RENAME CONSTRAINT "{table}_pkey" TO "{old}_pkey"')
    cursor.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                   f'PARTITION BY RANGE ("{key}")')
    # No identity column on a partitioned table (PostgreSQL 15): ids from a sequence of its own.
    cursor.execute(f'CREATE SEQUENCE "{table}_ids" OWNED BY "{table}".id')
    cursor.execute(f"ALTER TABLE \"{table}\" ALTER COLUMN id SET DEFAULT nextval('{table}_ids')")
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id, "{key}")')
    for name, definition in constraints:
        # Not deferred: only the rollup task writes here, and a partition with pending trigger events could
        # not be dropped by retention in the same transaction.
        definition = definition.replace(" DEFERRABLE INITIALLY DEFERRED", "")
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition.replace(f"public.{old} ", f"public.{table} ").replace(f" {old} ", f" {table} "))


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        _forwards_plain(apps)
        return
    # Django adds the new table's foreign key and indexes at the migration's end: now, so they are copied below.
    for statement in schema_editor.deferred_sql:
        schema_editor.execute(statement)
    schema_editor.deferred_sql.clear()
    today = timezone.now().astimezone(UTC).date()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT rolled_until FROM stats_rollupprogress WHERE id = 1")
        row = cursor.fetchone()
        daily_until = row[0].astimezone(UTC).date() if row else None  # days before it are wholly rolled up
        cursor.execute(f'SELECT min(hour) FROM "{HOURLY}"')
        oldest = cursor.fetchone()[0]
        oldest = oldest.astimezone(UTC).date() if oldest else today
        _partition(cursor, HOURLY, "hour")
        _partition(cursor, DAILY, "day")
        cursor.execute(f'ALTER TABLE "{HOURLY}" DROP COLUMN latency_buckets')

        first = max(oldest, today - timedelta(days=settings.LOOKOUT_HOURLY_ROLLUP_RETENTION_DAYS + 1))
        day = first
        while day <= today + timedelta(days=DAYS_AHEAD):
            cursor.execute(f'CREATE TABLE "{HOURLY}_p{day:%Y%m%d}" PARTITION OF "{HOURLY}" '
                           f"FOR VALUES FROM ('{_utc(day)}') TO ('{_utc(day + timedelta(days=1))}')")
            day += timedelta(days=1)
        month = oldest.replace(day=1)
        while month <= today + timedelta(days=DAYS_AHEAD):
            cursor.execute(f'CREATE TABLE "{DAILY}_p{month:%Y%m}" PARTITION OF "{DAILY}" '
                           f"FOR VALUES FROM ('{month}') TO ('{_next_month(month)}')")
            month = _next_month(month)

        extract = ", ".join(f"nullif((latency_buckets->>{index})::int, 0)" for index in range(BUCKETS))
        cursor.execute(f'INSERT INTO "{HOURLY}" (id, monitor_id, hour, region, {", ".join(COUNTS)}) '
                       f"SELECT id, monitor_id, hour, region, checks, failures, latency_count, latency_sum_ms, "
                       f'{extract} FROM "{HOURLY}_unpartitioned" WHERE hour >= %s', [_utc(first)])
        if daily_until:
            sums = ", ".join(f"nullif(sum((latency_buckets->>{index})::int), 0)" for index in range(BUCKETS))
            cursor.execute(f'INSERT INTO "{DAILY}" (monitor_id, day, region, {", ".join(COUNTS)}) '
                           f"SELECT monitor_id, (hour AT TIME ZONE 'UTC')::date, region, sum(checks), "
                           f"sum(failures), sum(latency_count), sum(latency_sum_ms), {sums} "
                           f'FROM "{HOURLY}_unpartitioned" WHERE hour < %s GROUP BY 1, 2, 3',
                           [_utc(daily_until)])
        cursor.execute(f'SELECT coalesce(max(id), 0) + 1 FROM "{HOURLY}_unpartitioned"')
        cursor.execute(f"SELECT setval('{HOURLY}_ids', %s, false)", [cursor.fetchone()[0]])
        cursor.execute(f'DROP TABLE "{HOURLY}_unpartitioned"')
        cursor.execute(f'DROP TABLE "{DAILY}_unpartitioned"')


def _forwards_plain(apps) -> None:
    ResultRollup = apps.get_model("stats", "ResultRollup")
    DailyRollup = apps.get_model("stats", "DailyRollup")
    progress = apps.get_model("stats", "RollupProgress").objects.filter(pk=1).first()
    days: dict[tuple[int, date, str], dict[str, float]] = {}
    for rollup in ResultRollup.objects.all():
        for field, count in zip(FIELDS, rollup.latency_buckets, strict=True):
            setattr(rollup, field, count or None)
        rollup.save(update_fields=FIELDS)
        if progress and rollup.hour < progress.rolled_until.replace(hour=0, minute=0, second=0, microsecond=0):
            total = days.setdefault((rollup.monitor_id, rollup.hour.astimezone(UTC).date(), rollup.region), {})
            for column in COUNTS:
                total[column] = total.get(column, 0) + (getattr(rollup, column) or 0)
    DailyRollup.objects.bulk_create([
        DailyRollup(monitor_id=monitor_id, day=day, region=region,
                    **{column: (value or None) if column in FIELDS else value for column, value in total.items()})
        for (monitor_id, day, region), total in days.items()])


def backwards(apps, schema_editor):
    """The JSON list of 0001 filled from the bucket columns (added back, empty, by the operation reversed before)."""
    if schema_editor.connection.vendor != "postgresql":
        ResultRollup = apps.get_model("stats", "ResultRollup")
        for rollup in ResultRollup.objects.all():
            rollup.latency_buckets = [getattr(rollup, field) or 0 for field in FIELDS]
            rollup.save(update_fields=["latency_buckets"])
        return
    buckets = ", ".join(f"coalesce({field}, 0)" for field in FIELDS)
    with schema_editor.connection.cursor() as cursor:
        _unpartition(cursor, HOURLY)
        cursor.execute(f'UPDATE "{HOURLY}" SET latency_buckets = jsonb_build_array({buckets})')


def _unpartition(cursor, table: str) -> None:
    """_partition undone: a plain table of the same columns, constraints and indexes, ids from an identity column
    again (as Django made it), the rows copied."""
    old = f"{table}_partitioned"
    constraints, indexes = _keys_move_aside(cursor, table, old)
    cursor.execute(f'ALTER TABLE "{old}" DROP CONSTRAINT "{table}_pkey"')
    cursor.execute(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING CONSTRAINTS)')
    cursor.execute(f'INSERT INTO "{table}" SELECT * FROM "{old}"')
    cursor.execute(f'DROP TABLE "{old}"')  # with its partitions and its id sequence
    cursor.execute(f'ALTER TABLE "{table}" ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY')
    cursor.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), coalesce(max(id), 0) + 1, false) "
                   f'FROM "{table}"')
    cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_pkey" PRIMARY KEY (id)')
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition.replace(f"public.{old} ", f"public.{table} ").replace(f" {old} ", f" {table} "))


def latency_buckets_add(apps, schema_editor):
    """Reversing the column's removal: an empty list in every row until `backwards` fills it."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE \"{HOURLY}\" ADD COLUMN latency_buckets jsonb NOT NULL DEFAULT '[]'")
        schema_editor.execute(f'ALTER TABLE "{HOURLY}" ALTER COLUMN latency_buckets DROP DEFAULT')
        return
    field = models.JSONField(default=list)
    field.set_attributes_from_name("latency_buckets")
    schema_editor.add_field(apps.get_model("stats", "ResultRollup"), field)


def latency_buckets_remove(apps, schema_editor):
    # On PostgreSQL the column is gone already (the new table never had it).
    if schema_editor.connection.vendor != "postgresql":
        model = apps.get_model("stats", "ResultRollup")
        schema_editor.remove_field(model, model._meta.get_field("latency_buckets"))


class Migration(migrations.Migration):

    dependencies = [
        ('monitors', '0009_regions'),
        ('stats', '0002_stats_rollup_region'),
    ]

    operations = [
        *[migrations.AddField(model_name='resultrollup', name=field, field=definition)
          for field, definition in _bucket_fields()],
        migrations.CreateModel(
            name='DailyRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('region', models.CharField(blank=True, default='', max_length=32)),
                ('checks', models.PositiveIntegerField()),
                ('failures', models.PositiveIntegerField()),
                ('latency_count', models.PositiveIntegerField()),
                ('latency_sum_ms', models.FloatField()),
                *_bucket_fields(),
                ('day', models.DateField(help_text='The UTC day.')),
                ('monitor', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name='daily_rollups', to='monitors.monitor')),
            ],
            options={
                'ordering': ['monitor', 'day'],
                'constraints': [models.UniqueConstraint(fields=('monitor', 'day', 'region'),
                                                        name='daily_rollup_once_per_monitor_day_region')],
            },
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.RemoveField(model_name='resultrollup', name='latency_buckets')],
            database_operations=[migrations.RunPython(latency_buckets_remove, latency_buckets_add)],
        ),
    ]
