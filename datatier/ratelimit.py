"""A token bucket: at most ``rate`` units per second on average, bursts up to one second's
worth. ``None`` or 0 means unlimited."""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimit:
    """Blocks in :meth:`take` until ``n`` units fit under the rate."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate or None
        self.clock = clock
        self.sleep = sleep
        self.capacity = max(self.rate or 0.0, 1.0)
        self.tokens = self.capacity
        self.updated = clock()
        self.waited = 0.0

    def take(self, n: int = 1) -> None:
        """Consume ``n`` units, sleeping as long as the rate requires (n may exceed a burst)."""
        if self.rate is None or n <= 0:
            return
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= n
        if self.tokens < 0:
            pause = -self.tokens / self.rate
            self.waited += pause
            self.sleep(pause)
            self.updated = self.clock()
            self.tokens = 0.0
