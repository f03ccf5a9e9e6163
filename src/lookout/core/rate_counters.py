"""Fixed-window request counters in the database, shared by every API process and replica.

Counting a request is one statement (an upsert returning the new count): DRF's throttles on Django's database
cache took five (a read, a count of the cache table, then a read and a write in a transaction).
"""

import hashlib

from django.db import connection

from lookout.core.models import RateCounter

_TABLE = RateCounter._meta.db_table
_KEY_MAX = RateCounter.KEY_MAX_LENGTH

# The first request under a key inserts its row; a request in the row's window adds one; the first request of
# a later window starts the count again at 1. `>=`, not `=`: a replica whose clock is slightly behind counts
# into the newer window instead of resetting it. (PostgreSQL, and SQLite since 3.35 for RETURNING.)
_HIT = (
    f'INSERT INTO "{_TABLE}" ("key", window_end, hits) VALUES (%s, %s, 1) '
    f"ON CONFLICT (\"key\") DO UPDATE SET "
    f'hits = CASE WHEN "{_TABLE}".window_end >= excluded.window_end THEN "{_TABLE}".hits + 1 ELSE 1 END, '
    f'window_end = CASE WHEN "{_TABLE}".window_end >= excluded.window_end THEN "{_TABLE}".window_end '
    f"ELSE excluded.window_end END "
    f"RETURNING hits, window_end"
)


def rate_counter_hit(*, key: str, window_end: int) -> tuple[int, int]:
    """Count one request under `key` in the window ending at `window_end` (Unix seconds).

    Returns the requests counted in the key's current window, this one included, and that window's end.
    """
    if len(key) > _KEY_MAX:
        # Keys may hold client-sent text (a forwarded-for chain): long ones are hashed, never truncated together.
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute(_HIT, [key, window_end])
        hits, current_end = cursor.fetchone()
    return hits, current_end


def rate_counters_prune(*, now: float) -> int:
    """Counters whose window ended: the next request under their key starts a new one anyway."""
    return RateCounter.objects.filter(window_end__lte=int(now)).delete()[0]
