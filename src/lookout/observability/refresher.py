"""The per-monitor snapshot: made by a process of its own, served as bytes by the beat that dispatches.

Rendering 100k monitors' series takes seconds of CPU; inside beat it held the GIL its scheduler loop needs, on
every refresh. So beat starts `python -m lookout.observability.refresher DIR SHARDS` beside itself (SnapshotFeed)
and, while it holds the scheduler lock, asks it for a refresh every LOOKOUT_METRICS_CACHE_SECONDS (a line on its
stdin). The child reads the table, renders and gzips every shard (lookout.observability.collector) and replaces
DIR/monitors-<i>-of-<n>.gz atomically; a scrape of beat only reads that file (when it changed) and sends it. The
child exits when its stdin closes, so it never outlives beat; beat starts it again if it died. A hot standby
asks for nothing: it reads the table only once it dispatches.
"""

import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# A snapshot older than this many refresh intervals is not served: its values would mislead (the refresher is
# stuck or gone); beat answers lookout_monitor_collector_up 0 instead, which the LookoutMonitorCollectorDown
# alert catches.
STALE_INTERVALS = 3
STALE_MINIMUM_SECONDS = 60.0


def snapshot_path(directory: Path, *, shard: int, of: int) -> Path:
    return directory / f"monitors-{shard}-of-{of}.gz"


def snapshot_write(directory: Path, shards: list[bytes]) -> None:
    for index, body in enumerate(shards):
        path = snapshot_path(directory, shard=index, of=len(shards))
        partial = path.with_suffix(".tmp")
        partial.write_bytes(body)
        os.replace(partial, path)  # a scrape reads the old file or the new one, never half of one


def refresh_loop(directory: Path, shards: int) -> None:
    """Render once per line read on stdin (pokes that arrived meanwhile coalesce); return at end of input."""
    from django.db import connection

    from lookout.observability.collector import snapshot_render

    stdin = sys.stdin.fileno()
    while True:
        select.select([stdin], [], [])
        if not os.read(stdin, 65536):
            return  # beat is gone
        try:
            snapshot = snapshot_render(shards=shards)
        finally:
            connection.close()  # idle until the next poke: hold no connection meanwhile
        snapshot_write(directory, snapshot.shards)
        logger.info("per-monitor snapshot: %d monitors, %d series, %d bytes gzipped in %.2fs", snapshot.monitors,
                    snapshot.series, sum(map(len, snapshot.shards)), snapshot.read_seconds)


class SnapshotFeed:
    """Beat's side: the child process, its pokes, and the newest snapshot's bytes for a scrape."""

    def __init__(self, *, every: float, shards: int, directory: Path | None = None,
                 command: list[str] | None = None) -> None:
        self.every = every
        self.shards = shards
        self.directory = directory or Path(tempfile.mkdtemp(prefix="lookout-snapshot-"))
        self._command = command or [sys.executable, "-m", "lookout.observability.refresher",
                                    str(self.directory), str(shards)]
        self._child: subprocess.Popen[bytes] | None = None
        self._cache: dict[tuple[int, int], tuple[tuple[int, int], bytes]] = {}
        self._lock = threading.Lock()

    @property
    def stale_after(self) -> float:
        return max(STALE_INTERVALS * self.every, STALE_MINIMUM_SECONDS)

    def poke(self) -> None:
        """Ask for a refresh, starting the child first if it is not running."""
        with self._lock:
            if self._child is None or self._child.poll() is not None:
                if self._child is not None:
                    logger.warning("per-monitor snapshot process exited (%s): starting it again",
                                   self._child.returncode)
                self._child = subprocess.Popen(self._command, stdin=subprocess.PIPE)
            try:
                assert self._child.stdin is not None
                self._child.stdin.write(b"\n")
                self._child.stdin.flush()
            except BrokenPipeError:  # it died just now: the next poke starts it again
                pass

    def start(self, dispatching: Callable[[], bool]) -> threading.Thread:
        """Poke every `every` seconds while `dispatching()` (a daemon thread; beat's loop never waits for it).

        Whether beat dispatches is looked at every second: the first snapshot follows within a second of beat taking
        the lock, not up to a whole interval later."""
        def run() -> None:
            next_poke = 0.0
            while True:
                try:
                    if time.monotonic() >= next_poke and dispatching():
                        self.poke()
                        next_poke = time.monotonic() + self.every
                except Exception:  # never let the feed's thread die: the next round tries again
                    logger.exception("per-monitor snapshot: poke failed")
                time.sleep(min(self.every, 1.0))

        thread = threading.Thread(target=run, name="lookout-snapshot-feed", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        with self._lock:
            if self._child is not None and self._child.poll() is None:
                assert self._child.stdin is not None
                self._child.stdin.close()  # its stdin ends: it exits after the render in progress
                try:
                    self._child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._child.kill()
            self._child = None

    def gzipped(self, *, shard: int = 0, of: int = 1) -> bytes | None:
        """The newest snapshot of the shard, gzipped; None when there is none younger than stale_after."""
        path = snapshot_path(self.directory, shard=shard, of=of)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if time.time() - stat.st_mtime > self.stale_after:
            return None
        key = (stat.st_ino, stat.st_mtime_ns)
        cached = self._cache.get((shard, of))
        if cached is not None and cached[0] == key:
            return cached[1]
        body = path.read_bytes()
        self._cache[(shard, of)] = (key, body)
        return body


_feed: SnapshotFeed | None = None


def snapshot_feed() -> SnapshotFeed:
    """The process's feed, configured from the settings (beat starts it; a scrape reads from it)."""
    global _feed
    if _feed is None:
        from django.conf import settings

        _feed = SnapshotFeed(every=settings.LOOKOUT_METRICS_CACHE_SECONDS, shards=settings.LOOKOUT_METRICS_SHARDS)
    return _feed


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lookout.config.settings")
    import django

    django.setup()
    os.nice(5)  # beside beat in its pod: dispatching comes first when they compete for a core
    refresh_loop(Path(argv[0]), int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
