"""Micro-batching: many graph invocations running at once share one encoder forward pass.

The graph runs once per message, but encoding one message at a time wastes most of the encoder's speed.
When `run` labels a chunk of messages it invokes the graph for all of them concurrently; each
`label_router` call hands its text to this batcher and blocks until the batch it joined is encoded.
A batch is encoded when it is full, when every expected caller has arrived, or once no caller has
arrived for `max_wait_s` (a caller whose message failed earlier never arrives; the wait bounds that
case). The wait is counted from the latest arrival, not from each caller's own: the graph's threads reach
the encoder spread over the chunk's summarizing, and a wait per caller cut a chunk of 64 into about four
forward passes. Half a second of quiet is only ever waited out when an expected caller is not coming (its
message failed before the encoder); 64 threads sharing the GIL can leave gaps of tens of milliseconds
between arrivals, and a shorter quiet period split chunks there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np


class MicroBatcher:
    def __init__(self, encode: Callable[[list[str]], np.ndarray], *, max_batch: int = 64, max_wait_s: float = 0.5):
        self._encode = encode
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._queued: set[Future[np.ndarray]] = set()  # the futures in _pending: a waiter's check is O(1)
        self._expected = 0
        self._last_arrival = 0.0
        self.batches: list[int] = []  # sizes of the batches encoded, for tests and benchmarks

    def expect(self, n: int) -> None:
        """Tell the batcher how many callers are coming, so it need not wait for stragglers."""
        with self._cond:
            self._expected = n

    def encode_one(self, text: str) -> np.ndarray:
        future: Future[np.ndarray] = Future()
        with self._cond:
            self._pending.append((text, future))
            self._queued.add(future)
            self._expected = max(0, self._expected - 1)
            self._last_arrival = time.monotonic()
            # With no expectation set (a single invoke) the batch is encoded at once: nobody waits.
            flush = len(self._pending) >= self.max_batch or self._expected == 0
            while not flush and future in self._queued:
                quiet_until = self._last_arrival + self.max_wait_s
                if time.monotonic() >= quiet_until:
                    flush = True  # nobody arrived for max_wait_s and nobody took us: encode what is there
                else:
                    self._cond.wait(timeout=quiet_until - time.monotonic())
            batch = self._take() if flush else []
        if batch:
            self._run(batch)
        return future.result()

    def _take(self) -> list[tuple[str, Future[np.ndarray]]]:
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        self._queued.difference_update(f for _, f in batch)
        self._cond.notify_all()  # callers in this batch stop waiting and block on their future
        return batch

    def _run(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        try:
            vectors = self._encode([text for text, _ in batch])
        except BaseException as exc:  # every waiter must learn of the failure, not hang
            for _, future in batch:
                future.set_exception(exc)
        else:
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)
        self.batches.append(len(batch))
