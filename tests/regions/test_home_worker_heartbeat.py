"""Home workers show up among their region's workers: a heartbeat every 15 s that a database outage cannot end."""

import pytest
from django.db import OperationalError

from lookout import __version__, process_signals
from lookout.monitors.models import RegionWorker
from lookout.process_signals import home_worker_heartbeat

pytestmark = pytest.mark.django_db


def test_a_beat_records_the_worker_in_the_home_region(settings, alice_api):
    settings.LOOKOUT_REGIONS, settings.LOOKOUT_HOME_REGION = ["home", "eu"], "home"

    assert home_worker_heartbeat("celery@worker-1")
    assert home_worker_heartbeat("celery@worker-1")  # the same row, seen again

    worker = RegionWorker.objects.get()
    assert (worker.region, worker.worker, worker.in_flight, worker.version) == (
        "home", "celery@worker-1", 0, __version__)
    home = alice_api.get("/api/v1/regions/").json()[0]
    assert (home["workers"], home["workers_seen"][0]["worker"]) == (1, "celery@worker-1")


def test_a_database_outage_is_logged_not_raised(monkeypatch, caplog):
    def refuse(**_):
        raise OperationalError("the database is down")

    monkeypatch.setattr(process_signals, "region_worker_seen", refuse)

    assert home_worker_heartbeat("celery@worker-1") is False
    assert "heartbeat not recorded" in caplog.text
