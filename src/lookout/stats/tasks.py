"""Maintenance tasks that beat runs (schedules in LOOKOUT_PERIODIC_TASKS, changeable at /api/v1/periodic-tasks/)."""

from celery import shared_task

from lookout.stats import retention, rollups


@shared_task(name="lookout.stats.tasks.rollup", ignore_result=True)
def rollup() -> int:
    return rollups.rollup_run()


@shared_task(name="lookout.stats.tasks.results_prune", ignore_result=True)
def results_prune() -> int:
    return retention.results_prune()


@shared_task(name="lookout.stats.tasks.rollups_prune", ignore_result=True)
def rollups_prune() -> int:
    return retention.rollups_prune()
