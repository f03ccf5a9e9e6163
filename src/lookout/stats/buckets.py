"""The latency histogram of rollups: fixed bucket edges, and percentiles from summed bucket counts.

Edges run 1-1.5-2-3-4-5-6-8 per decade from 1 ms to 800 s, so a percentile interpolated inside its bucket is
off by well under a bucket's width (at most a third of the value). Changing EDGES_MS makes stored rollups
unreadable: it needs a migration that re-buckets them (and one column per bucket).
"""

from bisect import bisect_left
from collections.abc import Iterable, Sequence

EDGES_MS: tuple[float, ...] = tuple(
    float(step * 10**decade) for decade in range(6) for step in (1, 1.5, 2, 3, 4, 5, 6, 8)
)
BUCKETS = len(EDGES_MS) + 1  # the last one is "above the highest edge"
# The rollup columns holding the counts of each bucket (lookout.stats.models.RollupCounts).
BUCKET_FIELDS: tuple[str, ...] = tuple(f"bucket_{index}" for index in range(BUCKETS))


def bucket_index(ms: float) -> int:
    """The bucket holding a value: the first whose upper edge is >= it (Prometheus' `le`)."""
    return bisect_left(EDGES_MS, ms)


def histogram(values: Iterable[float]) -> list[int]:
    counts = [0] * BUCKETS
    for value in values:
        counts[bucket_index(value)] += 1
    return counts


def histogram_add(total: list[int], counts: Sequence[int]) -> None:
    for index, count in enumerate(counts):
        if count:  # most buckets of an hour are empty: skipping them halves the cost of a long window
            total[index] += count


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1), interpolated linearly inside its bucket, as Prometheus' histogram_quantile."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(EDGES_MS):  # beyond the last edge: all we know is "more than it"
                return EDGES_MS[-1]
            lower = EDGES_MS[index - 1] if index else 0.0
            return lower + (EDGES_MS[index] - lower) * (rank - seen) / count
        seen += count
    return EDGES_MS[-1]
