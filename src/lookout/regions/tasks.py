"""Celery tasks on the `alerts` queue (beat runs them; schedules in LOOKOUT_PERIODIC_TASKS)."""

from celery import shared_task

from lookout.regions.suspects import regions_suspect_sweep


@shared_task(name="lookout.regions.tasks.regions_sweep", ignore_result=True)
def regions_sweep() -> dict[str, str]:
    return regions_suspect_sweep()
