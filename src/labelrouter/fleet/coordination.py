"""What the workers of a fleet share through Redis, under the fleet's namespace:

- **leases**: one worker at a time per mailbox (python-redis-lock, renewed by a thread while the worker
  lives, so it expires `fleet_lease_s` after a worker dies, even by SIGKILL);
- **idempotency keys**: a task's result kept under its key once it finished, so a task delivered again
  (late acknowledgement: a worker died after the work, before the ack) answers from it, doing nothing;
- **the Gmail quota**: one moving one-minute window per Gmail user for every worker (the `limits`
  library's moving window on Redis), where a single process keeps its own (`mail.gmail.QuotaBudget`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
DONE_TTL_S = 7 * 24 * 3600  # a redelivery comes within the visibility timeout; a week is ample


class Coordination:
    def __init__(self, redis_url: str, namespace: str, *, lease_s: int = 60):
        import redis

        self.redis = redis.StrictRedis.from_url(redis_url)
        self.redis_url, self.namespace, self.lease_s = redis_url, namespace, lease_s

    def key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    @contextmanager
    def lease(self, what: str, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold `what` (e.g. "mailbox:alice") fleet-wide; yields False, holding nothing, when another
        worker still holds it after `wait_s` seconds."""
        import redis_lock

        lock = redis_lock.Lock(self.redis, self.key("lease", what), expire=self.lease_s, auto_renewal=True)
        held = lock.acquire(blocking=True, timeout=max(1, int(wait_s))) if wait_s > 0 else lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                try:
                    lock.release()
                except redis_lock.NotAcquired:  # expired meanwhile (the worker stalled): another may hold it now
                    log.warning("the lease on %s had expired before it was released", what)

    def holder(self, what: str) -> bool:
        """Whether some worker holds `what` now."""
        return bool(self.redis.exists("lock:" + self.key("lease", what)))

    def finished(self, key: str) -> dict[str, Any] | None:
        """The result a task with this idempotency key finished with, if one did."""
        value = self.redis.get(self.key("done", key))
        return json.loads(value) if value else None

    def finish(self, key: str, result: dict[str, Any], ttl_s: int = DONE_TTL_S) -> None:
        self.redis.set(self.key("done", key), json.dumps(result), ex=ttl_s)

    def quota(self, user: str, units_per_minute: int, *, sleep: Callable[[float], None] = time.sleep) -> SharedQuotaBudget:
        return SharedQuotaBudget(self.redis_url, self.key("quota"), user, units_per_minute, sleep=sleep)


class SharedQuotaBudget:
    """`QuotaBudget.take` for a fleet: the units every worker spent for this Gmail user in the last
    minute, counted in Redis; a call that would exceed them waits until the window has room."""

    def __init__(self, redis_url: str, prefix: str, user: str, units_per_minute: int, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        from limits import RateLimitItemPerMinute
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.limiter = MovingWindowRateLimiter(storage_from_string(redis_url, key_prefix=prefix))
        self.rate = RateLimitItemPerMinute(units_per_minute)
        self.user, self.limit, self.sleep, self.clock = user, units_per_minute, sleep, clock

    def take(self, units: int) -> None:
        cost = min(units, self.limit)  # a call dearer than the whole budget waits for an empty window
        while not self.limiter.hit(self.rate, "gmail", self.user, cost=cost):
            stats = self.limiter.get_window_stats(self.rate, "gmail", self.user)
            self.sleep(min(60.0, max(0.05, stats.reset_time - self.clock())))
