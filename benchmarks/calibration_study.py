"""Per-bot threshold calibration (training.calibration) against the fixed global thresholds.

    python -m benchmarks.calibration_study --data DIR [--data DIR2] [--cache /tmp/askhandle_calib]

For each FAQ set (DIR with kb.jsonl, dev.jsonl, test.jsonl; gold_faq_id null = must decline)
and each way a bot can be set up:
  - base:           the base MiniLM, FAQ with its alternate phrasings (calibration holds out every
                    phrasing in turn);
  - tuned (all):    retrieval tuning trained on every phrasing, as shipped before this study
                    (calibration then only has optimistic samples: shown for comparison);
  - tuned (holdout): retrieval tuning that keeps one phrasing per entry with >= 3 out of
                    training (training.calibration_samples.holdout_split); calibration
                    uses exactly those;
  - question only:  the FAQ's `question` field alone (no alternate phrasings, so no tuning),
                    calibrated on pseudo-paraphrases of the questions;
it prints in-scope "top-1 and answered" accuracy and out-of-scope refusal recall on DEV and TEST
for the global constants (answer 0.45) and for the per-bot calibration (default caution), plus
the caution curve on DEV. Calibration sees only the KB and the shipped unrelated questions;
DEV/TEST are only scored.

Scores are computed in numpy exactly as knowledge.selectors.search() scores an FAQ entry (cosine
to the centroid of its phrasings), and the top-1 is the entry with the best score: the pipeline
also fuses a full-text list at weight 0.01, which moves a few near-ties (faq_bench measures the
pipeline itself). Tuned weights are trained once with
training.local_training.train_embedding_model (the worker's settings: 3 epochs, a soup of 3 runs)
and kept under --cache; so are embeddings.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from benchmarks.faq_bench import DEFAULT_DATA, fmt, print_table, read_jsonl
from benchmarks.throwaway_db import setup_django

GLOBAL_ANSWER, GLOBAL_DIRECT = 0.45, 0.80
ISSUE_GOALS = {"clinc150": (0.90, 0.70), "banking77_oos": (0.70, 0.70)}  # (accuracy, refusal)


def groups_of(kb: list[dict], question_only: bool = False) -> list[list[str]]:
    """Each entry's phrasings as faq_entries_import stores them (question, then alternates)."""
    out = []
    for entry in kb:
        phrasings = [entry["question"], *([] if question_only else entry["example_questions"])]
        out.append(list(dict.fromkeys(p.strip() for p in phrasings if p.strip())))
    return out


class Models:
    """The base model and tuned copies, trained once and cached under `cache`."""

    def __init__(self, cache: Path, runs: int = 3):
        self.cache = cache
        self.runs = runs
        # Tuned weights are cached by name: a soup of another size gets another name.
        self.suffix = "" if runs == 3 else f"-r{runs}"
        cache.mkdir(parents=True, exist_ok=True)
        self.loaded: dict[str, object] = {}

    def get(self, name: str, groups: list[list[str]] | None = None):
        from providers.local import embedder

        if name == "base":
            return embedder()
        if name in self.loaded:
            return self.loaded[name]
        path = self.cache / f"{name}.safetensors"
        if not path.exists():
            self.train(path, groups)
        from safetensors.torch import load as load_safetensors

        model = copy.deepcopy(embedder())
        model.load_state_dict(load_safetensors(path.read_bytes()), strict=False)
        model.eval()
        self.loaded[name] = model
        return model

    def train(self, path: Path, groups) -> None:
        from django.conf import settings

        from training import retrieval
        from training.local_training import train_embedding_model

        started = time.perf_counter()
        weights, losses = train_embedding_model(
            groups,
            epochs=settings.RETRIEVAL_TUNING_EPOCHS,
            runs=self.runs,  # the worker's default is 3 (settings.RETRIEVAL_TUNING_RUNS)
            batch_size=retrieval.BATCH_SIZE,
            learning_rate=retrieval.LEARNING_RATE,
            min_steps=retrieval.MIN_STEPS,
        )
        path.write_bytes(weights)
        print(
            f"  trained {path.stem} in {time.perf_counter() - started:.0f} s, losses "
            + ", ".join(f"{x:.3f}" for x in losses),
            flush=True,
        )

    def embed(self, name: str, texts: list[str], groups=None) -> np.ndarray:
        key = hashlib.sha1(json.dumps([name, texts]).encode()).hexdigest()[:16]
        path = self.cache / f"emb-{name}-{key}.npy"
        if path.exists():
            return np.load(path)
        vectors = self.get(name, groups).encode(
            texts,
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        np.save(path, vectors)
        return vectors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration_study")
    parser.add_argument("--data", type=Path, action="append")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/askhandle_calib"))
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument(
        "--runs", type=int, default=3, help="seeded runs averaged per tuning (the worker: 3)"
    )
    parser.add_argument("--base-only", action="store_true", help="skip the tuned setups")
    args = parser.parse_args(argv)
    setup_django()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(2)
    models = Models(args.cache, args.runs)
    results: list[dict] = []
    for data in args.data or [DEFAULT_DATA]:
        if args.train_only:
            from training.calibration_samples import holdout_split

            kb = read_jsonl(data / "kb.jsonl")
            groups = groups_of(kb)
            models.get(f"{data.name}-all{models.suffix}", groups)
            models.get(f"{data.name}-holdout{models.suffix}", holdout_split(groups)[0])
            continue
        results += study(data, models, base_only=args.base_only)
    if results:
        print(
            "\nSummary (goals: CLINC150 TEST acc >= 0.90 and refusal >= 0.70; BANKING77-OOS "
            "TEST acc >= 0.70 and refusal >= 0.70)"
        )
        print_table(
            [(r["dataset"], r["setup"], r["thresholds"], fmt(r["dev_acc"]), fmt(r["dev_refusal"]),
              fmt(r["test_acc"]), fmt(r["test_refusal"]))
             for r in results if r["thresholds"] in ("global constants", "calibrated")],
            ("set", "setup", "thresholds", "DEV acc", "DEV refusal", "TEST acc", "TEST refusal"),
        )  # fmt: skip
        print(json.dumps(results))


def evaluate(sums: np.ndarray, vectors: np.ndarray, gold: np.ndarray, threshold: float) -> dict:
    """In-scope top-1-and-answered accuracy and out-of-scope refusal recall at one threshold;
    gold is the entry index, -1 for must-decline."""
    from training.calibration_samples import best_entry

    top, score = best_entry(vectors, sums)
    answered = score >= threshold
    ins = gold >= 0
    return {
        "acc": float((answered & (top == gold))[ins].mean()),
        "refusal": float((~answered)[~ins].mean()),
        "top1": float((top == gold)[ins].mean()),
    }


def direct_figures(sums, vectors, gold, threshold: float) -> tuple[float, float]:
    """Share of all questions answered verbatim, and the share of those that are right."""
    from training.calibration_samples import best_entry

    top, score = best_entry(vectors, sums)
    direct = score >= threshold
    right = (direct & (top == gold)).sum()
    return float(direct.mean()), float(right / direct.sum()) if direct.any() else float("nan")


def study(data: Path, models: Models, *, base_only: bool = False) -> list[dict]:
    from training import calibration_curve, calibration_samples

    kb = read_jsonl(data / "kb.jsonl")
    index = {entry["faq_id"]: i for i, entry in enumerate(kb)}
    splits = {}
    for split in ("dev", "test"):
        questions = read_jsonl(data / f"{split}.jsonl")
        gold = np.asarray([index.get(q.get("gold_faq_id"), -1) for q in questions])
        splits[split] = ([q["text"] for q in questions], gold)
    unrelated = calibration_samples.load_unrelated()
    groups = groups_of(kb)
    train_groups, held_pairs = calibration_samples.holdout_split(groups)

    def flat(groups):
        texts = [p for g in groups for p in g]
        labels = np.asarray([gi for gi, g in enumerate(groups) for _ in g])
        start = np.cumsum([0] + [len(g) for g in groups])
        return texts, labels, start

    texts, labels, start = flat(groups)
    loo = np.asarray([i for i in range(len(texts)) if len(groups[labels[i]]) >= 2])
    held = np.asarray([start[gi] + pi for gi, pi in held_pairs])
    q_groups = groups_of(kb, question_only=True)
    q_texts, q_labels, _ = flat(q_groups)
    pseudo = [
        (p, gi)
        for gi, g in enumerate(q_groups)
        for p in calibration_samples.pseudo_paraphrases(g[0])
    ]

    setups = [
        # name, model, KB texts, labels, held-out indexes, pseudo-paraphrases
        ("base", "base", texts, labels, loo, []),
        ("tuned (all phrasings; LOO samples seen in training)", f"{data.name}-all{models.suffix}",
         texts, labels, loo, []),
        ("tuned (holdout)", f"{data.name}-holdout{models.suffix}", texts, labels, held, []),
        ("question only (base; pseudo-paraphrases)", "base", q_texts, q_labels,
         np.zeros(0, int), pseudo),
    ]  # fmt: skip
    if base_only:
        setups = [s for s in setups if s[1] == "base"]
    results = []
    print(
        f"\n=== {data.name}: {len(kb)} entries, {len(texts)} phrasings, "
        f"{len(held)} held out of tuning, {len(unrelated)} unrelated questions ===",
        flush=True,
    )
    for name, model, kb_texts, kb_labels, held_idx, pseudo_pairs in setups:
        train = train_groups if "-holdout" in model else groups
        started = time.perf_counter()
        kb_vectors = models.embed(model, kb_texts, train)
        unrelated_vectors = models.embed(model, unrelated, train)
        split_vectors = {s: models.embed(model, t, train) for s, (t, _) in splits.items()}
        pseudo_vectors = (
            models.embed(model, [p for p, _ in pseudo_pairs], train) if pseudo_pairs else None
        )
        pseudo_labels = np.asarray([gi for _, gi in pseudo_pairs]) if pseudo_pairs else None
        sums = calibration_samples.entry_sums(kb_vectors, kb_labels, len(kb))

        built = {
            trim: calibration_samples.build_samples(kb_vectors, kb_labels, held_idx, unrelated_vectors,
                                    pseudo_vectors, pseudo_labels, trim=trim)
            for trim in (True, False)
        }  # fmt: skip
        variants = {
            "calibrated": built[True],
            "calibrated, no trimming": built[False],
            "calibrated, unrelated set only": calibration_curve.Samples(
                built[True].in_scores, built[True].in_correct, built[True].unrelated, np.zeros(0)
            ),
        }
        fitted = {k: calibration_curve.fit(v) for k, v in variants.items()}
        print(f"\n--- {name} ({time.perf_counter() - started:.0f} s to embed) ---", flush=True)
        s = variants["calibrated"]
        raw = calibration_samples.unrelated_scores(unrelated_vectors, sums)
        print(
            f"samples: {len(s.in_scores)} in scope (top-1 right {s.in_correct.mean():.3f}), "
            f"{len(s.unrelated)} unrelated after trimming {len(raw) - len(s.unrelated)}, "
            f"{len(s.on_topic)} on topic; median score in-scope right "
            f"{np.median(s.in_scores[s.in_correct]):.3f}, unrelated {np.median(raw):.3f}, "
            f"on topic {np.median(s.on_topic) if len(s.on_topic) else float('nan'):.3f}",
            flush=True,
        )
        rows = []
        thresholds = [("global constants", GLOBAL_ANSWER, GLOBAL_DIRECT)] + [
            (k, f["answer_threshold"], f["direct_threshold"]) for k, f in fitted.items()
        ]
        for label, answer_t, direct_t in thresholds:
            row = {"dataset": data.name, "setup": name, "thresholds": label,
                   "answer": answer_t, "direct": direct_t}  # fmt: skip
            for split, (_, gold) in splits.items():
                m = evaluate(sums, split_vectors[split], gold, answer_t)
                share, precision = direct_figures(sums, split_vectors[split], gold, direct_t)
                row.update({f"{split}_{k}": v for k, v in m.items()})
                row.update({f"{split}_direct_share": share, f"{split}_direct_prec": precision})
            rows.append(row)
        print_table(
            [
                (r["thresholds"], f"{r['answer']:.2f}/{r['direct']:.2f}",
                 fmt(r["dev_acc"]), fmt(r["dev_refusal"]), fmt(r["test_acc"]),
                 fmt(r["test_refusal"]), f"{r['test_direct_share']:.2f}/{r['test_direct_prec']:.3f}")
                for r in rows
            ],
            ("thresholds", "answer/direct", "DEV acc", "DEV refusal", "TEST acc",
             "TEST refusal", "TEST direct share/prec"),
        )  # fmt: skip
        print(
            f"top-1 (no threshold): DEV {rows[0]['dev_top1']:.4f}, TEST {rows[0]['test_top1']:.4f}"
        )
        print("owner sees: " + fitted["calibrated"]["summary"])
        print("caution slider on DEV (calibration's own estimate | measured on DEV):")
        table = []
        for point in fitted["calibrated"]["preview"]:
            m = evaluate(sums, split_vectors["dev"], splits["dev"][1], point["threshold"])
            table.append((f"{point['caution']:.1f}", f"{point['threshold']:.2f}",
                          fmt(point["right"]), fmt(point["refuse_out"]),
                          fmt(m["acc"]), fmt(m["refusal"])))  # fmt: skip
        print_table(table, ("caution", "threshold", "est. right", "est. refusal",
                            "DEV acc", "DEV refusal"))  # fmt: skip
        results += rows
    return results


if __name__ == "__main__":
    main()
