"""API throttles: DRF's rates, scopes and keys, counted in fixed windows in the database.

A window is aligned on the rate's period (a minute for `1200/minute`): at most the rate is accepted per key
within it, and a refused request's Retry-After is the time left until it ends. Up to twice the rate can pass
across a window's edge (the end of one window and the start of the next); the counts are shared by every
process and replica, as they were in the database cache.
"""

from typing import Any

from rest_framework import throttling
from rest_framework.request import Request

from lookout.core.rate_counters import rate_counter_hit


class FixedWindowThrottle(throttling.SimpleRateThrottle):
    # Parsed from the rate by SimpleRateThrottle.__init__ (None without a rate); DRF's stubs leave them out.
    num_requests: int | None
    duration: int | None

    def allow_request(self, request: Request, view: Any) -> bool:  # Any: rest_framework.views imports this
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window_end = (int(self.now) // self.duration + 1) * self.duration
        hits, self.window_end = rate_counter_hit(key=self.key, window_end=window_end)
        return hits <= self.num_requests

    def wait(self) -> float:
        return max(self.window_end - self.now, 0.0)


class UserThrottle(throttling.UserRateThrottle, FixedWindowThrottle):
    """Every API request, per user (per client address when anonymous): LOOKOUT_USER_RATE."""


class ScopedThrottle(throttling.ScopedRateThrottle, FixedWindowThrottle):
    """Per view's `throttle_scope` and user or client address, e.g. `login`: LOOKOUT_LOGIN_RATE."""


class PushThrottle(FixedWindowThrottle):
    """Per push token: a misbehaving client cannot flood one monitor's results (LOOKOUT_PUSH_RATE)."""

    scope = "push"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": view.kwargs.get("token", "")}
