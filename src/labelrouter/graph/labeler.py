"""The labeler engine: the compiled inference graph run for one message or many, a chunk's encodings
shared in one forward pass, on a pool of threads kept for the labeler's life; durable runs resume from
their checkpoints. What to label and what to record is the mailbox run's job (`graph.mailbox_run`)."""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from labelrouter.errors import LabelRouterError
from labelrouter.extensions import Extension, load_extensions
from labelrouter.graph.checkpoints import thread_id, thread_of
from labelrouter.graph.inference import build_inference_graph
from labelrouter.mail.parse import parse_message
from labelrouter.models.batching import MicroBatcher
from labelrouter.nodes.context import LabelerContext
from labelrouter.settings import Settings
from labelrouter.state import EmailMessage
from labelrouter.util.limits import time_budget

log = logging.getLogger(__name__)


# Chunks a run has in the graph at once: the next starts when the one before is encoded, so the graph's
# work after the encoder (scoring, explaining, applying) overlaps the next forward pass.
CHUNKS_IN_FLIGHT = 2


@dataclass
class Running:
    """A chunk's invocations in flight, and the batcher its encoding goes through."""

    messages: list[EmailMessage]
    futures: list[Future[dict[str, Any]]]
    batcher: MicroBatcher[Any, Any]

    def wait_encoded(self) -> None:
        """Until every message of the chunk that needs the encoder has been through it (or has ended)."""
        while not self.batcher.drained.wait(0.05):
            if all(f.done() for f in self.futures):
                return


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
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
        # than the graph's own steps (docs/decisions/0001-labeler-thread-pool.md).
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _config(self, message_id: str) -> dict[str, Any]:
        return thread_of(message_id) if self.checkpointer is not None else {}

    def _finished(self, message_id: str) -> None:
        if self.checkpointer is not None and not self.keep_checkpoints:
            self.checkpointer.delete_thread(thread_id(message_id))

    def interrupted_threads(self) -> set[str]:
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
        for chunk in chunks(messages, self.chunk_size):
            results.extend(self.collect(chunk, self.submit(chunk).futures))
        return results

    def submit(self, chunk: list[EmailMessage]) -> Running:
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
        return Running(chunk, futures, batcher)

    def collect(self, chunk: list[EmailMessage],
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
