from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from lookout.config.celery_app import app
from lookout.core.regions import region_queue


class Command(BaseCommand):
    help = ("Declare Lookout's queues (every region's probes, results, alerts and the default one) on the broker, "
            "before the processes that use them start. `lookout dev` runs it: kombu's SQLAlchemy transport creates a "
            "queue's row without handling a concurrent creator's, so a worker and a beat declaring the same queue at "
            "once could crash.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Every region's queue too: beat sends to them whether or not an agent consumes yet (unroutable messages
        # would be dropped), and an agent's broker user may not declare anything but its own queue.
        names = (*(region_queue(region) for region in settings.LOOKOUT_REGIONS), settings.LOOKOUT_RESULTS_QUEUE,
                 settings.LOOKOUT_ALERT_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE)
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            for name in names:
                app.amqp.queues[name].bind(channel).declare()  # the configured queue, or Celery's default for a name
                self.stdout.write(f"declared queue {name}")
