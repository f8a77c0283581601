"""Labeling many messages: batched graph invocations over a mailbox, with failures recorded, never dropped."""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labelrouter.errors import LabelRouterError, MailboxError
from labelrouter.extensions import Extension, load_extensions
from labelrouter.graph.checkpoints import thread_id, thread_of
from labelrouter.graph.inference import build_inference_graph
from labelrouter.mail.parse import parse_message
from labelrouter.models.batching import MicroBatcher
from labelrouter.nodes.apply import finish_apply
from labelrouter.nodes.context import LabelerContext
from labelrouter.settings import Settings
from labelrouter.state import EmailMessage
from labelrouter.util.limits import describe_error, time_budget

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


# Chunks a run has in the graph at once: the next starts when the one before is encoded, so the graph's
# work after the encoder (scoring, explaining, applying) overlaps the next forward pass.
CHUNKS_IN_FLIGHT = 2


@dataclass
class _Running:
    """A chunk's invocations in flight, and the batcher its encoding goes through."""

    messages: list[EmailMessage]
    futures: list[Future[dict[str, Any]]]
    batcher: MicroBatcher[Any, Any]

    def wait_encoded(self) -> None:
        """Until every message of the chunk that needs the encoder has been through it (or has ended)."""
        while not self.batcher.drained.wait(0.05):
            if all(f.done() for f in self.futures):
                return


@dataclass
class RunReport:
    outcomes: list[MessageOutcome] = field(default_factory=list)
    already_processed: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parse_raw(raw: bytes, settings: Settings, *, message_id: str | None = None,
              label_ids: list[str] | None = None) -> EmailMessage:
    """Parse and clean one message within the settings' caps and time budget (no model needed)."""
    with time_budget(settings.message_time_budget_s, "parsing this message"):
        return parse_message(raw, message_id=message_id, label_ids=label_ids, limits=settings.parse_limits())


class Labeler:
    """Runs the compiled inference graph for one message or many (micro-batched encoding)."""

    def __init__(self, ctx: LabelerContext, settings: Settings, *, chunk_size: int | None = None,
                 extensions: list[Extension] | None = None, checkpointer: Any | None = None,
                 keep_checkpoints: bool = False):
        self.ctx = ctx
        self.settings = settings
        self.chunk_size = chunk_size or settings.batch_size
        # The extended graph: installed extensions and LABELROUTER_EXTENSIONS, unless given explicitly.
        extensions = load_extensions(settings.extensions) if extensions is None else extensions
        # Durable runs (`graph.checkpoints`): state saved after every node, one thread per message; a
        # finished message's thread is deleted unless `keep_checkpoints` (it holds the message's text).
        self.checkpointer = checkpointer
        self.keep_checkpoints = keep_checkpoints
        self.graph = build_inference_graph(extensions=extensions).compile(checkpointer=checkpointer)
        # One pool of threads for the labeler's life: `graph.batch` starts a fresh pool of 64
        # threads per call, and starting them while the chunk's first invocations hold the GIL cost more
        # than the graph's own steps (benchmarks, "The pipeline against the raw encoder").
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _config(self, message_id: str) -> dict[str, Any]:
        return thread_of(message_id) if self.checkpointer is not None else {}

    def _finished(self, message_id: str) -> None:
        if self.checkpointer is not None and not self.keep_checkpoints:
            self.checkpointer.delete_thread(thread_id(message_id))

    def _threads(self) -> set[str]:
        """Threads with checkpoints: a finished message's is deleted, so these are the interrupted runs'
        (and, with `keep_checkpoints`, the kept ones)."""
        if self.checkpointer is None:
            return set()
        return {c.config["configurable"]["thread_id"] for c in self.checkpointer.list(None)}

    def pending(self, message_id: str) -> tuple[str, ...]:
        """The nodes a checkpointed run of this message still has to run (empty: none was interrupted)."""
        if self.checkpointer is None:
            return ()
        return tuple(self.graph.get_state(thread_of(message_id)).next)

    def resume(self, message_id: str) -> dict[str, Any]:
        """Finish an interrupted run of this message from its last checkpoint: the nodes that completed
        (summarize, label_router: the embedding) are not run again."""
        if not self.pending(message_id):
            raise LabelRouterError(f"no interrupted run of message {message_id!r} to resume")
        result = self.graph.invoke(None, thread_of(message_id), context=self.ctx)
        self._finished(message_id)
        return result

    def parse(self, raw: bytes, *, message_id: str | None = None, label_ids: list[str] | None = None) -> EmailMessage:
        return parse_raw(raw, self.settings, message_id=message_id, label_ids=label_ids)

    def label(self, message: EmailMessage) -> dict[str, Any]:
        result = self.graph.invoke({"message": message}, self._config(message.id), context=self.ctx)
        self._finished(message.id)
        return result

    def label_many(self, messages: list[EmailMessage]) -> list[dict[str, Any] | Exception]:
        """Invoke the graph for every message of a chunk at once so their encodings share forward passes.
        A message's failure is its result (the exception), not the chunk's."""
        results: list[dict[str, Any] | Exception] = []
        for chunk in _chunks(messages, self.chunk_size):
            results.extend(self._collect(chunk, self._submit(chunk).futures))
        return results

    def _submit(self, chunk: list[EmailMessage]) -> _Running:
        """Start one chunk's graph invocations (at most chunk_size messages) on the labeler's threads."""
        batcher = MicroBatcher(self.ctx.embed_and_score, max_batch=self.chunk_size)
        batcher.expect(len(chunk))
        ctx = dataclasses.replace(self.ctx, batcher=batcher)
        # Submitted together under the lock: a chunk's invocations are never queued behind another
        # caller's, which would leave the batcher waiting for callers that cannot start.
        with self._pool_lock:
            pool = self._pool = self._pool or ThreadPoolExecutor(self.chunk_size * CHUNKS_IN_FLIGHT,
                                                                 "labelrouter-label")
            futures = [pool.submit(contextvars.copy_context().run, self.graph.invoke, {"message": m},
                                   self._config(m.id), context=ctx) for m in chunk]
        return _Running(chunk, futures, batcher)

    def _collect(self, chunk: list[EmailMessage],
                 futures: list[Future[dict[str, Any]]]) -> list[dict[str, Any] | Exception]:
        wait(futures)  # every invocation ends before anything, even a BaseException, leaves this chunk
        results: list[dict[str, Any] | Exception] = []
        for message, future in zip(chunk, futures, strict=True):
            try:
                result: dict[str, Any] | Exception = future.result()
            except Exception as exc:  # noqa: BLE001 - one message's failure is that message's result
                result = exc
            else:
                self._finished(message.id)
            results.append(result)
        return results

    def close(self) -> None:
        """Stop the labeling threads (idle ones also end when the labeler is garbage-collected)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def __enter__(self) -> Labeler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        threads = self._threads()  # interrupted durable runs finish first
        resumable = [mid for mid in todo if thread_id(mid) in threads and self.pending(mid)]
        for mid in resumable:
            try:
                result: dict[str, Any] | Exception = self.resume(mid)
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
        running: deque[tuple[_Running, list[MessageOutcome]]] = deque()
        try:
            for ids in _chunks(todo, self.chunk_size):
                parsed, unreadable = self._read(ids, record)
                if running:
                    running[-1][0].wait_encoded()
                while len(running) >= CHUNKS_IN_FLIGHT:
                    self._report(*running.popleft(), report, record, progress)
                running.append((self._submit(parsed), unreadable))
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
                parsed.append(self.parse(raw, message_id=mid, label_ids=label_ids))
            except Exception as exc:  # noqa: BLE001 - whatever one message raises is that message's failure
                error = describe_error(exc)
                log.warning("message %s failed: %s", mid, error)
                unreadable.append(MessageOutcome(mid, status="failed", error=error))
                if record:
                    store.record_failed(mid, error)  # type: ignore[union-attr]
        return parsed, unreadable

    def _report(self, chunk: _Running, unreadable: list[MessageOutcome], report: RunReport, record: bool,
                progress: Callable[[int], None] | None) -> None:
        outcomes = unreadable + [self._outcome(message, result, record) for message, result in
                                 zip(chunk.messages, self._collect(chunk.messages, chunk.futures), strict=True)]
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
