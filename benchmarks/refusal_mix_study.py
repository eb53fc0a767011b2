"""Can a bot's own unlabelled traffic tell calibration what its out-of-scope questions look like?

    python -m benchmarks.refusal_mix_study [--data DIR ...] [--cache /tmp/askhandle_mix]

Calibration estimates the refusal of out-of-scope questions as the mean of two synthetic samples
(training.calibration_curve.curve): shipped unrelated questions (easy to tell apart) and each
entry's own phrasings with the entry left out (on topic, hard). The real mix differs per bot:
CLINC150's out-of-scope questions are all unrelated, BANKING77-OOS's are about banking. This
study asks whether the DEV questions, used as the bot's unlabelled traffic, can set the mix: an
EM fit of the traffic's best-entry scores as a mixture of the in-scope, unrelated and on-topic
score densities (kernel estimates of calibration's own samples), whose unrelated : on-topic
weight then mixes the two refusal curves. Printed against the fixed mean and each sample alone:
the measured TEST refusal minus the promise at caution 0.5, 0.7 and 0.9 (the threshold is the
lowest that the estimate says declines that share). Base MiniLM, numpy scoring as
knowledge.selectors.search scores an FAQ entry; with phrasings, and plain (first question only,
pseudo-paraphrases as in-scope samples). Results: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.calibration_study import Models, groups_of
from benchmarks.faq_bench import DEFAULT_DATA, print_table, read_jsonl
from benchmarks.throwaway_db import setup_django

CAUTIONS = (0.5, 0.7, 0.9)


def kde(sample, x: np.ndarray) -> np.ndarray:
    from training.calibration_curve import bandwidth

    sample = np.asarray(sample, dtype=np.float64)
    h = max(bandwidth(sample), 1e-3)
    z = (x[:, None] - sample[None, :]) / h
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(sample) * h * np.sqrt(2 * np.pi)) + 1e-12


def mixture_weights(traffic: np.ndarray, components: list, iterations: int = 500) -> np.ndarray:
    """EM for the weights of fixed component densities."""
    densities = np.vstack([kde(c, traffic) for c in components])
    weights = np.full(len(components), 1 / len(components))
    for _ in range(iterations):
        resp = weights[:, None] * densities
        resp /= resp.sum(axis=0, keepdims=True)
        weights = resp.mean(axis=1)
    return weights


def scored(data: Path, models: Models, plain: bool):
    from training import calibration_samples as cs

    kb = read_jsonl(data / "kb.jsonl")
    index = {e["faq_id"]: i for i, e in enumerate(kb)}
    groups = groups_of(kb, question_only=plain)
    texts = [p for g in groups for p in g]
    labels = np.asarray([gi for gi, g in enumerate(groups) for _ in g])
    held = np.asarray([i for i in range(len(texts)) if len(groups[labels[i]]) >= 2], dtype=int)
    pseudo = (
        [(p, gi) for gi, g in enumerate(groups) for p in cs.pseudo_paraphrases(g[0])]
        if plain
        else []
    )
    vectors = models.embed("base", texts)
    samples = cs.build_samples(
        vectors,
        labels,
        held,
        models.embed("base", cs.load_unrelated()),
        models.embed("base", [p for p, _ in pseudo]) if pseudo else None,
        np.asarray([gi for _, gi in pseudo]) if pseudo else None,
    )
    sums = cs.entry_sums(vectors, labels, len(kb))
    splits = {}
    for split in ("dev", "test"):
        questions = read_jsonl(data / f"{split}.jsonl")
        gold = np.asarray([index.get(q.get("gold_faq_id"), -1) for q in questions])
        _, best = cs.best_entry(models.embed("base", [q["text"] for q in questions]), sums)
        splits[split] = (best, gold)
    return samples, splits


def gaps(refuse_out: np.ndarray, thresholds: np.ndarray, out_scores: np.ndarray) -> list[float]:
    result = []
    for caution in CAUTIONS:
        reach = np.where(refuse_out >= caution)[0]
        t = thresholds[reach[0]] if len(reach) else 1.0
        result.append(float(np.mean(out_scores < t)) - caution)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refusal_mix_study")
    parser.add_argument("--data", type=Path, action="append")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/askhandle_mix"))
    args = parser.parse_args(argv)
    setup_django()
    from training.calibration_curve import _passes, grid

    thresholds = grid()

    def refused(sample):
        return 1 - _passes(np.asarray(sample), thresholds, True).mean(axis=1)

    models = Models(args.cache)
    rows = []
    for data in args.data or [DEFAULT_DATA, DEFAULT_DATA.parent / "banking77_oos"]:
        for plain in (False, True):
            samples, splits = scored(data, models, plain)
            (dev, dev_gold), (test, test_gold) = splits["dev"], splits["test"]
            w = mixture_weights(dev, [samples.in_scores, samples.unrelated, samples.on_topic])
            share = w[1] / (w[1] + w[2])
            r_unrelated, r_on_topic = refused(samples.unrelated), refused(samples.on_topic)
            estimates = {
                "mean (shipped)": (r_unrelated + r_on_topic) / 2,
                f"traffic mix ({share:.2f} unrelated)": share * r_unrelated
                + (1 - share) * r_on_topic,
                "unrelated only": r_unrelated,
                "on topic only": r_on_topic,
            }
            name = f"{data.name} {'plain' if plain else 'phrasings'}"
            print(
                f"{name}: DEV out-of-scope share {np.mean(dev_gold < 0):.3f}, EM weights "
                f"in/unrelated/on-topic {w[0]:.3f}/{w[1]:.3f}/{w[2]:.3f}",
                flush=True,
            )
            for label, estimate in estimates.items():
                g = gaps(estimate, thresholds, test[test_gold < 0])
                rows.append((name, label, *(f"{x:+.3f}" for x in g)))
    print()
    print_table(rows, ("set", "estimate", *(f"gap at {c}" for c in CAUTIONS)))


if __name__ == "__main__":
    main()
