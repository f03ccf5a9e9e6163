"""The state of one probe in flight: its total deadline, its phase clock, and what it learnt on the way."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lookout.probes.engine.spec import ProbeSpec, TlsFacts


class DeadlineExceeded(TimeoutError):
    """The probe's total deadline passed.

    A TimeoutError, so that urllib3 and requests classify it as the timeout it is wherever it surfaces.
    """

    def __init__(self) -> None:
        super().__init__("timed out")


class ProbeError(Exception):
    """A failure whose message is final: it becomes the Outcome's error as it is.

    Deliberately not an OSError, so urllib3 neither wraps nor retries it on its way up to ``probe``.
    """


class Deadline:
    """One total deadline for everything a probe does: every socket operation gets only what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.at = time.perf_counter() + self.seconds

    def remaining(self) -> float:
        """Seconds left; raises DeadlineExceeded once there are none, so no operation starts after the deadline."""
        left = self.at - time.perf_counter()
        if left <= 0:
            raise DeadlineExceeded()
        return left

    @property
    def passed(self) -> bool:
        return time.perf_counter() >= self.at


class PhaseClock:
    """Splits a probe's time into phases, without gaps or overlaps.

    The clock starts when the first phase is entered (for http: when the first lookup starts, so the
    microseconds requests spends preparing the request count nowhere). From then on there is always
    exactly one current phase, and entering a phase closes the previous one at the same instant, so the
    phases add up to the total, to the float rounding. Time between two interesting events (requests
    deciding to follow a redirect, say) counts towards the phase in progress.
    """

    def __init__(self, first: str | None = None) -> None:
        self.started: float | None = None
        self._mark = 0.0
        self._phase: str | None = None
        self.seconds: dict[str, float] = {}
        self._stopped: float | None = None
        if first is not None:
            self.enter(first)

    @property
    def phase(self) -> str | None:
        return self._phase

    def enter(self, phase: str | None) -> None:
        if self._stopped is not None:
            return
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        elif self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + (now - self._mark)
        self._phase = phase
        self._mark = now

    def first_byte(self) -> None:
        """The first byte of a response arrived: processing ends, transfer starts."""
        if self._phase == "processing":
            self.enter("transfer")

    def stop(self) -> float:
        """Close the current phase; returns the total in seconds (0 if no phase was ever entered)."""
        if self._stopped is None:
            if self.started is None:
                self.started = time.perf_counter()
            self.enter(None)
            self._stopped = self._mark
        assert self.started is not None
        return self._stopped - self.started


@dataclass
class ProbeRun:
    spec: ProbeSpec
    deadline: Deadline
    clock: PhaseClock = field(default_factory=PhaseClock)
    tls: TlsFacts | None = None  # of the last TLS handshake, even a failed one
    hops: int = 0  # HTTP requests sent so far (redirects included)

    @classmethod
    def start(cls, spec: ProbeSpec) -> ProbeRun:
        return cls(spec=spec, deadline=Deadline(spec.timeout))

    def timeout_text(self) -> str:
        return f"timed out after {self.deadline.seconds}s"


@dataclass
class Observation:
    """What one probe type saw, before the conditions are checked; error is "" if nothing failed yet."""

    error: str = ""
    status_code: int | None = None
    body: str = ""  # what [BODY] conditions see: the (capped) body, the bytes a tcp probe read, the dns answers
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive for http
    answer: str | None = None
    refused: bool = False  # the target policy refused an address the probe met (error: which host, which rule)
