"""The per-owner monitor count kept by the services is what the owner has, whatever path changed it, and it is
the monitor list's `count` (read, never counted)."""

import threading

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from lookout.core.errors import ValidationFailed
from lookout.monitors import selectors, services
from lookout.monitors.models import Monitor, OwnerMonitorCount
from lookout.monitors.spec import MonitorSpec
from support.queries import queries_of

pytestmark = pytest.mark.django_db


def spec(n: int, **overrides) -> MonitorSpec:
    return MonitorSpec(**{"name": f"m{n}", "url": f"https://{n}.example/", "interval": 60, **overrides})


def counted(owner) -> int:
    return selectors.monitor_count(owner=owner)


def test_creates_and_deletes_keep_each_owners_count(alice, bob):
    mine = [services.monitor_create(owner=alice, spec=spec(n)) for n in range(5)]
    services.monitor_create(owner=bob, spec=spec(9))
    services.monitor_create(owner=alice, spec=MonitorSpec(name="beat", type="push", interval=3600))
    assert (counted(alice), counted(bob)) == (6, 1)

    for monitor in mine[:3]:
        services.monitor_delete(monitor=monitor)

    assert (counted(alice), counted(bob)) == (3, 1)
    assert counted(alice) == Monitor.objects.filter(owner=alice).count()


def test_an_owner_without_monitors_counts_0_and_a_refused_create_counts_nothing(alice):
    assert counted(alice) == 0
    with pytest.raises(ValidationFailed):
        services.monitor_create(owner=alice, spec=spec(1, interval=1))  # below LOOKOUT_MIN_INTERVAL

    assert counted(alice) == 0
    assert not OwnerMonitorCount.objects.filter(owner=alice, monitors__gt=0).exists()


def test_the_list_count_is_the_kept_count_without_counting_the_monitors(alice, alice_api):
    for n in range(3):
        services.monitor_create(owner=alice, spec=spec(n))

    sql = queries_of(alice_api, "/api/v1/monitors/")

    assert alice_api.get("/api/v1/monitors/").json()["count"] == 3
    assert alice_api.get("/api/v1/monitors/summary/").json()["count"] == 3
    assert not [query for query in sql if "COUNT(" in query.upper() and "monitors_monitor" in query]


def test_page_numbers_still_end_at_the_last_page_by_the_kept_count(alice, alice_api):
    for n in range(5):
        services.monitor_create(owner=alice, spec=spec(n))

    last = alice_api.get("/api/v1/monitors/", {"page_size": 2, "page": "last"}).json()

    assert last["count"] == 5 and last["next"] is None and [m["name"] for m in last["results"]] == ["m4"]
    assert alice_api.get("/api/v1/monitors/", {"page_size": 2, "page": 4}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_and_deletes_of_one_owner_add_up(alice):
    doomed = [services.monitor_create(owner=alice, spec=spec(100 + n)) for n in range(4)]
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def create(n: int) -> None:
        try:
            barrier.wait()
            services.monitor_create(owner=alice, spec=spec(n))
        except BaseException as exc:  # noqa: BLE001 (reported by the assert below)
            failures.append(exc)
        finally:
            connection.close()

    def delete(monitor: Monitor) -> None:
        try:
            barrier.wait()
            services.monitor_delete(monitor=monitor)
        except Monitor.DoesNotExist:
            pass  # the other thread deleting the same monitor won: it counted it
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            connection.close()

    # 5 creates, 3 deletes of which two race for the same monitor.
    threads = ([threading.Thread(target=create, args=(n,)) for n in range(5)]
               + [threading.Thread(target=delete, args=(monitor,)) for monitor in (doomed[0], doomed[1], doomed[1])])
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert counted(alice) == Monitor.objects.filter(owner=alice).count() == 4 + 5 - 2


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_monitors_that_exist():
    before = [("monitors", "0010_monitor_metrics")]
    executor = MigrationExecutor(connection)
    after = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    User, OldMonitor = old.get_model("auth", "User"), old.get_model("monitors", "Monitor")
    owners = [User.objects.create(username=f"old{n}") for n in range(3)]
    for owner, monitors in zip(owners, (3, 1, 0), strict=True):
        for n in range(monitors):  # push monitors: no PeriodicTask needed
            OldMonitor.objects.create(owner=owner, name=f"p{n}", type="push", interval=60, timeout=5)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    assert {row.owner.username: row.monitors for row in OwnerMonitorCount.objects.select_related("owner")} == {
        "old0": 3, "old1": 1}
