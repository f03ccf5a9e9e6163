"""accounts' migration 0002 on a database from before it: DRF's authtoken rows become hashed write tokens whose
keys keep working, and DRF's table of plain-text keys is dropped."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from rest_framework.test import APIClient

from lookout.accounts.keys import key_digest
from lookout.accounts.models import ApiToken

LEGACY_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # DRF's format: 40 hex digits
# What DRF's authtoken migrations 0001-0004 leave on PostgreSQL (`sqlmigrate authtoken 0001` under the old code).
# Written out: the app is no longer installed, and its models cannot be installed again inside a running process.
LEGACY_SCHEMA = """
    CREATE TABLE "authtoken_token" (
        "key" varchar(40) NOT NULL PRIMARY KEY, "created" timestamp with time zone NOT NULL,
        "user_id" integer NOT NULL UNIQUE
            CONSTRAINT "authtoken_token_user_id_35299eff_fk_auth_user_id" REFERENCES "auth_user" ("id")
            DEFERRABLE INITIALLY DEFERRED)
"""
LEGACY_MIGRATIONS = ["0001_initial", "0002_auto_20160226_1747", "0003_tokenproxy", "0004_alter_tokenproxy_options"]


def migrate(targets: list[tuple[str, str]] | None = None) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets or executor.loader.graph.leaf_nodes())
    return executor


def legacy_table_exists() -> bool:
    return "authtoken_token" in connection.introspection.table_names()


@pytest.fixture
def database_before_the_migration(django_user_model):
    """As upgraded installations are: DRF's authtoken migrated, with a token row, and accounts at 0001."""
    migrate([("accounts", "0001_initial")])
    owner = django_user_model.objects.create_user(username="old", password="old-password-1")
    with connection.cursor() as cursor:
        cursor.execute(LEGACY_SCHEMA)
        cursor.execute('INSERT INTO "authtoken_token" ("key", "created", "user_id") VALUES (%s, %s, %s)',
                       [LEGACY_KEY, datetime(2025, 5, 1, 12, 0, tzinfo=UTC), owner.pk])
    recorder = MigrationRecorder(connection)
    for name in LEGACY_MIGRATIONS:
        recorder.record_applied("authtoken", name)
    yield owner
    with connection.cursor() as cursor:  # whatever happened, later tests find a database without DRF's table
        cursor.execute("DROP TABLE IF EXISTS authtoken_token")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()
    migrate()


@pytest.mark.django_db(transaction=True)
def test_an_authtoken_key_becomes_a_hashed_write_token_that_keeps_working(database_before_the_migration):
    owner = database_before_the_migration

    migrate()

    token = ApiToken.objects.get()
    assert (token.owner_id, token.name, token.scope, token.expires_at) == (owner.pk, "migrated", "write", None)
    assert token.digest == key_digest(LEGACY_KEY) and token.prefix == LEGACY_KEY[:10]
    assert token.created_at == datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {LEGACY_KEY}")
    assert client.post("/api/v1/monitors/", {"name": "old", "url": "https://old.example/", "interval": 60},
                       format="json").status_code == 201


@pytest.mark.django_db(transaction=True)
def test_the_plain_text_keys_are_dropped_with_drfs_table_and_its_migration_records(database_before_the_migration):
    assert legacy_table_exists()

    migrate()

    assert not legacy_table_exists()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_that_never_had_authtoken_migrates_with_nothing_to_convert():
    migrate([("accounts", "0001_initial")])

    migrate()

    assert not legacy_table_exists() and ApiToken.objects.count() == 0
