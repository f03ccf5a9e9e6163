"""The periodic-task API: staff only, allowlisted task names, monitor-owned tasks untouchable, built-ins seeded."""

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec
from lookout.scheduling.periodic_tasks import periodic_tasks_seed

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/periodic-tasks/"
PRUNE = "lookout.stats.tasks.results_prune"


@pytest.fixture
def staff_api(alice, alice_api):
    alice.is_staff = True
    alice.save()
    return alice_api


@pytest.fixture
def seeded():
    return periodic_tasks_seed()


def task_named(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval", "crontab").get(name=name)


def test_migrate_seeds_the_built_in_maintenance_schedules_once_and_never_overwrites_them(settings):
    assert sorted(periodic_tasks_seed()) == sorted(settings.LOOKOUT_PERIODIC_TASKS)
    sweep = task_named("lookout.alert-sweep")
    assert (sweep.task, sweep.interval.every, sweep.interval.period, sweep.expire_seconds) == (
        "lookout.alerting.tasks.alerts_sweep", settings.LOOKOUT_ALERT_SWEEP_SECONDS, "seconds",
        settings.LOOKOUT_ALERT_SWEEP_SECONDS)
    PeriodicTask.objects.filter(name="lookout.alert-sweep").update(enabled=False)

    assert periodic_tasks_seed() == []
    assert task_named("lookout.alert-sweep").enabled is False


def test_only_staff_may_use_it(alice_api, client):
    assert client.get(TASKS).status_code == 401
    assert alice_api.get(TASKS).status_code == 403
    assert alice_api.post(TASKS, {"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours"}},
                          format="json").status_code == 403


def test_staff_list_every_periodic_task_including_monitors(staff_api, alice, seeded):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="m", url="https://example.com/", interval=60))

    listed = {t["name"]: t for t in staff_api.get(TASKS, {"page_size": 100}).json()["results"]}

    assert set(seeded) | {f"monitor:{monitor.pk}"} <= set(listed)
    probe = listed[f"monitor:{monitor.pk}"]
    assert (probe["monitor"], probe["builtin"], probe["interval"]) == (monitor.pk, False,
                                                                      {"every": 60, "period": "seconds"})
    assert listed["lookout.results-prune"]["builtin"] is True and listed["lookout.results-prune"]["monitor"] is None


def test_staff_create_change_disable_enable_and_delete_an_allowlisted_task(staff_api):
    created = staff_api.post(TASKS, {"name": "nightly prune", "task": PRUNE, "crontab": "0 4 * * *",
                                     "timezone": "Europe/Paris"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["crontab"], body["timezone"], body["interval"], body["enabled"]) == (
        "0 4 * * *", "Europe/Paris", None, True)
    url = f"{TASKS}{body['id']}/"

    changed = staff_api.patch(url, {"interval": {"every": 6, "period": "hours"}, "crontab": None}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["interval"], changed.json()["crontab"], changed.json()["expire_seconds"]) == (
        {"every": 6, "period": "hours"}, None, 21600)
    assert staff_api.post(f"{url}disable/").json()["enabled"] is False
    assert staff_api.post(f"{url}enable/").json()["enabled"] is True
    assert staff_api.delete(url).status_code == 204
    assert not PeriodicTask.objects.filter(name="nightly prune").exists()


def test_a_change_reaches_beat_and_keeps_beats_bookkeeping(staff_api, seeded):
    task = task_named("lookout.rollups-prune")
    ran_at = timezone.now()
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=ran_at, total_run_count=7)
    changed_before = PeriodicTasks.last_change()

    response = staff_api.patch(f"{TASKS}{task.pk}/", {"interval": {"every": 2, "period": "hours"}}, format="json")

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert (task.interval.every, task.interval.period, task.last_run_at, task.total_run_count) == (
        2, "hours", ran_at, 7)
    assert PeriodicTasks.last_change() > changed_before  # beat re-reads its schedule


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "task": "lookout.no.such.task", "interval": {"every": 1, "period": "hours"}}, "task"),
    ({"name": "x", "task": "lookout.probes.tasks.probe_monitor", "interval": {"every": 1, "period": "hours"}}, "task"),
    ({"name": "x", "task": PRUNE}, "interval"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours"}, "crontab": "0 4 * * *"}, "interval"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 0, "period": "hours"}}, "interval"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "fortnights"}}, "interval"),
    ({"name": "x", "task": PRUNE, "crontab": "61 4 * * *"}, "crontab"),
    ({"name": "x", "task": PRUNE, "crontab": "0 4 * * *", "timezone": "Nowhere/Town"}, "timezone"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours"}, "args": "[1]"}, "args"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours"}, "id": 999}, "id"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours"}, "total_run_count": 5},
     "total_run_count"),
    ({"name": "x", "task": PRUNE, "interval": {"every": 1, "period": "hours", "offset": 5}}, "interval"),
])
def test_bad_input_is_a_clear_400_and_creates_nothing(staff_api, body, field):
    before = PeriodicTask.objects.count()

    response = staff_api.post(TASKS, body, format="json")

    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert PeriodicTask.objects.count() == before


def test_an_unknown_task_name_says_which_ones_are_allowed(staff_api):
    response = staff_api.post(TASKS, {"name": "x", "task": "os.system", "interval": {"every": 1, "period": "hours"}},
                              format="json")
    assert "lookout.stats.tasks.results_prune" in response.json()["task"][0]


def test_a_duplicate_name_is_a_400(staff_api, seeded):
    response = staff_api.post(TASKS, {"name": "lookout.results-prune", "task": PRUNE,
                                      "interval": {"every": 1, "period": "hours"}}, format="json")
    assert response.status_code == 409 and "exists" in response.json()["detail"]
    assert response.json()["code"] == "conflict"


def test_a_monitors_task_changes_only_through_its_monitor(staff_api, alice):
    monitor = services.monitor_create(owner=alice, spec=MonitorSpec(name="m", url="https://example.com/", interval=60))
    task = monitor.periodic_task
    url = f"{TASKS}{task.pk}/"

    for response in (staff_api.patch(url, {"interval": {"every": 5, "period": "seconds"}}, format="json"),
                     staff_api.post(f"{url}disable/"), staff_api.delete(url)):
        assert response.status_code == 400
        assert f"monitor {monitor.pk}" in response.json()["detail"]
    task.refresh_from_db()
    assert (task.enabled, task.interval.every) == (True, 60)


def test_built_in_tasks_can_be_disabled_but_not_deleted_renamed_or_repointed(staff_api, seeded):
    task = task_named("lookout.alert-sweep")
    url = f"{TASKS}{task.pk}/"

    assert staff_api.delete(url).status_code == 400
    assert staff_api.patch(url, {"name": "renamed"}, format="json").status_code == 400
    assert staff_api.patch(url, {"task": PRUNE}, format="json").status_code == 400
    assert staff_api.post(f"{url}disable/").json()["enabled"] is False
    assert task_named("lookout.alert-sweep").task == "lookout.alerting.tasks.alerts_sweep"


def test_a_representation_with_its_null_timezone_can_be_sent_back_as_it_is(staff_api):
    created = staff_api.post(TASKS, {"name": "hourly prune", "task": PRUNE, "interval": {"every": 1, "period": "hours"},
                                     "timezone": None}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["timezone"], created.json()["crontab"]) == (None, None)
    url = f"{TASKS}{created.json()['id']}/"

    to_crontab = staff_api.patch(url, {"interval": None, "crontab": "0 4 * * *", "timezone": None}, format="json")
    assert to_crontab.status_code == 200, to_crontab.content
    assert to_crontab.json()["timezone"] == "UTC"  # null is the default
    zoned = staff_api.patch(url, {"timezone": "Europe/Paris"}, format="json").json()
    unchanged = staff_api.patch(url, {"description": "x", "timezone": None}, format="json")
    assert zoned["timezone"] == unchanged.json()["timezone"] == "Europe/Paris"  # null leaves it as it is
