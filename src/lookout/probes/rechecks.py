"""Re-checks: one region of a monitor saw a failure, so every region of it probes again now, as a round of its own
(lookout.regions.agreement), instead of a whole interval later."""

import logging
import time
from typing import Any

from django.conf import settings
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError as BrokerError

from lookout.config.celery_app import app
from lookout.core.regions import region_queue
from lookout.observability.metrics import DUE_AT_HEADER
from lookout.scheduling.regional import AGENT_TASK, RECHECK_HEADER, Regional, run_task_id
from lookout.scheduling.schedules import PROBE_TASK, schedule_regional

logger = logging.getLogger(__name__)
# A re-check not probed within this long is stale: the next scheduled round is nearer than that.
RECHECK_EXPIRES_SECONDS = 60


def rechecks_publish(*, monitor_ids: list[int]) -> int:
    """Send a re-check round of each monitor to all its regions; returns how many messages went out.

    After the commit that asked for it: a lost re-check (the broker is down) costs detection time only, never a
    result, so it is not retried.
    """
    due = time.time()
    sent = 0
    tasks = PeriodicTask.objects.filter(monitor__pk__in=monitor_ids, enabled=True).only("id", "kwargs")
    try:
        with app.producer_or_acquire() as producer:
            for task in tasks:
                regional = _regional(task)
                if regional is None:
                    continue
                for region in regional.regions:
                    _send(producer, task=task, regional=regional, region=region, due=due)
                    sent += 1
    except (BrokerError, OSError) as exc:
        logger.warning("re-checks of %d monitors not sent (%s): their next scheduled round decides",
                       len(monitor_ids), exc)
    return sent


def _regional(task: PeriodicTask) -> Regional | None:
    value = schedule_regional(task)
    return Regional.from_kwargs(value) if value else None


def _send(producer: Any, *, task: PeriodicTask, regional: Regional, region: str, due: float) -> None:
    expires = due + RECHECK_EXPIRES_SECONDS
    headers = {DUE_AT_HEADER: due, RECHECK_HEADER: True}
    if region == settings.LOOKOUT_HOME_REGION:
        app.send_task(PROBE_TASK, args=[regional.monitor_id], task_id=run_task_id(task.pk, due), headers=headers,
                      expires=RECHECK_EXPIRES_SECONDS, producer=producer, retry=False,
                      queue=region_queue(region))
        return
    task_id, run = regional.run(region=region, schedule_id=task.pk, due=due, expires=expires, recheck=True)
    app.send_task(AGENT_TASK, kwargs={"run": run}, task_id=task_id, headers=headers, expires=RECHECK_EXPIRES_SECONDS,
                  producer=producer, retry=False, queue=region_queue(region))
