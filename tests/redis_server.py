"""Find (or start) the local Redis the fleet tests use; skip loudly when impossible."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

URL = os.environ.get("LABELROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable() -> str | None:
    import redis

    try:
        redis.StrictRedis.from_url(URL, socket_connect_timeout=3).ping()
        return None
    except redis.RedisError as exc:
        return " ".join(str(exc).split())[:200]


def ensure_redis() -> str | None:
    """None when Redis answers at URL (starting the installed server if needed); otherwise why not."""
    problem = _reachable()
    if problem is None:
        return None
    if shutil.which("redis-server") and URL.startswith("redis://127.0.0.1:6379"):
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                        "--save", "", "--appendonly", "no"], capture_output=True, text=True)
        for _ in range(30):
            if _reachable() is None:
                return None
            time.sleep(0.2)
    return f"no Redis at {URL} ({problem}) and no local redis-server could be started"


def namespace() -> str:
    """A namespace of its own for one test: its queue, broker keys, leases and quota windows."""
    return f"lrtest-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def drop_namespace(ns: str) -> None:
    import redis

    client = redis.StrictRedis.from_url(URL)
    for pattern in (f"{ns}:*", f"lock:{ns}:*", f"lock-signal:{ns}:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
