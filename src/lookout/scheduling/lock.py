"""The single-beat guard: a PostgreSQL session-level advisory lock, held on a connection of its own.

Two beats would send every probe twice, and nothing in Celery prevents it: a rollout overlaps the old and
new pod, someone scales the Deployment, or a hot standby runs on purpose. Only the beat that holds the lock
dispatches; the others poll for it.

The lock lives exactly as long as its database session, so it is taken on a direct psycopg connection that
Django neither pools, closes nor recycles (Django closes connections between beat ticks). It must reach
PostgreSQL directly: a transaction-pooling PgBouncer hands the session to someone else after each statement.

Failover timing, by design: the holder notices a dead connection within its TCP user timeout (15 s) and stops
dispatching; the server frees the lock of a silent client only after its own keepalives give up (25 s), so
the old beat has stopped before a standby can start. A killed process closes its socket and frees the lock
at once.

The same connection carries beat's LISTEN for schedule changes (lookout.scheduling.rows.NOTIFY_CHANNEL): it
lives exactly as long as the lock, so a beat that holds the lock never misses a notification, and one that
lost it reads everything afresh when it takes the lock again.
"""

import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

import psycopg

logger = logging.getLogger(__name__)

# One fixed 64-bit key ("LOOKOUT" in ASCII). Advisory locks are scoped to the database, so two
# installations on one PostgreSQL server never compete unless they share a database.
BEAT_LOCK_KEY = 0x4C4F4F4B4F5554
APPLICATION_NAME = "lookout-beat-lock"
POLL_SECONDS = 2.0
# The holder checks its session at most this often: beat ticks far more often than that under load.
CHECK_SECONDS = 1.0

# Client side: keepalives notice a silent server; the user timeout bounds unacknowledged sends.
_CLIENT_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
    "connect_timeout": 5,
}
# Server side: free the lock of a vanished client in ~25 s instead of the kernel's two hours.
_SERVER_KEEPALIVES = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"


class SchedulerLock:
    """Take, keep and check the advisory lock. Not thread-safe: beat's loop is its only user."""

    requires_lock: Literal[True] = True

    def __init__(self, conninfo: dict[str, Any], *, key: int = BEAT_LOCK_KEY, poll_seconds: float = POLL_SECONDS,
                 listen: str | None = None):
        # Its own timeouts over the database settings' own: the failover timing below depends on them.
        self._conninfo = {**conninfo, **_CLIENT_KEEPALIVES, "application_name": APPLICATION_NAME}
        self._key = key
        self._listen = listen
        self.poll_seconds = poll_seconds
        self._connection: psycopg.Connection | None = None
        self._next_attempt = 0.0
        self._next_check = 0.0
        self._waiting_logged = False
        self._released = False  # released for good (beat is stopping): never taken again
        self.tried = False  # whether this process has asked for the lock yet (before: neither active nor standby)

    @property
    def held(self) -> bool:
        """Whether this process held the lock at its last check (no database round trip)."""
        return self._connection is not None

    def ensure_held(self) -> bool:
        """True when this process holds the lock now; called before every scheduler tick."""
        if self._connection is not None:
            if time.monotonic() < self._next_check:
                return True
            try:
                self._connection.execute("SELECT 1").fetchone()
            except psycopg.Error as exc:
                self._lose(exc)
            else:
                self._next_check = time.monotonic() + CHECK_SECONDS
                return True
        if self._released or time.monotonic() < self._next_attempt:
            return False
        self._next_attempt = time.monotonic() + self.poll_seconds
        return self._try_acquire()

    def notifications(self) -> list[str] | None:
        """Payloads notified on the LISTEN channel since the last call; None if the lock was lost meanwhile."""
        if self._connection is None:
            return None
        try:
            return [notify.payload for notify in self._connection.notifies(timeout=0)]
        except psycopg.Error as exc:
            self._lose(exc)
            return None

    def release(self) -> None:
        """Free the lock for good: beat calls this when it stops, and a stopping beat must not take it again."""
        # Closing the session frees a session-level lock; no explicit unlock can be lost on the way.
        self._released = True
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            logger.info("released the scheduler lock")

    def _lose(self, exc: psycopg.Error) -> None:
        assert self._connection is not None
        logger.error("lost the scheduler lock's database connection (%s): stopped dispatching", exc)
        try:
            self._connection.close()
        except psycopg.Error:
            pass
        self._connection = None
        self._waiting_logged = False

    def _try_acquire(self) -> bool:
        try:
            return self._attempt()
        finally:
            self.tried = True  # after the outcome is logged: health then reports what the log says

    def _attempt(self) -> bool:
        connection = None
        try:
            connection = psycopg.connect(autocommit=True, **self._conninfo)
            connection.execute(_SERVER_KEEPALIVES)
            row = connection.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            if row and row[0] and self._listen:
                # Before the holder reads any schedule: a change committed after that read is notified.
                connection.execute(f"LISTEN {self._listen}")
        except psycopg.Error as exc:
            if connection is not None:
                connection.close()
            logger.warning("waiting for the scheduler lock: database unavailable (%s)", exc)
            return False
        if row and row[0]:
            self._connection = connection
            logger.info("acquired the scheduler lock: this beat dispatches")
            return True
        connection.close()
        if not self._waiting_logged:
            logger.info("waiting for the scheduler lock: another beat dispatches; polling every %ss",
                        self.poll_seconds)
            self._waiting_logged = True
        return False


class NoLock:
    """SQLite (`lookout dev`) runs one beat inside one process tree by construction: nothing to guard."""

    requires_lock: Literal[False] = False
    held = True
    tried = True
    poll_seconds = POLL_SECONDS

    def ensure_held(self) -> bool:
        return True

    def release(self) -> None:
        pass


_DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool", "cursor_factory", "context"}


def conninfo_from_settings(database: Mapping[str, Any]) -> dict[str, Any]:
    """libpq parameters of Django's default database (parsed from DATABASE_URL), for a connection of our own."""
    params = {
        "dbname": database.get("NAME"),
        "user": database.get("USER"),
        "password": database.get("PASSWORD"),
        "host": database.get("HOST"),
        "port": database.get("PORT"),
    }
    # sslmode, sslrootcert and friends from the URL's query string apply to this connection too;
    # the options Django's backend consumes itself are no libpq parameters.
    options = {key: value for key, value in (database.get("OPTIONS") or {}).items()
               if key not in _DJANGO_ONLY_OPTIONS and isinstance(value, str | int)}
    return {key: value for key, value in {**params, **options}.items() if value not in (None, "")}


def scheduler_lock_for(database: Mapping[str, Any], *, listen: str | None = None) -> SchedulerLock | NoLock:
    if database["ENGINE"].endswith("sqlite3"):
        return NoLock()
    return SchedulerLock(conninfo_from_settings(database), listen=listen)


_current: SchedulerLock | NoLock | None = None


def current_lock() -> SchedulerLock | NoLock | None:
    """The lock of this process's scheduler, once it exists (read by beat's /healthz)."""
    return _current


def current_lock_set(lock: SchedulerLock | NoLock) -> None:
    global _current
    _current = lock
