"""The schedule lag workers observe from the due time beat stamps on each message (beat's own metrics:
tests/scheduling/test_scheduler.py)."""

from django.conf import settings
from prometheus_client import REGISTRY

from lookout.observability.metrics import schedule_lag_observe, worker_metrics


def test_the_worker_observes_lag_from_the_due_time_and_ignores_check_now():
    worker_metrics()
    count = "lookout_schedule_lag_seconds_count"
    before = REGISTRY.get_sample_value(count, {"region": settings.LOOKOUT_REGION}) or 0

    schedule_lag_observe(1000.0, started_at=1000.25)
    schedule_lag_observe(None)  # check-now: no due time
    schedule_lag_observe("garbage")
    schedule_lag_observe(1000.0, started_at=999.0)  # a worker clock behind beat's: 0, never negative

    assert REGISTRY.get_sample_value(count, {"region": settings.LOOKOUT_REGION}) == before + 2
    assert REGISTRY.get_sample_value("lookout_schedule_lag_seconds_bucket",
                                     {"le": "0.01", "region": settings.LOOKOUT_REGION}) >= 1
