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
With the int8 question graph (later the same day, a faster hour): questions' cosine to PyTorch
0.9928 mean, 0.9627 lowest; top-1 0.8118 against float's 0.8136 (agreement 0.976); BANKING77-OOS
TEST 0.7175 against 0.7140 (cosine 0.9938 / 0.9813). texts/s at batch 1 / 4 / 32: int8 441 / 430
/ 439 (one text per call), float 245 / 326 / 463, PyTorch 63 / 210 / 368.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faq_bench" / "clinc150"


def _read(path: Path) -> list[dict]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _embed(engine: str, texts: list[str], questions: bool = False) -> tuple[np.ndarray, float]:
    from django.test import override_settings

    from providers.local import LocalProvider

    with override_settings(LOCAL_EMBED_ENGINE=engine):
        provider = LocalProvider()
        embed = provider.embed_queries if questions else provider.embed
        embed(texts[:8])  # load (and export) outside the clock
        started = time.perf_counter()
        vectors = np.array(embed(texts), dtype=np.float32)
    return vectors, time.perf_counter() - started


def raw_embedding_tps(
    engine: str | None = None, batch: int = 32, seconds: float = 3.0, questions: bool = False
) -> float:
    """Texts/s of the local embedding model in batches of `batch` short questions, in this
    process (one thread, as the servers), on `engine` or settings.LOCAL_EMBED_ENGINE; with
    `questions`, by the provider's question path (the int8 graph, one text per call).
    benchmarks.chat_load's raw reference too."""
    from django.test import override_settings

    from providers.local import LocalProvider

    texts = [f"Can I return order {i} if it arrived damaged?" for i in range(batch)]
    with override_settings(**({"LOCAL_EMBED_ENGINE": engine} if engine else {})):
        provider = LocalProvider()
        embed = provider.embed_queries if questions else provider.embed
        embed(texts)  # load (and export) outside the clock
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            embed(texts)
            done += batch
    return done / (time.perf_counter() - started)


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

    # Three ways a question meets the stored phrasings: everything on PyTorch, everything on
    # the ONNX float graph, and what the servers do by default: phrasings on the float graph,
    # questions on the int8 one (settings.LOCAL_QUERY_INT8).
    results = {}
    for engine, questions in (("torch", False), ("onnx", False), ("onnx-int8", True)):
        kb, kb_s = _embed(engine.split("-")[0], phrasings)
        qs, qs_s = _embed(engine.split("-")[0], texts, questions=questions)
        top1 = labels[(qs @ kb.T).argmax(axis=1)]
        results[engine] = {
            "kb": kb,
            "qs": qs,
            "top1": top1,
            "acc": float(np.mean(top1 == np.array(gold))),
            "seconds": kb_s + qs_s,
        }
    torch_, onnx, int8 = results["torch"], results["onnx"], results["onnx-int8"]
    difference = float(
        max(np.abs(onnx["kb"] - torch_["kb"]).max(), np.abs(onnx["qs"] - torch_["qs"]).max())
    )
    cosines = (int8["qs"] * torch_["qs"]).sum(axis=1)
    print(
        f"{args.data.name} {args.split}: {len(phrasings)} phrasings, {len(texts)} in-scope questions"
    )
    print(f"largest difference between the float engines' vectors: {difference:.2e}")
    print(
        f"int8 question vectors against PyTorch's: cosine mean {cosines.mean():.4f}, "
        f"lowest {cosines.min():.4f}"
    )
    for engine in ("onnx", "onnx-int8"):
        agree = float(np.mean(results[engine]["top1"] == torch_["top1"]))
        print(f"top-1 entry agreement with PyTorch, {engine}: {agree:.4f}")
    for engine, r in results.items():
        print(
            f"{engine:>9}: top-1 accuracy {r['acc']:.4f}; embedded {len(phrasings) + len(texts)} "
            f"texts in {r['seconds']:.1f} s"
        )
    speeds = {
        "torch": {b: raw_embedding_tps("torch", b) for b in (1, 4, 32)},
        "onnx": {b: raw_embedding_tps("onnx", b) for b in (1, 4, 32)},
        "onnx-int8": {b: raw_embedding_tps("onnx", b, questions=True) for b in (1, 4, 32)},
    }
    print(f"{'texts/s':>9} {'batch 1':>8} {'batch 4':>8} {'batch 32':>8}")
    for engine, row in speeds.items():
        print(f"{engine:>9} " + " ".join(f"{row[b]:>8.0f}" for b in (1, 4, 32)))
    summary = {
        "set": args.data.name,
        "split": args.split,
        "max_vector_difference": difference,
        "int8_cosine_mean": round(float(cosines.mean()), 4),
        "int8_cosine_min": round(float(cosines.min()), 4),
        "top1_agreement": round(float(np.mean(onnx["top1"] == torch_["top1"])), 4),
        "top1_agreement_int8": round(float(np.mean(int8["top1"] == torch_["top1"])), 4),
        "top1_torch": round(torch_["acc"], 4),
        "top1_onnx": round(onnx["acc"], 4),
        "top1_onnx_int8_questions": round(int8["acc"], 4),
        **{
            f"tps_{engine.replace('-', '_')}": {str(b): round(v, 1) for b, v in row.items()}
            for engine, row in speeds.items()
        },
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
