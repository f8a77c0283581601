"""Find (or start) the local PostgreSQL server the Postgres tests use; skip loudly when impossible."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

URL = os.environ.get("LABELROUTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Every schema this test run creates starts with this; conftest's `postgres_schemas` drops them at the end.
RUN_PREFIX = f"lr_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _reachable() -> str | None:
    import psycopg

    try:
        psycopg.connect(URL, connect_timeout=3).close()
        return None
    except psycopg.Error as exc:
        return " ".join(str(exc).split())[:200]


def ensure_postgres() -> str | None:
    """None when the server answers (starting an installed cluster if needed); otherwise why not."""
    problem = _reachable()
    if problem is None:
        return None
    if shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster"):
        listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout.split()
        if len(listing) >= 2:
            version, cluster = listing[0], listing[1]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, "start"],
                           capture_output=True, text=True)
            for _ in range(30):
                if _reachable() is None:
                    return None
                time.sleep(0.5)
    return f"no PostgreSQL at {URL} ({problem}) and no local cluster could be started"
