"""The migration to the strict crontab rules: what was saved before them is rewritten as what it ran as."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from lookout.alerting.models import MaintenanceWindow
from lookout.core.crontab import crontab_fields
from lookout.monitors.models import Monitor

BEFORE = [("monitors", "0007_proberesult_task_id"), ("alerting", "0001_initial")]


@pytest.mark.django_db(transaction=True)
def test_crontabs_saved_before_the_strict_rules_are_rewritten_as_what_they_ran_as_and_valid_ones_stay():
    executor = MigrationExecutor(connection)
    after = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    User, PeriodicTask = old.get_model("auth", "User"), old.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = old.get_model("django_celery_beat", "CrontabSchedule")
    OldMonitor, OldWindow = old.get_model("monitors", "Monitor"), old.get_model("alerting", "MaintenanceWindow")
    owner = User.objects.create(username="old")
    schedules = {cron: CrontabSchedule.objects.create(**dict(zip(
        ("minute", "hour", "day_of_month", "month_of_year", "day_of_week"), cron.split(), strict=True)))
        for cron in ("*/5/2 * * * *", "0 4 * * 1-5")}
    monitors = {cron: OldMonitor.objects.create(
        owner=owner, name=cron, url="https://old.example/", cron=cron, timeout=5,
        periodic_task=PeriodicTask.objects.create(name=f"monitor:{cron}", task="x", crontab=schedule)).pk
        for cron, schedule in schedules.items()}
    window = OldWindow.objects.create(owner=owner, cron="1-2-3 * * * *", duration_seconds=60).pk

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    assert Monitor.objects.get(pk=monitors["*/5/2 * * * *"]).cron == "*/5 * * * *"
    assert Monitor.objects.get(pk=monitors["0 4 * * 1-5"]).cron == "0 4 * * 1-5"
    rewritten = Monitor.objects.select_related("periodic_task__crontab").get(pk=monitors["*/5/2 * * * *"])
    assert rewritten.periodic_task.crontab.minute == "*/5"
    assert MaintenanceWindow.objects.get(pk=window).cron == "1-2 * * * *"
    for cron in Monitor.objects.values_list("cron", flat=True):
        crontab_fields(cron)
