"""The worker fleet: Celery workers on a Redis broker labeling many mailboxes (docs/fleet.md).

`config` reads the fleet file (which mailboxes, each a set of settings); `coordination` is what the
workers share through Redis (per-mailbox leases, idempotency keys, the Gmail quota); `tasks` are the
jobs as plain functions; `app` wraps them as Celery tasks with late acknowledgement and a beat schedule.
Nothing here is imported by the embedded default: `labelrouter run` needs no broker.
"""
