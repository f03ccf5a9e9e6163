"""Celery tasks on the `alerts` queue: thin wrappers around the alerting services."""

from celery import shared_task

from lookout.alerting.delivery import notification_deliver as deliver
from lookout.alerting.delivery import notifications_dispatch
from lookout.alerting.guard import guard_sweep
from lookout.alerting.maintenance import maintenance_sync
from lookout.alerting.notifications import DELIVER_TASK


# Acknowledged on receipt (acks_late off): the row's lease, not the message, is what survives a dead worker,
# and no message is held while a delivery waits on a receiver.
@shared_task(name=DELIVER_TASK, ignore_result=True, acks_late=False)
def notification_deliver(notification_id: int) -> str | None:
    return deliver(notification_id=notification_id)


@shared_task(name="lookout.alerting.tasks.alerts_sweep", ignore_result=True)
def alerts_sweep() -> dict[str, int | str]:
    """Windows first (they decide what is deferred), then the guard (what is held), then what is due."""
    entered, left, deferred = maintenance_sync()
    guard = guard_sweep()
    return {"maintenance_entered": entered, "maintenance_left": left, "deferred_released": deferred,
            "guard": guard, "published": notifications_dispatch()}
