"""The Celery app of `lookout agent`: consumes probes.<region> only, configured from the environment only.

Its settings are the home worker's where they matter (JSON, acks late, prefetch 1, publisher confirms). It
declares its own queue and nothing else, and runs without events, remote control, gossip or mingle, so its
broker user needs no rights beyond the region's queue and publishing to `results` (docs/regions.md).
"""

import logging
import logging.config
from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_init
from kombu import Exchange, Queue
from prometheus_client import start_http_server

from lookout.agent import context
from lookout.agent.settings import agent_settings
from lookout.agent.tasks import in_flight
from lookout.environment import broker_tls
from lookout.observability.liveness import consumer_state, kombu_retry_sleep_cooperative
from lookout.observability.logging import logging_config
from lookout.observability.metrics import region_series_initialize, worker_series_initialize

logger = logging.getLogger(__name__)

settings = agent_settings()
context.configure(region=settings.region, key=settings.key, policy=settings.policy)
QUEUE = f"probes.{settings.region}"

app = Celery("lookout-agent", include=["lookout.agent.tasks"])
app.conf.update(
    broker_url=settings.broker_url,
    broker_transport_options={"confirm_publish": True} if settings.broker_url.startswith("amqp") else {},
    broker_use_ssl=broker_tls(settings.broker_url),
    broker_connection_retry_on_startup=True,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    task_serializer="json",
    accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    result_backend=None,
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    # The only queue, and the default one: nothing this app publishes routes to (or declares) Celery's "celery".
    task_queues=[Queue(QUEUE, Exchange(QUEUE, type="direct", durable=True), routing_key=QUEUE, durable=True)],
    task_default_queue=QUEUE,
    task_create_missing_queues=False,
    worker_hijack_root_logger=False,
    worker_consumer="lookout.observability.liveness:LookoutConsumer",
)


@setup_logging.connect
def agent_logging(**_: Any) -> None:
    """Connected, it replaces Celery's own logging setup: the home worker's format (LOOKOUT_LOG_FORMAT)."""
    logging.config.dictConfig(logging_config(log_format=settings.log_format, level=settings.log_level))


@worker_init.connect
def agent_metrics_start(sender: Any = None, **_: Any) -> None:
    kombu_retry_sleep_cooperative()
    worker_series_initialize(
        tasks=[name for name in app.tasks if name.startswith("lookout.")],
        concurrency=int(getattr(sender, "concurrency", 0) or 0), in_flight=in_flight,
        loop_age=consumer_state.loop_age, broker_connected=lambda: 1 if consumer_state.connected else 0,
        region=settings.region,
    )
    region_series_initialize(settings.region)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
        logger.info("agent metrics on %s:%d", settings.metrics_host, settings.metrics_port)
