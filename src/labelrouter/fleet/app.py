"""The fleet's Celery application: the jobs of `fleet.tasks` as tasks on a Redis broker.

Delivery is at least once and the work exactly once:
- late acknowledgement (`task_acks_late`, `task_reject_on_worker_lost`, one task prefetched at a time):
  a task whose worker dies is handed out again — at once when a pool child dies, after
  `fleet_visibility_timeout_s` when the whole worker is killed (Redis keeps it unacknowledged until then);
- idempotency keys (`Coordination.finished`): a task delivered again after it finished answers with the
  result it finished with; one that had not finished runs again, and the jobs are safe to run again
  (mailbox leases, the store's intent protocol: docs/fleet.md);
- a mailbox another worker holds: a poll is skipped (that worker is labeling the same new mail), other
  jobs retry with backoff.

Messages are JSON only (no pickles), and beat keeps its schedule in memory (its default store is a
pickle file): a restarted beat starts its intervals afresh.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from labelrouter.fleet import tasks
from labelrouter.fleet.tasks import FleetRuntime, MailboxBusy
from labelrouter.settings import Settings

log = logging.getLogger(__name__)
POLL, LABEL, NIGHTLY_SYNC, TRAIN = "labelrouter.poll", "labelrouter.label", "labelrouter.nightly_sync", "labelrouter.train"
LEASE_WAIT_S = 5.0  # how long a task waits for a mailbox another worker holds before giving way
MAX_BUSY_RETRIES = 30


def _crontab(at: str) -> Any:
    from celery.schedules import crontab

    hour, minute = at.split(":")
    return crontab(hour=int(hour), minute=int(minute))


def beat_schedule(settings: Settings, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per mailbox: a poll every `fleet_poll_every_s` (expiring if not started by the next one, so polls
    never pile up behind stopped workers), the nightly sync, and nightly head training after it (UTC)."""
    schedule: dict[str, dict[str, Any]] = {}
    for name in names:
        schedule[f"poll {name}"] = {"task": POLL, "schedule": settings.fleet_poll_every_s, "args": [name],
                                    "options": {"expires": settings.fleet_poll_every_s}}
        schedule[f"nightly sync {name}"] = {"task": NIGHTLY_SYNC, "schedule": _crontab(settings.fleet_nightly_sync_at),
                                            "args": [name]}
        schedule[f"nightly training {name}"] = {"task": TRAIN, "schedule": _crontab(settings.fleet_nightly_train_at),
                                                "args": [name, "head"]}
    return schedule


def create_app(settings: Settings, *, runtime: Callable[[], FleetRuntime] | None = None,
               schedule_for: list[str] | None = None) -> Any:
    """The Celery app on the settings' broker; `runtime` builds the worker's FleetRuntime (once, in the
    process that runs tasks: after the fork in a prefork pool); `schedule_for` names the mailboxes beat
    schedules."""
    from celery import Celery

    app = Celery("labelrouter", broker=settings.broker_url, backend=settings.broker_url, set_as_current=False)
    prefix = f"{settings.fleet_namespace}:"
    transport = {
        "visibility_timeout": settings.fleet_visibility_timeout_s,
        # Look for tasks of dead workers often enough to honour a short visibility timeout (the default
        # scan runs every ~100 s); every key of the broker lives under the fleet's namespace.
        "unacked_restore_interval": max(1, min(10, settings.fleet_visibility_timeout_s // 4)),
        "unacked_restore_throttle": 1,
        "global_keyprefix": prefix,
    }
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=settings.fleet_namespace, broker_transport_options=transport,
        result_backend_transport_options={"global_keyprefix": prefix}, result_expires=24 * 3600,
        broker_connection_retry_on_startup=True, task_track_started=True,
        beat_scheduler="celery.beat:Scheduler", enable_utc=True, timezone="UTC",
        beat_schedule=beat_schedule(settings, schedule_for) if schedule_for else {},
    )
    built: dict[str, FleetRuntime] = {}

    def rt() -> FleetRuntime:
        if "rt" not in built:
            built["rt"] = runtime() if runtime else FleetRuntime(settings)
        return built["rt"]

    def once(task: Any, key: str, job: Callable[[], dict[str, Any]], *, retry_busy: bool) -> dict[str, Any]:
        coordination = rt().coordination
        earlier = coordination.finished(key)
        if earlier is not None:
            log.info("task %s (%s) was delivered again after it finished: nothing to do", task.request.id, key)
            return {**earlier, "duplicate": True}
        try:
            result = job()
        except MailboxBusy as exc:
            if not retry_busy:
                return {"skipped": str(exc)}
            raise task.retry(exc=exc, countdown=min(60, 2 ** task.request.retries), max_retries=MAX_BUSY_RETRIES) from None
        result = {**result, "worker": task.request.hostname}
        coordination.finish(key, result)
        return result

    # shared=False: Celery would otherwise add these tasks (closures over this app's runtime) to every
    # app created later in the process, and a later app could run an earlier one's.
    @app.task(bind=True, name=POLL, shared=False)
    def poll(self: Any, name: str) -> dict[str, Any]:
        return once(self, f"poll:{self.request.id}", lambda: tasks.poll(rt(), name, wait_s=LEASE_WAIT_S), retry_busy=False)

    @app.task(bind=True, name=LABEL, shared=False)
    def label(self: Any, name: str, message_ids: list[str]) -> dict[str, Any]:
        digest = hashlib.blake2b("\n".join(sorted(message_ids)).encode(), digest_size=12).hexdigest()
        return once(self, f"label:{name}:{digest}",
                    lambda: tasks.label_messages(rt(), name, list(message_ids), wait_s=LEASE_WAIT_S), retry_busy=True)

    @app.task(bind=True, name=NIGHTLY_SYNC, shared=False)
    def nightly_sync(self: Any, name: str) -> dict[str, Any]:
        return once(self, f"nightly-sync:{self.request.id}", lambda: tasks.nightly_sync(rt(), name, wait_s=LEASE_WAIT_S),
                    retry_busy=True)

    @app.task(bind=True, name=TRAIN, shared=False)
    def train(self: Any, name: str, stages: str = "head") -> dict[str, Any]:
        return once(self, f"train:{self.request.id}", lambda: tasks.train(rt(), name, stages), retry_busy=False)

    return app


def worker_argv(settings: Settings, *, concurrency: int = 1, loglevel: str = "INFO", hostname: str | None = None) -> list[str]:
    """`celery worker` options: one process (the encoder uses every core) or a prefork pool of N."""
    argv = ["worker", "--loglevel", loglevel, "--queues", settings.fleet_namespace, "--without-gossip",
            "--without-mingle"]
    argv += ["--pool", "solo"] if concurrency == 1 else ["--pool", "prefork", "--concurrency", str(concurrency)]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def split_threads(concurrency: int) -> None:
    """In a prefork pool, each child gets its share of the cores for torch (else N children × all cores)."""
    from celery.signals import worker_process_init

    from labelrouter.util.cores import available_cores

    def share(**_: Any) -> None:
        import torch

        torch.set_num_threads(max(1, available_cores() // concurrency))

    worker_process_init.connect(share, weak=False)
