"""The local embedding model on ONNX Runtime against PyTorch: same answers, and how much faster.

    python -m benchmarks.embed_engines [--data ../shared/data/faq_bench/clinc150] [--split test]

Embeds a faq_bench set's FAQ phrasings (kb.jsonl: each entry's question and example questions)
and its questions with both engines (providers.onnx_encoder, settings.LOCAL_EMBED_ENGINE), then
answers every in-scope question with its nearest phrasing's entry. Prints the largest difference
between the two engines' vectors, how often their top-1 entries agree, each engine's top-1
accuracy, and each engine's texts/s at batch sizes 1, 4 and 32 (one thread, as the servers).
Ends with one JSON line.

Last run (2026-12-02, 2 cores, CLINC150 TEST): largest vector difference 4.1e-7, top-1 agreement
4,500 of 4,500 (accuracy 0.8136 on both); texts/s at batch 1 / 4 / 32: ONNX Runtime 122 / 250 /
336, PyTorch 53 / 145 / 297. Bulk embedding of the 5,400 mixed-length texts took about as long on
both (22.0 s / 20.4 s): the gain is in the small batches questions come in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faq_bench" / "clinc150"


def _read(path: Path) -> list[dict]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _embed(engine: str, texts: list[str]) -> tuple[np.ndarray, float]:
    from django.test import override_settings

    from providers.local import LocalProvider

    with override_settings(LOCAL_EMBED_ENGINE=engine):
        provider = LocalProvider()
        provider.embed(texts[:8])  # load (and export) outside the clock
        started = time.perf_counter()
        vectors = np.array(provider.embed(texts), dtype=np.float32)
    return vectors, time.perf_counter() - started


def reference_texts(count: int = 32) -> list[str]:
    """Short customer questions of one length: the raw throughput reference's batch."""
    return [f"Can I return order {i} if it arrived damaged?" for i in range(count)]


def _seconds_per_call(provider, texts: list[str], seconds: float) -> float:
    """Mean wall time of provider.embed(texts), over at least `seconds` and 3 calls, after one
    call outside the clock (the model's load and export)."""
    provider.embed(texts)
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        provider.embed(texts)
        calls += 1
    return (time.perf_counter() - started) / calls


def raw_embedding_tps(engine: str | None = None, batch: int = 32, seconds: float = 3.0) -> float:
    """Texts/s of the local embedding model in batches of `batch` short questions, in this
    process (one thread, as the servers), on `engine` or settings.LOCAL_EMBED_ENGINE.
    benchmarks.chat_load's raw reference too."""
    from django.test import override_settings

    from providers.local import LocalProvider

    with override_settings(**({"LOCAL_EMBED_ENGINE": engine} if engine else {})):
        return batch / _seconds_per_call(LocalProvider(), reference_texts(batch), seconds)


def replay_tps(sizes: list[int], texts: list[str], seconds: float = 0.4) -> float:
    """Texts/s of the local model (settings.LOCAL_EMBED_ENGINE, this process) embedding batches of
    exactly `sizes` out of `texts`: what the batches a load offered would cost on an idle core.
    Each distinct size is timed once (at least `seconds`) and weighted by how often it came."""
    from providers.local import LocalProvider

    provider = LocalProvider()
    spent = 0.0
    for size, count in Counter(sizes).items():
        batch = [texts[i % len(texts)] for i in range(size)]
        spent += _seconds_per_call(provider, batch, seconds) * count
    return sum(sizes) / spent if spent else 0.0


def batcher_tps(waiting: int, texts: list[str], seconds: float = 1.5) -> dict:
    """The embedding stage when questions pile up: `waiting` questions at a time, each awaited
    on an event loop as the web views await theirs (chat.answering.pipeline.finish_query_vector), through
    this process's batcher (providers.batching.batcher: the server's batch size, wait and queue);
    each answered question is replaced by the next. Texts/s and the mean batch it formed."""
    import asyncio

    from providers.batching import batcher

    queue = batcher()
    queue.embed("local", None, texts[0])  # the thread and the model, outside the clock
    before = dict(queue.stats)

    async def run() -> tuple[int, float]:
        done = 0
        stop = time.perf_counter() + seconds

        async def customer(index: int) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                text = texts[(index + done) % len(texts)]
                await asyncio.wrap_future(queue.submit("local", None, text))
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(customer(i) for i in range(waiting)))
        return done, time.perf_counter() - started

    done, elapsed = asyncio.run(run())
    batches = queue.stats["batches"] - before["batches"]
    return {
        "tps": done / elapsed,
        "mean_batch": (queue.stats["texts"] - before["texts"]) / batches if batches else 0.0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    if not (args.data / "kb.jsonl").exists():
        print(f"No faq_bench set at {args.data}")
        return 1
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    phrasings, labels = [], []
    for entry in _read(args.data / "kb.jsonl"):
        for text in [entry["question"], *entry.get("example_questions", [])]:
            phrasings.append(text)
            labels.append(entry["faq_id"])
    questions = [q for q in _read(args.data / f"{args.split}.jsonl") if q["gold_faq_id"]]
    texts = [q["text"] for q in questions]
    gold = [q["gold_faq_id"] for q in questions]
    labels = np.array(labels)

    results = {}
    for engine in ("torch", "onnx"):
        kb, kb_s = _embed(engine, phrasings)
        qs, qs_s = _embed(engine, texts)
        top1 = labels[(qs @ kb.T).argmax(axis=1)]
        results[engine] = {
            "kb": kb,
            "qs": qs,
            "top1": top1,
            "acc": float(np.mean(top1 == np.array(gold))),
            "seconds": kb_s + qs_s,
        }
    difference = float(
        max(
            np.abs(results["onnx"]["kb"] - results["torch"]["kb"]).max(),
            np.abs(results["onnx"]["qs"] - results["torch"]["qs"]).max(),
        )
    )
    agree = float(np.mean(results["onnx"]["top1"] == results["torch"]["top1"]))
    print(
        f"{args.data.name} {args.split}: {len(phrasings)} phrasings, {len(texts)} in-scope questions"
    )
    print(f"largest difference between the engines' vectors: {difference:.2e}")
    print(f"top-1 entry agreement: {agree:.4f}")
    for engine in ("torch", "onnx"):
        r = results[engine]
        print(
            f"{engine:>5}: top-1 accuracy {r['acc']:.4f}; embedded {len(phrasings) + len(texts)} "
            f"texts in {r['seconds']:.1f} s"
        )
    speeds = {
        engine: {batch: raw_embedding_tps(engine, batch) for batch in (1, 4, 32)}
        for engine in ("torch", "onnx")
    }
    print(f"{'texts/s':>8} {'batch 1':>8} {'batch 4':>8} {'batch 32':>8}")
    for engine, row in speeds.items():
        print(f"{engine:>8} " + " ".join(f"{row[b]:>8.0f}" for b in (1, 4, 32)))
    summary = {
        "set": args.data.name,
        "split": args.split,
        "max_vector_difference": difference,
        "top1_agreement": round(agree, 4),
        "top1_torch": round(results["torch"]["acc"], 4),
        "top1_onnx": round(results["onnx"]["acc"], 4),
        "tps_torch": {str(b): round(v, 1) for b, v in speeds["torch"].items()},
        "tps_onnx": {str(b): round(v, 1) for b, v in speeds["onnx"].items()},
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
