"""The query micro-batcher: one model call for concurrent questions, a bounded queue."""

from __future__ import annotations

import threading
import time

import pytest

from providers.batching import MicroBatcher, Overloaded


def test_questions_waiting_together_are_embedded_in_one_call():
    calls = []

    def embed(provider, model, texts):
        calls.append((provider, model, list(texts)))
        return [[float(len(t))] for t in texts]

    batcher = MicroBatcher(embed, max_batch=8, wait_s=0.3, max_queue=8)
    futures = [batcher.submit("local", None, text) for text in ("a", "bb", "ccc")]
    other = batcher.submit("openai", "m", "dddd")  # another model: a batch of its own
    assert [f.result(5) for f in futures] == [[1.0], [2.0], [3.0]]
    assert other.result(5) == [4.0]
    assert calls == [("local", None, ["a", "bb", "ccc"]), ("openai", "m", ["dddd"])]
    assert batcher.stats["texts"] == 4 and batcher.stats["batches"] == 2


def test_a_full_queue_refuses_at_once_and_a_model_error_reaches_every_waiter():
    release = threading.Event()

    def embed(provider, model, texts):
        release.wait(5)
        raise RuntimeError("model down")

    batcher = MicroBatcher(embed, max_batch=1, wait_s=0, max_queue=2)
    first = batcher.submit("local", None, "one")  # taken by the model, which hangs
    while batcher._queue:  # until the batcher has taken it
        time.sleep(0.01)
    queued = [batcher.submit("local", None, t) for t in ("two", "three")]
    with pytest.raises(Overloaded) as exc:
        batcher.submit("local", None, "four")
    assert exc.value.retry_after >= 1
    release.set()
    for future in [first, *queued]:
        with pytest.raises(RuntimeError, match="model down"):
            future.result(5)
