"""Maintenance tasks that beat runs (schedules in LOOKOUT_PERIODIC_TASKS, changeable at /api/v1/periodic-tasks/)."""

from dataclasses import asdict
from typing import Any

from celery import shared_task

from lookout.stats import retention, rollups


@shared_task(name="lookout.stats.tasks.rollup", ignore_result=True)
def rollup() -> int:
    return rollups.rollup_run()


@shared_task(name="lookout.stats.tasks.results_prune", ignore_result=True)
def results_prune() -> dict[str, Any]:
    """Also creates the coming days' partitions of results (PostgreSQL): it runs hourly, a week ahead."""
    return asdict(retention.results_prune())


@shared_task(name="lookout.stats.tasks.rollups_prune", ignore_result=True)
def rollups_prune() -> dict[str, Any]:
    return asdict(retention.rollups_prune())
