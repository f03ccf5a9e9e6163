"""`lookout manage declarequeues`: Lookout's queues exist on the broker before its processes start."""

import sqlite3

import pytest
from django.conf import settings
from django.core.management import call_command

from lookout.config.celery_app import app
from lookout.dev import dev_environment
from support.stack import lookout_run

QUEUES = {settings.LOOKOUT_PROBE_QUEUE, settings.LOOKOUT_RESULTS_QUEUE, settings.LOOKOUT_ALERT_QUEUE,
          settings.CELERY_TASK_DEFAULT_QUEUE}


def test_the_queues_are_declared_on_rabbitmq():
    call_command("declarequeues")

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for name in QUEUES:
            channel.queue_declare(name, passive=True)  # raises NotFound (404) for a queue that does not exist


@pytest.mark.e2e
def test_the_queues_are_declared_on_the_embedded_broker_of_lookout_dev(tmp_path):
    env = dev_environment(tmp_path, "127.0.0.1:8000")
    lookout_run(env, "migrate")

    printed = lookout_run(env, "manage", "declarequeues")

    assert printed.split("\n")[:4] == [f"declared queue {name}" for name in (
        settings.LOOKOUT_PROBE_QUEUE, settings.LOOKOUT_RESULTS_QUEUE, settings.LOOKOUT_ALERT_QUEUE,
        settings.CELERY_TASK_DEFAULT_QUEUE)]
    with sqlite3.connect(tmp_path / "broker.sqlite3") as broker:
        assert {name for (name,) in broker.execute("SELECT name FROM kombu_queue")} == QUEUES
