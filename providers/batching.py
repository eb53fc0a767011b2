"""Micro-batching of query embeddings: concurrent questions share one model call.

MiniLM embeds about 140 sentences/s in batches against about 40/s one at a time (2 cores), so
under load a web process embeds each waiting question together with the others: a batch waits
up to EMBED_BATCH_WAIT_MS for company (only when fewer than EMBED_BATCH_MAX are waiting), then
one `embed()` call runs on the batcher's own thread, never on the event loop. One batcher per
process serves every (provider, model); a batch holds texts of one of them. The web views submit
a question and await its Future on the event loop (chat.answering.pipeline.finish_query_vector), so a
question waiting for its batch holds no answer thread: with the wait on a pool thread, a web
worker's batches were capped at its ANSWER_THREADS (8), and its 50-client batches averaged 2.2
questions; awaited on the loop, 3.8-3.9 (benchmarks/chat_load.py).

Back-pressure: at most EMBED_QUEUE_MAX questions wait. One more raises Overloaded at once (the
views answer 503 with Retry-After), so a burst never becomes an unbounded pile-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from django.conf import settings

from .base import ProviderUnavailable

log = logging.getLogger(__name__)


class Overloaded(ProviderUnavailable):
    """Too much waiting already: come back in `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


EmbedFn = Callable[[str, str | None, Sequence[str]], list[list[float]]]


class MicroBatcher:
    """Collects (key, text) requests; `embed_fn(provider, model, texts)` embeds one batch.

    `stats` counts texts, batches and the seconds spent inside embed_fn (busy), so a benchmark
    can compare throughput under load with a raw batch measurement.
    """

    def __init__(self, embed_fn: EmbedFn, *, max_batch: int, wait_s: float, max_queue: int):
        self.embed_fn = embed_fn
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_s)
        self.max_queue = max(1, max_queue)
        self._queue: deque[tuple[tuple[str, str | None], str, Future]] = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.stats = {"texts": 0, "batches": 0, "busy_s": 0.0, "largest": 0}

    def submit(self, provider: str, model: str | None, text: str) -> Future:
        future: Future = Future()
        with self._cv:
            if len(self._queue) >= self.max_queue:
                raise Overloaded(
                    f"{len(self._queue)} questions are waiting to be embedded; try again shortly."
                )
            self._queue.append(((provider, model), text, future))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="askhandle-embed-batcher", daemon=True
                )
                self._thread.start()
            self._cv.notify()
        return future

    def embed(self, provider: str, model: str | None, text: str, timeout: float = 60) -> list:
        """Blocks the calling thread (not the event loop) until its batch is embedded."""
        return self.submit(provider, model, text).result(timeout)

    def _take(self) -> list[tuple[tuple[str, str | None], str, Future]]:
        with self._cv:
            while not self._queue:
                self._cv.wait()
            deadline = time.monotonic() + self.wait_s
            while len(self._queue) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            key = self._queue[0][0]
            batch, rest = [], deque()
            while self._queue:
                item = self._queue.popleft()
                if item[0] == key and len(batch) < self.max_batch:
                    batch.append(item)
                else:
                    rest.append(item)
            self._queue = rest
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            batch = [item for item in batch if item[2].set_running_or_notify_cancel()]
            if not batch:
                continue
            (provider, model), texts = batch[0][0], [text for _, text, _ in batch]
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                vectors = self.embed_fn(provider, model, texts)
            except BaseException as exc:  # each waiting question gets the model's error
                for _, _, future in batch:
                    future.set_exception(exc)
                continue
            finally:
                self.stats["busy_s"] += time.perf_counter() - started
            # One line per batch when this logger is on (benchmarks/chat_load.py reads them).
            # busy_ms: wall time in the model (what a waiting question feels); cpu_ms: this
            # thread's processor time in it (without the time other processes had the core).
            log.debug(
                "embed batch texts=%d busy_ms=%.2f cpu_ms=%.2f at=%.3f",
                len(texts),
                (time.perf_counter() - started) * 1000,
                (time.thread_time() - started_cpu) * 1000,
                time.time(),
            )
            self.stats["texts"] += len(texts)
            self.stats["batches"] += 1
            self.stats["largest"] = max(self.stats["largest"], len(texts))
            for (_, _, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


_batcher: MicroBatcher | None = None
_batcher_lock = threading.Lock()


def _embed_with(provider: str, model: str | None, texts: Sequence[str]) -> list[list[float]]:
    from . import get_provider  # the package imports this module while it initialises

    return get_provider(provider).embed(list(texts), model=model or None)


def batcher() -> MicroBatcher:
    """This process's batcher, built from settings on first use."""
    global _batcher
    if _batcher is None:
        with _batcher_lock:
            if _batcher is None:
                _batcher = MicroBatcher(
                    _embed_with,
                    max_batch=settings.EMBED_BATCH_MAX,
                    wait_s=settings.EMBED_BATCH_WAIT_MS / 1000,
                    max_queue=settings.EMBED_QUEUE_MAX,
                )
    return _batcher


def reset_batcher() -> None:
    """Forget the batcher so the next use reads settings again (tests that change them)."""
    global _batcher
    with _batcher_lock:
        _batcher = None
