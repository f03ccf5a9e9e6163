"""The periodic-task list takes as many queries for many tasks as for a few (no N+1)."""

from itertools import count

import pytest

from lookout.monitors import services
from lookout.monitors.spec import MonitorSpec
from lookout.scheduling.periodic_tasks import periodic_task_create, periodic_tasks_seed
from support.queries import assert_queries_do_not_grow

pytestmark = pytest.mark.django_db

serial = count()


def test_the_periodic_task_list_does_not_query_per_task(alice, alice_api):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    periodic_tasks_seed()

    def add(rows: int) -> None:
        for _ in range(rows):
            n = next(serial)
            if n % 2:  # a monitor's (interval) task
                services.monitor_create(owner=alice, spec=MonitorSpec(name=f"m{n}", url="https://shop.example/",
                                                                      interval=60 + n))
            else:  # an allowlisted maintenance task on a crontab
                periodic_task_create(name=f"prune {n}", task="lookout.stats.tasks.results_prune",
                                     crontab=f"{n % 60} 4 * * *")

    assert_queries_do_not_grow(alice_api, "/api/v1/periodic-tasks/", add, params={"page_size": "100"})
