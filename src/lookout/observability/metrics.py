"""Every metric Lookout's processes define, in one place (documented in docs/metrics.md).

Workers export fleet-wide series only; per-monitor series come from the database collector
(lookout.observability.collector), served by beat alone so replicas never double-count.
"""

from prometheus_client import Counter, Histogram

# Probe latency spans a few ms (loopback) to the longest timeouts.
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

PROBE_DURATION = Histogram(
    "lookout_probe_duration_seconds", "Wall time of a probe, fleet-wide.", ["type", "result"],
    buckets=PROBE_BUCKETS,
)
PROBES = Counter("lookout_probes", "Probes run, fleet-wide.", ["type", "result"])


def probe_observe(*, probe_type: str, success: bool, seconds: float) -> None:
    result = "success" if success else "failure"
    PROBE_DURATION.labels(type=probe_type, result=result).observe(seconds)
    PROBES.labels(type=probe_type, result=result).inc()

HTTP_REQUESTS = Counter("lookout_http_requests", "API requests.", ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "lookout_http_request_duration_seconds", "API request latency.", ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
