from celery import shared_task

from lookout.monitors.services import push_sweep as push_sweep_run


@shared_task(name="lookout.monitors.tasks.push_sweep", ignore_result=True)
def push_sweep() -> int:
    return push_sweep_run()
