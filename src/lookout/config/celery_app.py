"""The Celery application shared by the worker, beat and the API (which publishes check-now probes)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookout.config.settings")

app = Celery("lookout")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lookout.agent", "lookout.probes", "lookout.alerting", "lookout.regions", "lookout.stats"])
