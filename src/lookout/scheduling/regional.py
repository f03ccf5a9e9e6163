"""A run of a monitor probed from several regions: one message per region, all sharing the run's due time and
expiry (so all copies of a run expire together), each with its own task id.

The monitor services put what the messages need into the monitor's PeriodicTask (`kwargs["lookout_regions"]`,
written in the same transaction as the monitor): its regions, the probe's public fields and its secrets sealed to
each region's key. Beat reads nothing else: a region's message is built from that row alone. The home region's copy
is the monitor's usual `probe_monitor` message; another region's is RUN (docs/regions.md), for its workers or
agents, with a token the home region checks when the result comes back.
"""

import hashlib
import math
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from lookout.core.regions import run_token

if TYPE_CHECKING:  # entries build on this module
    from lookout.scheduling.entries import Entry

REGIONS_KWARG = "lookout_regions"
# On a re-check's messages (lookout.probes.rechecks): its round is a re-check, which asks for another only if failed.
RECHECK_HEADER = "lookout_recheck"
AGENT_TASK = "lookout.agent.probe"
# Batched runs (the contract between beat and the workers, docs/architecture.md): the home region's monitors'
# runs travel in BATCH_TASK messages on their own queue, another region's in AGENT_BATCH_TASK on probes.<region>.
BATCH_TASK = "lookout.probes.tasks.probe_batch"
AGENT_BATCH_TASK = "lookout.agent.probe_batch"
_RUN_IDS = uuid.UUID("5d1f0c1e-6b7a-4c59-9a51-6c6f6f6b6f75")
_BATCH_IDS = uuid.UUID("0c7b0e55-95d2-4a55-8f0e-6261746368ed")
_RUN_PREFIX = hashlib.sha1(_RUN_IDS.bytes, usedforsecurity=False)
_BATCH_PREFIX = hashlib.sha1(_BATCH_IDS.bytes, usedforsecurity=False)


def run_task_id(schedule_id: int, due: float, region: str | None = None) -> str:
    """The task id of one run in one region: the same for every send of that run, across retries and restarts.

    The due time counts in 10 ms steps: after a restart it is recomputed from last_run_at (microseconds in the
    database, then float arithmetic), which can differ from the first computation by a microsecond or so. The home
    region's copy keeps the id runs had before regions existed.
    """
    steps = math.floor(due * 100 + 0.5)
    name = f"{schedule_id}:{steps}" if region in (None, settings.LOOKOUT_HOME_REGION) else \
        f"{schedule_id}:{steps}:{region}"
    return _uuid5(_RUN_PREFIX, name)


def _uuid5(prefix: "hashlib._Hash", name: str) -> str:
    # str(uuid.uuid5(namespace, name)) without the UUID object (16.7k a second in beat): the same value.
    digest = prefix.copy()
    digest.update(name.encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def batch_task_id(run_task_ids: list[str]) -> str:
    """A batch message's task id: from its runs' ids alone, so the same batch sent again has the same id."""
    return _uuid5(_BATCH_PREFIX, ",".join(sorted(run_task_ids)))


def batch_key(entry: "Entry") -> tuple[Any, ...]:
    """Runs with the same key may share a message: same route, same second due, same second of expiry (so a
    message's runs expire together, when the earliest of them does)."""
    expires = entry.run_expires
    return entry.route, math.floor(entry.due), math.floor(expires) if expires != math.inf else None


@dataclass(frozen=True, slots=True)
class Regional:
    """A schedule's regional part, as the monitor services wrote it into its PeriodicTask."""

    monitor_id: int
    regions: tuple[str, ...]
    spec: dict[str, Any]
    sealed: dict[str, str]

    @classmethod
    def from_kwargs(cls, value: dict[str, Any]) -> "Regional":
        return cls(monitor_id=int(value["monitor"]), regions=tuple(value["regions"]), spec=dict(value["spec"]),
                   sealed=dict(value.get("sealed") or {}))

    def run(self, *, region: str, schedule_id: int, due: float, expires: float | None,
            recheck: bool = False) -> tuple[str, dict[str, Any]]:
        """Another region's copy of the run due at `due`: its task id and RUN."""
        task_id = run_task_id(schedule_id, due, region)
        return task_id, {
            "monitor": self.monitor_id, "region": region, "due": due, "expires": expires, "task_id": task_id,
            "spec": self.spec, "sealed": self.sealed.get(region, ""), "recheck": recheck,
            "token": run_token(monitor_id=self.monitor_id, region=region, task_id=task_id, due=due),
        }
