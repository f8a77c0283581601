"""A run over a mailbox: label every inbox message the store has not decided (or named new mail), each
exactly once, with failures recorded and never dropped; decisions an interrupted run left half-applied are
finished first, and stored text past its retention is purged. The labeler engine (`graph.labeler`) does
the labeling."""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labelrouter.errors import LabelRouterError, MailboxError
from labelrouter.graph.checkpoints import thread_id
from labelrouter.graph.labeler import CHUNKS_IN_FLIGHT, Labeler, Running, chunks
from labelrouter.nodes.apply import finish_apply
from labelrouter.state import EmailMessage
from labelrouter.util.limits import describe_error

log = logging.getLogger(__name__)


@dataclass
class MessageOutcome:
    message_id: str
    subject: str = ""
    label: str | None = None
    confidence: float | None = None
    fallback: bool = False
    status: str = "failed"  # applied | unchanged | dry-run | skipped | repaired | failed
    error: str | None = None
    degraded: list[str] = field(default_factory=list)



@dataclass
class RunReport:
    outcomes: list[MessageOutcome] = field(default_factory=list)
    already_processed: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)



class MailboxRun:
    """The labeler's runs over its context's mailbox and store."""

    def __init__(self, labeler: Labeler):
        self.labeler = labeler
        self.ctx = labeler.ctx
        self.settings = labeler.settings

    def run_mailbox(self, *, limit: int | None = None, progress: Callable[[int], None] | None = None,
                    on_total: Callable[[int], None] | None = None, wait_s: float = 0.0) -> RunReport:
        """Label every inbox message the store has not labeled yet; record failures.

        In apply mode the mailbox's labeler lock is held throughout (a second run waits `wait_s`, then
        raises MailboxError), and decisions an interrupted run left half-applied are finished first."""
        mailbox = self.ctx.mailbox
        if mailbox is None:
            raise LabelRouterError("run needs a mailbox")
        if self.ctx.mode not in ("apply", "shadow"):
            return self._run_mailbox(limit, progress, on_total)
        with mailbox.lock(wait_s):
            return self._run_mailbox(limit, progress, on_total)

    def run_messages(self, message_ids: list[str], *, wait_s: float = 0.0) -> RunReport:
        """Label these messages of the mailbox (a worker told of new mail), each exactly once: under the
        mailbox's lock, after finishing half-applied decisions, skipping those the store has decided."""
        mailbox, store = self.ctx.mailbox, self.ctx.store
        if mailbox is None or store is None or self.ctx.mode != "apply":
            raise LabelRouterError("labeling named messages needs a mailbox, a store and apply mode")
        with mailbox.lock(wait_s):
            report = RunReport(outcomes=self.repair_pending())
            done = store.labeled_ids()
            todo = [mid for mid in dict.fromkeys(message_ids) if mid not in done]
            report.already_processed = len(set(message_ids)) - len(todo)
            self._label_ids(todo, report, True, None)
            return report

    def _run_mailbox(self, limit: int | None, progress: Callable[[int], None] | None,
                     on_total: Callable[[int], None] | None) -> RunReport:
        mailbox, store = self.ctx.mailbox, self.ctx.store
        assert mailbox is not None
        record = self.ctx.mode in ("apply", "shadow") and store is not None
        report = RunReport()
        if record and self.ctx.mode == "apply":
            report.outcomes.extend(self.repair_pending())
            if self.settings.text_retention_days is not None:
                cutoff = datetime.now(UTC) - timedelta(days=self.settings.text_retention_days)
                store.purge_text(cutoff.isoformat(timespec="seconds"))  # type: ignore[union-attr]
        done = store.labeled_ids() if store is not None else set()
        inbox = mailbox.list_inbox()
        todo = [mid for mid in inbox if mid not in done]
        threads = self.labeler.interrupted_threads()  # interrupted durable runs finish first
        resumable = [mid for mid in todo if thread_id(mid) in threads and self.labeler.pending(mid)]
        for mid in resumable:
            try:
                result: dict[str, Any] | Exception = self.labeler.resume(mid)
                message = result["message"]  # type: ignore[index]
            except Exception as exc:  # noqa: BLE001 - one message's failure
                result, message = exc, EmailMessage(id=mid)
            report.outcomes.append(self._outcome(message, result, record))
        resumed = set(resumable)
        todo = [mid for mid in todo if mid not in resumed]
        report.already_processed = len(inbox) - len(todo)
        if limit is not None:
            todo = todo[:limit]
        if on_total:
            on_total(len(todo))
        self._label_ids(todo, report, record, progress)
        return report

    def _label_ids(self, todo: list[str], report: RunReport, record: bool,
                   progress: Callable[[int], None] | None) -> None:
        """Label these messages chunk by chunk. While a chunk runs through the graph on the labeler's
        threads, this thread fetches and parses the next (within its time budget, which only this thread
        can enforce), and starts it as soon as the one before is encoded: that one's scoring and applying
        then overlap the new chunk's forward pass instead of leaving the encoder idle."""
        running: deque[tuple[Running, list[MessageOutcome]]] = deque()
        try:
            for ids in chunks(todo, self.labeler.chunk_size):
                parsed, unreadable = self._read(ids, record)
                if running:
                    running[-1][0].wait_encoded()
                while len(running) >= CHUNKS_IN_FLIGHT:
                    self._report(*running.popleft(), report, record, progress)
                running.append((self.labeler.submit(parsed), unreadable))
            while running:
                self._report(*running.popleft(), report, record, progress)
        finally:  # nothing of this run is left working behind an error that leaves it
            for chunk, _ in running:
                wait(chunk.futures)

    def _read(self, ids: list[str], record: bool) -> tuple[list[EmailMessage], list[MessageOutcome]]:
        mailbox, store = self.ctx.mailbox, self.ctx.store
        assert mailbox is not None
        parsed: list[EmailMessage] = []
        unreadable: list[MessageOutcome] = []
        try:
            fetched: dict[str, Any] = mailbox.fetch_many(ids)
        except Exception as exc:  # noqa: BLE001 - the mailbox could not be read: each message fails with it
            fetched = {mid: exc for mid in ids}
        for mid in ids:
            try:
                got = fetched.get(mid) or MailboxError(f"the mailbox did not answer for message {mid!r}")
                if isinstance(got, Exception):
                    raise got
                raw, label_ids = got
                parsed.append(self.labeler.parse(raw, message_id=mid, label_ids=label_ids))
            except Exception as exc:  # noqa: BLE001 - whatever one message raises is that message's failure
                error = describe_error(exc)
                log.warning("message %s failed: %s", mid, error)
                unreadable.append(MessageOutcome(mid, status="failed", error=error))
                if record:
                    store.record_failed(mid, error)  # type: ignore[union-attr]
        return parsed, unreadable

    def _report(self, chunk: Running, unreadable: list[MessageOutcome], report: RunReport, record: bool,
                progress: Callable[[int], None] | None) -> None:
        outcomes = unreadable + [self._outcome(message, result, record) for message, result in
                                 zip(chunk.messages, self.labeler.collect(chunk.messages, chunk.futures), strict=True)]
        for outcome in outcomes:
            report.outcomes.append(outcome)
            if progress:
                progress(1)

    def repair_pending(self) -> list[MessageOutcome]:
        """Finish every decision recorded as 'applying' (a crash or an error between the intent and the
        mailbox change): the change is repeated idempotently and the row completed. A message that has
        left the mailbox entirely is recorded as failed."""
        ctx, store, mailbox = self.ctx, self.ctx.store, self.ctx.mailbox
        assert store is not None and mailbox is not None
        outcomes = []
        for row in store.pending_intents():
            mid, label = str(row["message_id"]), str(row["label_applied"] or "")
            base = MessageOutcome(mid, str(row["subject"] or ""), label=label, confidence=row["confidence"],
                                  fallback=bool(row["fallback"]))
            try:
                if not mailbox.label_ids(mid):
                    gone = "message left the mailbox before its label was confirmed"
                    store.abandon_intent(mid, gone)
                    outcomes.append(dataclasses.replace(base, status="failed", error=gone))
                    continue
                label_id = ctx.mailbox_ids.get(label) or row["intent_label_id"]
                if not label_id:
                    raise LabelRouterError(f"interrupted decision names label {label!r}, which has no mailbox id")
                result = finish_apply(ctx, mid, label, str(label_id), bool(row["archived"]), status="repaired",
                                      detail="finished an interrupted apply")
                outcomes.append(dataclasses.replace(base, label=result.label, status="repaired"))
            except Exception as exc:  # noqa: BLE001 - one message's repair failing is that message's failure
                error = describe_error(exc)
                log.warning("repair of message %s failed: %s", mid, error)
                store.record_failed(mid, error)
                outcomes.append(dataclasses.replace(base, status="failed", error=error))
        return outcomes

    def _outcome(self, message: EmailMessage, result: dict[str, Any] | Exception, record: bool) -> MessageOutcome:
        if isinstance(result, Exception):
            error = describe_error(result)
            log.warning("message %s failed: %s", message.id, error)
            if record:
                self.ctx.store.record_failed(message.id, error)  # type: ignore[union-attr]
            return MessageOutcome(message.id, message.subject, status="failed", error=error)
        routing, applied = result["routing"], result["applied"]
        return MessageOutcome(
            message.id, message.subject, label=applied.label, confidence=routing.confidence,
            fallback=routing.fallback, status=applied.status, degraded=list(result.get("errors") or []),
        )
