"""DRF's authtoken keys become hashed API tokens (the same key keeps working, scope write, named "migrated"); then
DRF's table, which holds every key in plain text, is dropped.

rest_framework.authtoken is no longer installed, so its table is read with SQL when it exists (a database from
before this migration) and nothing happens when it does not (a new one). Its migration records go too: installing
the app again later then creates its table afresh instead of finding it "applied" and missing.

Not reversible in substance: the plain keys are gone. Going back keeps the hashed tokens and recreates nothing.
"""

import hashlib
from datetime import UTC, datetime

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"


def tokens_from_authtoken(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} FROM {quote(LEGACY_TABLE)}")
        rows = cursor.fetchall()
    ApiToken = apps.get_model("accounts", "ApiToken")
    migrated_at = datetime.now(UTC)
    ApiToken.objects.bulk_create([
        ApiToken(owner_id=user_id, name="migrated", scope="write", prefix=key[:10],
                 digest=hashlib.sha256(key.encode()).hexdigest(),
                 created_at=_aware(created) or migrated_at)
        for key, user_id, created in rows
    ])
    schema_editor.execute(f"DROP TABLE {quote(LEGACY_TABLE)}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


def _aware(created: datetime | str | None) -> datetime | None:
    # SQLite hands raw SQL's timestamps back as text, in UTC without an offset.
    value = parse_datetime(created) if isinstance(created, str) else created
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(tokens_from_authtoken, migrations.RunPython.noop)]
