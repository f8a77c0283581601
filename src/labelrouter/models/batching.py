"""Micro-batching: many graph invocations running at once share one encoder forward pass.

The graph runs once per message, but encoding one message at a time wastes most of the encoder's speed,
and scoring one at a time repeats per-call work (the head's lexical features, the reranker's passes).
When `run` labels a chunk of messages it invokes the graph for all of them concurrently; each
`label_router` call hands its item (text and document) to this batcher and blocks until the batch it
joined is embedded and scored (`LabelerContext.embed_and_score`).
A batch is encoded when it is full, when every expected caller has arrived or withdrawn (a message a
sender rule decided, or one without content, never needs the encoder), or once no caller has arrived for
`max_wait_s` (a caller whose message failed earlier never arrives; the wait bounds that case). The wait
is counted from the latest arrival, not from each caller's own: the graph's threads reach the encoder
spread over the chunk's summarizing, and a wait per caller cut a chunk of 64 into about four forward
passes. Half a second of quiet is only ever waited out when an expected caller is not coming (its
message failed before the encoder); 64 threads sharing the GIL can leave gaps of tens of milliseconds
between arrivals, and a shorter quiet period split chunks there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Calls `fn` on batches of the items callers bring one at a time. `fn` returns one result per item, in
    order; a result that is an exception is raised to that item's caller alone."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R | BaseException]], *, max_batch: int = 64,
                 max_wait_s: float = 0.5):
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._pending: list[tuple[T, Future[R]]] = []
        self._queued: set[Future[R]] = set()  # the futures in _pending: a waiter's check is O(1)
        self._expected = 0
        self._last_arrival = 0.0
        self.batches: list[int] = []  # sizes of the batches encoded, for tests and benchmarks
        self.quiet_flushes = 0  # batches sent after waiting out max_wait_s for a caller that never came
        self.drained = threading.Event()  # every expected caller has arrived or withdrawn, and was taken

    def expect(self, n: int) -> None:
        """Tell the batcher how many callers are coming, so it need not wait for stragglers."""
        with self._cond:
            self._expected = n

    def withdraw(self) -> None:
        """An expected caller is not coming (its message was decided without the encoder): the batch need
        not wait for it."""
        with self._cond:
            self._expected = max(0, self._expected - 1)
            if self._expected == 0:
                self._cond.notify_all()
                if not self._pending:
                    self.drained.set()

    def call(self, item: T) -> R:
        future: Future[R] = Future()
        with self._cond:
            self._pending.append((item, future))
            self._queued.add(future)
            self._expected = max(0, self._expected - 1)
            self._last_arrival = time.monotonic()
            # With no expectation set (a single invoke) the batch is encoded at once: nobody waits.
            flush = len(self._pending) >= self.max_batch or self._expected == 0
            while not flush and future in self._queued:
                quiet_until = self._last_arrival + self.max_wait_s
                if self._expected == 0:
                    flush = True  # the last expected caller withdrew: nobody else is coming
                elif time.monotonic() >= quiet_until:
                    flush = True  # nobody arrived for max_wait_s and nobody took us: encode what is there
                    self.quiet_flushes += 1
                else:
                    self._cond.wait(timeout=quiet_until - time.monotonic())
            batch = self._take() if flush else []
        if batch:
            self._run(batch)
        return future.result()

    def _take(self) -> list[tuple[T, Future[R]]]:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._queued.difference_update(f for _, f in batch)
        if self._expected == 0 and not self._pending:
            self.drained.set()
        self._cond.notify_all()  # callers in this batch stop waiting and block on their future
        return batch

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            results = self._fn([item for item, _ in batch])
        except BaseException as exc:  # every waiter must learn of the failure, not hang
            for _, future in batch:
                future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        self.batches.append(len(batch))
