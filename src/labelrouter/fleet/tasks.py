"""The fleet's jobs as plain functions of a `FleetRuntime` (the Celery layer in `fleet.app` wraps them).

Exactly once, whoever runs them and however often a task is delivered: every job that touches a mailbox
holds its fleet-wide lease (and the mailbox's own lock, so a `labelrouter run` on the same Maildir is
excluded too); labeling goes through the store's intent protocol (a decision left half-applied by a
killed worker is finished by the next job, never applied twice) and skips what the store has decided.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from labelrouter import usecases
from labelrouter.errors import ConfigError, LabelRouterError
from labelrouter.fleet.config import gmail_account, load_fleet
from labelrouter.fleet.coordination import Coordination
from labelrouter.labels import load_label_set
from labelrouter.settings import Settings
from labelrouter.usecases import OpenMailbox

log = logging.getLogger(__name__)


class MailboxBusy(LabelRouterError):
    """Another worker holds this mailbox's lease (the Celery layer retries the task later)."""


class FleetRuntime:
    """What one worker process keeps between tasks: the fleet file (read again when it changes), the
    Redis coordination, and per mailbox its router (label vectors and the current head, which reloads
    itself on a promotion), so a task pays only for opening the mailbox and the store."""

    def __init__(self, settings: Settings, *, coordination: Coordination | None = None, encoder: Any = None):
        self.settings = settings
        self.coordination = coordination or Coordination(settings.broker_url, settings.fleet_namespace,
                                                         lease_s=settings.fleet_lease_s)
        self.encoder = encoder  # tests pass a stub; otherwise each mailbox's serving encoder (cached per process)
        self._fleet: dict[str, Settings] = {}
        self._fleet_stamp: float | None = None
        self._routers: dict[str, tuple[tuple[str, str], Any, Any]] = {}
        self._checkpointers: dict[str, Any] = {}  # one per mailbox for the worker's life (each holds a connection)

    def fleet(self) -> dict[str, Settings]:
        path = self.settings.fleet_path
        try:
            stamp = path.stat().st_mtime
        except OSError:
            stamp = None
        if stamp != self._fleet_stamp or not self._fleet:
            self._fleet = load_fleet(path)
            self._fleet_stamp = stamp
        return self._fleet

    def mailbox_settings(self, name: str) -> Settings:
        fleet = self.fleet()
        if name not in fleet:
            raise ConfigError(f"no mailbox {name!r} in the fleet file {self.settings.fleet_path} "
                              f"(it has {', '.join(sorted(fleet))})")
        return fleet[name]

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[OpenMailbox]:
        from labelrouter.mail.backends import open_mailbox
        from labelrouter.store import open_store

        settings = self.mailbox_settings(name)
        labels = load_label_set(settings.labels_path)
        budget = None
        if settings.mailbox == "gmail":
            budget = self.coordination.quota(gmail_account(settings), settings.gmail_units_per_minute)
        mailbox = open_mailbox(settings, budget=budget)
        store = open_store(settings)
        try:
            yield OpenMailbox(name, settings, labels, mailbox, store)
        finally:
            store.close()

    def context(self, opened: OpenMailbox, mode: Any = "apply") -> Any:
        from labelrouter.artifacts import open_artifacts
        from labelrouter.graph.wiring import build_router, build_summarizer, mailbox_context
        from labelrouter.models.encoder_store import serving_encoder
        from labelrouter.models.registry import ModelRegistry

        settings = opened.settings
        encoder = self.encoder or serving_encoder(settings, ModelRegistry(open_artifacts(settings)))
        key = (opened.labels.fingerprint(), encoder.version)
        cached = self._routers.get(opened.name)
        if cached is None or cached[0] != key:  # new labels or a promoted encoder: rebuild; a head reloads itself
            cached = (key, build_router(settings, opened.labels, encoder), build_summarizer(settings))
            self._routers[opened.name] = cached
        _, router, summarizer = cached
        return mailbox_context(settings, router, encoder, summarizer, mode=mode, mailbox=opened.mailbox,
                               store=opened.store)

    def labeler(self, opened: OpenMailbox, mode: Any = "apply") -> Any:
        from labelrouter.graph.labeler import Labeler

        checkpointer = None
        if opened.settings.durable_runs:
            from labelrouter.graph.checkpoints import open_checkpointer

            if opened.name not in self._checkpointers:
                self._checkpointers[opened.name] = open_checkpointer(opened.settings)
            checkpointer = self._checkpointers[opened.name]
        return Labeler(self.context(opened, mode), opened.settings, checkpointer=checkpointer)


def _counts(report: Any) -> dict[str, Any]:
    """A run's outcome counts, for the job's JSON summary."""
    statuses = ("applied", "repaired", "unchanged", "failed")
    return {**{s: report.count(s) for s in statuses}, "already_processed": report.already_processed,
            "message_ids": [o.message_id for o in report.outcomes if o.status in ("applied", "repaired")]}


@contextlib.contextmanager
def _mailbox_held(rt: FleetRuntime, name: str, wait_s: float) -> Iterator[None]:
    with rt.coordination.lease(f"mailbox:{name}", wait_s) as held:
        if not held:
            raise MailboxBusy(f"another worker holds mailbox {name!r}")
        yield


def poll(rt: FleetRuntime, name: str, *, wait_s: float = 0.0) -> dict[str, Any]:
    """Sync what the user did, then label every new inbox message (what `labelrouter run` does)."""
    with _mailbox_held(rt, name, wait_s), rt.open(name) as opened:
        polled = usecases.poll(opened, rt.labeler)
    assert polled.synced is not None and polled.mined is not None
    return {"mailbox": name, "job": "poll", "synced": polled.synced.looked, "touched": polled.synced.touched,
            "examples": dict(polled.mined.examples), **_counts(polled.report)}


def label_messages(rt: FleetRuntime, name: str, message_ids: list[str], *, wait_s: float = 0.0) -> dict[str, Any]:
    """Label these messages of the mailbox (new mail a push notification named), each exactly once."""
    with _mailbox_held(rt, name, wait_s), rt.open(name) as opened:
        report = usecases.label_messages(opened, rt.labeler, message_ids)
    return {"mailbox": name, "job": "label", **_counts(report)}


def nightly_sync(rt: FleetRuntime, name: str, *, wait_s: float = 0.0) -> dict[str, Any]:
    """Every message processed in the window, touched or not, read back and mined."""
    with _mailbox_held(rt, name, wait_s), rt.open(name) as opened:
        synced, mined = usecases.nightly_sync(opened, days=opened.settings.nightly_sync_days)
    return {"mailbox": name, "job": "nightly-sync", "synced": synced.looked, "touched": synced.touched,
            "recorded": synced.recorded, "examples": dict(mined.examples)}


def train(rt: FleetRuntime, name: str, stages: str = "head") -> dict[str, Any]:
    """The training graph on this mailbox's store; a better model is promoted, which its workers' heads
    pick up by themselves. One training per mailbox at a time; it needs no mailbox lease."""
    from labelrouter.training import STAGES

    if stages not in STAGES:  # refused before the lease is taken
        raise ConfigError(f"stages must be one of {sorted(STAGES)}, not {stages!r}")
    with rt.coordination.lease(f"train:{name}") as held:
        if not held:
            return {"mailbox": name, "job": "train", "skipped": "another worker is training this mailbox"}
        settings = rt.mailbox_settings(name)
        from labelrouter.store import open_store

        store = open_store(settings)
        try:
            state = usecases.train(settings, store, load_label_set(settings.labels_path), stages=stages,
                                   encoder=rt.encoder)
        finally:
            store.close()
    return {"mailbox": name, "job": "train", "examples": state.n_examples, "promoted": state.promoted,
            "decision": state.decision, "version": state.candidate_version if state.promoted else state.current_version,
            "skipped": list(state.skipped)}
