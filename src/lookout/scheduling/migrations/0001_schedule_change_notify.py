"""PostgreSQL triggers that tell beat which schedules changed (LISTEN lookout_schedule), whoever changed them:
the API, the admin, a bulk update or plain SQL. Beat's own bookkeeping writes are marked and not echoed.

SQLite (`lookout dev`) has no NOTIFY: beat polls django-celery-beat's change marker there.
"""

from django.db import migrations

TRIGGERS = """
CREATE OR REPLACE FUNCTION lookout_schedule_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('lookout.beat_bookkeeping', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('lookout_schedule', OLD.id::text);
    ELSE
        PERFORM pg_notify('lookout_schedule', NEW.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION lookout_schedule_definition_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lookout_schedule', '*');
    RETURN NULL;
END $$;

CREATE TRIGGER lookout_schedule_row_changed
    AFTER INSERT OR UPDATE OR DELETE ON django_celery_beat_periodictask
    FOR EACH ROW EXECUTE FUNCTION lookout_schedule_row_changed();
CREATE TRIGGER lookout_schedule_interval_changed AFTER UPDATE ON django_celery_beat_intervalschedule
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_schedule_definition_changed();
CREATE TRIGGER lookout_schedule_crontab_changed AFTER UPDATE ON django_celery_beat_crontabschedule
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_schedule_definition_changed();
CREATE TRIGGER lookout_schedule_solar_changed AFTER UPDATE ON django_celery_beat_solarschedule
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_schedule_definition_changed();
CREATE TRIGGER lookout_schedule_clocked_changed AFTER UPDATE ON django_celery_beat_clockedschedule
    FOR EACH STATEMENT EXECUTE FUNCTION lookout_schedule_definition_changed();
"""

DROP = """
DROP TRIGGER IF EXISTS lookout_schedule_row_changed ON django_celery_beat_periodictask;
DROP TRIGGER IF EXISTS lookout_schedule_interval_changed ON django_celery_beat_intervalschedule;
DROP TRIGGER IF EXISTS lookout_schedule_crontab_changed ON django_celery_beat_crontabschedule;
DROP TRIGGER IF EXISTS lookout_schedule_solar_changed ON django_celery_beat_solarschedule;
DROP TRIGGER IF EXISTS lookout_schedule_clocked_changed ON django_celery_beat_clockedschedule;
DROP FUNCTION IF EXISTS lookout_schedule_row_changed();
DROP FUNCTION IF EXISTS lookout_schedule_definition_changed();
"""


def triggers_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:  # no parameters: several statements in one go
            cursor.execute(TRIGGERS)


def triggers_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(triggers_create, triggers_drop)]
