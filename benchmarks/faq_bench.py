"""FAQ answering benchmark: the real ingestion and the real answer pipeline on a labelled FAQ set.

    python -m benchmarks.faq_bench --data DIR --split dev|test [--limit N] [--sweep]

DIR holds `kb.jsonl` (one FAQ entry a line: faq_id, question, answer, title, example_questions)
and `<split>.jsonl` (text, gold_faq_id; null gold = out of scope, the bot must refuse). A fresh
database is created, migrated and dropped; the KB goes through `faq_entries_import` +
`source_ingest`, every question through `bots.answer.answer(generate=False)`: the pipeline decides
direct / generate / fallback without calling the chat model, and "would generate" counts as
answered with its top hit.

Figures: in-scope top-1 accuracy (answered with the gold entry; a refusal counts as wrong),
out-of-scope refusal recall and precision, single-question latency (embedding included, measured
one question at a time), and a plain MiniLM nearest-neighbour baseline over the same embeddings
(nearest phrasing, no fusion, the untuned 0.50 cut-off). Thresholds default to the Bot model's
defaults; `--sweep` prints the accuracy/refusal trade-off per answer threshold, for calibrating on
DEV only. The last line is one JSON object.

The bot is answered twice: first with the base embedding model (what a bot answers with until
its retrieval tuning is deployed), then after training.retrieval tuned the model on the KB's own
phrasings, as the worker does after an FAQ upload (`--no-tuning` skips that). The figures and
the JSON line are the tuned bot's. Calibrated on CLINC150 DEV:
direct 0.80, answer 0.45, which are the Bot model's defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

from benchmarks.throwaway_db import percentile, throwaway_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faq_bench" / "clinc150"
UNTUNED_CUTOFF = 0.50  # the cut-off a naive nearest-neighbour bot would ship with
LATENCY_SAMPLE = 200
EMBED_BATCH = 256


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faq_bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--limit", type=int, default=None, help="a fixed random sample of N questions"
    )
    parser.add_argument("--direct-threshold", type=float, default=None)
    parser.add_argument("--answer-threshold", type=float, default=None)
    parser.add_argument("--sweep", action="store_true", help="print metrics per answer threshold")
    parser.add_argument(
        "--no-tuning", action="store_true", help="answer with the base embedding model only"
    )
    parser.add_argument("--latency-sample", type=int, default=LATENCY_SAMPLE)
    parser.add_argument(
        "--language",
        default=None,
        help="the bot's language (bots.languages); default: from a faq_<code> folder, else en",
    )
    parser.add_argument(
        "--no-phrasings",
        action="store_true",
        help="drop the KB's alternate phrasings (a plain question/answer FAQ, what most owners have)",
    )
    return parser.parse_args(argv)


def metrics(rows: list[dict]) -> dict:
    """rows: {"gold": str|None, "answered": bool, "top": str|None, "delivered": bool?}.

    `delivered_acc`: in-scope questions whose delivered text is the gold entry's curated answer
    (word for word, or framed as a best match), or a written answer that passed the grounding
    check and cites the gold entry. `in_scope_top1_acc`: answered with the gold entry on top,
    whatever the text (the retrieval figure)."""
    in_scope = [r for r in rows if r["gold"]]
    oos = [r for r in rows if not r["gold"]]
    refused = [r for r in rows if not r["answered"]]
    correct = sum(1 for r in in_scope if r["answered"] and r["top"] == r["gold"])
    delivered = sum(
        1 for r in in_scope if r.get("delivered", r["answered"] and r["top"] == r["gold"])
    )
    refused_oos = sum(1 for r in oos if not r["answered"])
    return {
        "delivered_acc": delivered / len(in_scope) if in_scope else float("nan"),
        "in_scope_top1_acc": correct / len(in_scope) if in_scope else float("nan"),
        "oos_refusal_recall": refused_oos / len(oos) if oos else float("nan"),
        "oos_refusal_precision": refused_oos / len(refused) if refused else float("nan"),
        "in_scope_refused": sum(1 for r in in_scope if not r["answered"]) / len(in_scope)
        if in_scope
        else float("nan"),
    }


def data_language(data: Path) -> str:
    """The language of a set under benchmarks/data/faq_<code>/<business>/ ('en' elsewhere)."""
    from bots.languages import LANGUAGES

    code = data.resolve().parent.name.removeprefix("faq_")
    return code if code in LANGUAGES else "en"


def build_bot(
    data: Path,
    answer_threshold,
    direct_threshold,
    *,
    phrasings: bool = True,
    language: str = "en",
):
    from accounts.services import account_signup
    from bots.services import bot_create
    from knowledge.models import Source
    from knowledge.services import faq_entries_import, source_ingest

    user = account_signup(
        email="bench@askhandle.local", password="bench-password-123", workspace_name="Bench"
    )
    fields = {}
    if answer_threshold is not None:
        fields["answer_threshold"] = answer_threshold
    if direct_threshold is not None:
        fields["direct_threshold"] = direct_threshold
    bot = bot_create(
        workspace=user.workspaces.get(),
        name="FAQ bench",
        slug=f"faq-bench-{int(time.time())}",
        language=language,
        **fields,
    )
    entries = read_jsonl(data / "kb.jsonl")
    if not phrasings:  # what most owners have: one question and its answer, nothing more
        entries = [{**e, "example_questions": [], "alternate_questions": []} for e in entries]
    started = time.perf_counter()
    source = faq_entries_import(bot=bot, name=data.name or "kb", entries=entries, enqueue=False)
    source = source_ingest(source_id=source.pk)
    if source.status != Source.Status.READY:
        raise SystemExit(f"Ingestion failed: {source.error}")
    if answer_threshold is None and direct_threshold is None:
        bot = calibrate(bot)
    return bot, len(entries), source.chunk_count, time.perf_counter() - started


def calibrate(bot):
    """Fit the bot's thresholds to its own FAQ, as the worker does after every FAQ change or
    tuning deploy (training.calibration); thresholds given on the command line stay as given."""
    from training.calibration import calibration_run

    started = time.perf_counter()
    fit = calibration_run(bot_id=bot.pk)
    bot.refresh_from_db()
    summary = (fit or {}).get("summary", "no FAQ phrasings to fit")
    print(
        f"Calibrated in {time.perf_counter() - started:.1f} s: direct >= "
        f"{bot.direct_threshold:.3f}, answer >= {bot.answer_threshold:.3f}, caution "
        f"{bot.calibration.caution:.2f} ({summary})",
        flush=True,
    )
    return bot


def nearest_phrasing(bot, vector) -> tuple[int | None, float]:
    """Baseline: the single nearest chunk by exact cosine, nothing else."""
    from pgvector.django import CosineDistance

    from knowledge import serving
    from knowledge.models import Chunk

    chunk = (
        Chunk.objects.filter(bot=bot, embedding_model=serving.embedding_model_for_bot(bot))
        .annotate(d=CosineDistance("embedding", vector))
        .order_by("d")
        .values("faq_id", "d")
        .first()
    )
    return (chunk["faq_id"], 1.0 - chunk["d"]) if chunk else (None, -1.0)


def print_table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)), flush=True)


def fmt(x: float) -> str:
    return f"{x:.4f}"


def ungrounded_shown(result) -> bool:
    """A written answer whose delivered text fails a fresh grounding check against its cited
    sources: what the pipeline's check exists to prevent (counted, never assumed zero)."""
    from chat.answering import grounding
    from chat.models import Message
    from knowledge.models import Chunk

    if result.path != Message.Path.GENERATED or not result.text:
        return False
    texts = list(
        Chunk.objects.filter(pk__in=[s.chunk_id for s in result.sources]).values_list(
            "text", flat=True
        )
    )
    checker = grounding.SentenceChecker(texts)
    return not all(checker.check(s) for s in grounding.split_sentences(result.text))


def answer_all(bot, questions, external, *, baseline: bool):
    """Every question through the pipeline (precomputed vectors); with the plain-NN baseline."""
    from chat.answering import answer
    from chat.evaluation import delivered_right
    from knowledge import selectors
    from knowledge.models import FaqEntry

    answers = dict(FaqEntry.objects.filter(bot=bot).values_list("pk", "answer"))
    entry_pk = {ext: pk for pk, ext in external.items()}

    texts = [q["text"] for q in questions]
    started = time.perf_counter()
    vectors = []
    for i in range(0, len(texts), EMBED_BATCH):
        vectors += selectors.embed_queries(bot, texts[i : i + EMBED_BATCH])
    embed_s = time.perf_counter() - started
    rows, base, paths = [], [], {}
    started = time.perf_counter()
    for q, vector in zip(questions, vectors, strict=True):
        # The real pipeline with the bot's real policy: the chat model writes when the policy
        # lets it (bot.may_generate), and its answer is checked as a customer's would be.
        result = answer(bot, q["text"], vector=vector)
        top = result.retrieved[0]["faq_id"] if result.retrieved else None
        rows.append(
            {
                "gold": q.get("gold_faq_id"),
                "answered": result.answered,
                "top": external.get(top),
                "score": result.retrieved[0]["score"] if result.retrieved else -1.0,
                "path": str(result.path),
                # The Compare page's measure (chat.evaluation): curated text of the gold entry,
                # or a checked written answer that says what the gold entry says.
                "delivered": bool(q.get("gold_faq_id"))
                and delivered_right(result, entry_pk.get(q["gold_faq_id"]), answers),
                "generation_tried": result.grounding is not None,
                "generation_failed": bool(result.grounding and not result.grounding["passed"]),
                "ungrounded_shown": ungrounded_shown(result),
            }
        )
        paths[str(result.path)] = paths.get(str(result.path), 0) + 1
        if baseline:
            faq_id, similarity = nearest_phrasing(bot, vector)
            base.append(
                {
                    "gold": q.get("gold_faq_id"),
                    "top": external.get(faq_id),
                    "score": similarity,
                    "answered": similarity >= UNTUNED_CUTOFF,
                }
            )
    decide_s = time.perf_counter() - started
    print(
        f"  {len(texts)} questions: embedded in batches {embed_s:.1f} s, decided {decide_s:.1f} s"
        + (" (with the baseline query)" if baseline else ""),
        flush=True,
    )
    return rows, base, paths, len(texts) / (embed_s + decide_s)


def tune(bot):
    """Retrieval tuning as the worker runs it (training.retrieval), synchronously."""
    from training import retrieval
    from training.models import RetrievalTuning

    tuning = retrieval.tuning_request(bot=bot, reason="benchmark", force=True)
    if tuning is None:  # reported like any other bot: the untuned one is what its owner gets
        print(f"Not tuned: {retrieval.tuning_unavailable_reason(bot)}", flush=True)
        return None
    started = time.perf_counter()
    retrieval.tuning_run(tuning_id=tuning.pk)
    tuning.refresh_from_db()
    if tuning.status != RetrievalTuning.Status.DEPLOYED:
        raise SystemExit(f"Tuning ended {tuning.status}: {tuning.message}")
    print(
        f"Retrieval tuning: {tuning.entries} entries / {tuning.phrasings} phrasings, trained in "
        f"{tuning.train_seconds:.0f} s, {tuning.chunks} chunks re-embedded, "
        f"{time.perf_counter() - started:.0f} s in all; loss per epoch "
        + ", ".join(f"{x:.3f}" for x in tuning.losses),
        flush=True,
    )
    bot.refresh_from_db()
    return bot


def run(args) -> dict:
    from knowledge import serving
    from knowledge.models import FaqEntry

    language = args.language or data_language(args.data)
    bot, n_entries, n_chunks, ingest_s = build_bot(
        args.data,
        args.answer_threshold,
        args.direct_threshold,
        phrasings=not args.no_phrasings,
        language=language,
    )
    print(f"Bot language {language}: {serving.embedding_model_for_bot(bot)}", flush=True)
    print(f"KB: {n_entries} entries -> {n_chunks} chunks, ingested in {ingest_s:.1f} s", flush=True)
    print(
        f"Bot thresholds: direct >= {bot.direct_threshold:.3f}, answer >= {bot.answer_threshold:.3f}",
        flush=True,
    )
    external = dict(FaqEntry.objects.filter(bot=bot).values_list("pk", "external_id"))

    questions = [q for q in read_jsonl(args.data / f"{args.split}.jsonl") if q.get("text")]
    if args.limit and args.limit < len(
        questions
    ):  # a fixed sample keeps in- and out-of-scope mixed
        questions = random.Random(0).sample(questions, args.limit)
    texts = [q["text"] for q in questions]

    print(
        "Base embedding model (what a bot answers with before its tuning is deployed):", flush=True
    )
    base_rows, baseline, base_paths, throughput = answer_all(
        bot, questions, external, baseline=True
    )
    rows, paths = base_rows, base_paths
    tuned = False
    if not args.no_tuning:
        tuned_bot = tune(bot)
        if tuned_bot is not None:
            bot, tuned = tuned_bot, True
            if args.answer_threshold is None and args.direct_threshold is None:
                bot = calibrate(bot)
            print("Tuned embedding model (the default for a local FAQ bot):", flush=True)
            rows, _, paths, throughput = answer_all(bot, questions, external, baseline=False)
    latencies, first_token = measure_latency(bot, texts, args.latency_sample)

    ours = metrics(rows)
    base_pipeline = metrics(base_rows)
    base = metrics(baseline)
    base_always = metrics([{**r, "answered": True} for r in baseline])
    n = len(rows)
    policy = "generate (checked)" if bot.may_generate else "curated (the owner's words)"
    print(
        f"\nDataset {args.data.name} / {args.split}: {sum(1 for r in rows if r['gold'])} in scope, "
        f"{sum(1 for r in rows if not r['gold'])} out of scope; policy {policy}"
    )
    print("Paths: " + ", ".join(f"{k} {v / n:.1%}" for k, v in sorted(paths.items())))

    def line(name, m, refusals=True):
        return (
            name,
            fmt(m["delivered_acc"]),
            fmt(m["in_scope_top1_acc"]),
            fmt(m["oos_refusal_recall"]) if refusals else "0.0000",
            fmt(m["oos_refusal_precision"]) if refusals else "-",
            fmt(m["in_scope_refused"]) if refusals else "0.0000",
        )

    table = [line("AskHandle pipeline" + (", tuned retrieval" if tuned else ""), ours)]
    if tuned:
        table.append(line("AskHandle pipeline, base model (before tuning)", base_pipeline))
    table += [
        line(f"Nearest phrasing (same model), cut-off {UNTUNED_CUTOFF}", base),
        line("Nearest phrasing (same model), never refuses", base_always, refusals=False),
    ]
    print_table(
        table,
        (
            "system",
            "delivered acc",
            "in-scope top-1",
            "OOS refusal recall",
            "OOS refusal precision",
            "in-scope refused",
        ),
    )
    tried = sum(r["generation_tried"] for r in rows)
    generated_share = sum(r["path"] == "generated" for r in rows) / n
    failed_share = sum(r["generation_failed"] for r in rows) / tried if tried else 0.0
    shown = sum(r["ungrounded_shown"] for r in rows)
    print(
        f"Written answers: {generated_share:.1%} of questions; the check failed for "
        f"{failed_share:.1%} of {tried} tries; ungrounded sentences shown: {shown}"
    )
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(
        f"\nLatency per question (n={len(latencies)}, single questions, embedding included): "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms; batch throughput {throughput:.0f} q/s"
    )
    print(
        "Time to first token, p95 by path: "
        + ", ".join(
            f"{path} {percentile(ms, 95):.1f} ms (n={len(ms)})"
            for path, ms in sorted(first_token.items())
        )
    )
    ceiling = best_threshold(rows, min_refusal=ORACLE_REFUSAL)
    if ceiling:
        print(
            f"Ceiling for this split: the best single answer threshold chosen with the split's "
            f"answers known ({ceiling['threshold']:.3f}) delivers {ceiling['acc']:.4f} at refusal "
            f"recall {ceiling['refusal']:.4f} (>= {ORACLE_REFUSAL}); calibration never sees them."
        )
    promise = promise_kept(bot, rows)
    if promise:
        print("The owner's control (caution = share of out-of-scope questions declined):")
        print_table(
            [
                (f"{c:.1f}", f"{t:.3f}", f"{m:.3f}", f"{g:+.3f}", f"{d:.3f}", f"{cg}")
                for c, t, m, g, d, cg in zip(
                    promise["refusal_promised"],
                    promise["threshold_at_caution"],
                    promise["refusal_measured"],
                    promise["refusal_gap"],
                    promise["delivered_at_caution"],
                    promise["ceiling_gap"],
                    strict=True,
                )
            ],
            ("caution", "threshold", "refusal", "gap", "delivered", "ceiling gap"),
        )
    if args.sweep:
        sweep(rows, baseline)
    non_generated = [ms for path, v in first_token.items() if path != "generated" for ms in v]
    return {
        "delivered_acc": round(ours["delivered_acc"], 4),
        "in_scope_top1_acc": round(ours["in_scope_top1_acc"], 4),
        "oos_refusal_recall": round(ours["oos_refusal_recall"], 4),
        "oos_refusal_precision": round(ours["oos_refusal_precision"], 4),
        "generated_share": round(generated_share, 4),
        "generation_failed_share": round(failed_share, 4),
        "ungrounded_shown": shown,
        "first_token_p95_ms": round(percentile(non_generated, 95), 1) if non_generated else None,
        "first_token_p95_ms_by_path": {
            path: round(percentile(ms, 95), 1) for path, ms in first_token.items()
        },
        "paths": {k: round(v / n, 4) for k, v in paths.items()},
        "direct_threshold": round(bot.direct_threshold, 4),
        "answer_threshold": round(bot.answer_threshold, 4),
        "tuned": tuned,
        "language": language,
        "embedding_model": serving.embedding_model_for_bot(bot),
        "ceiling_at_refusal_070": ceiling,
        **promise,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
    }


def measure_latency(bot, texts: list[str], sample_size: int):
    """As a customer sees it: one question at a time, embedding included; the whole answer's
    time, and the time to its first token by path."""
    from chat.answering import answer_stream

    sample = random.Random(0).sample(texts, min(sample_size, len(texts)))
    list(answer_stream(bot, sample[0]))  # warm-up: model load, connection
    latencies, first_token = [], {}
    for text in sample:
        t = time.perf_counter()
        first = None
        for kind, value in answer_stream(bot, text):
            if kind == "token" and first is None:
                first = (time.perf_counter() - t) * 1000
            elif kind == "done":
                first_token.setdefault(str(value.path), []).append(first or 0.0)
        latencies.append((time.perf_counter() - t) * 1000)
    return latencies, first_token


ORACLE_REFUSAL = 0.70  # the refusal recall the goals ask for
CAUTIONS = (0.5, 0.7, 0.9)  # the owner's control: the share of out-of-scope questions declined


def promise_kept(bot, rows: list[dict]) -> dict:
    """For each caution the owner can set: the threshold the bot's stored calibration gives
    (training.calibration_curve.threshold_for_caution, what moving the slider does), the refusal it
    measures on these rows against the promise, what it delivers, and the gap to the best single
    threshold at that refusal chosen with the answers known. Read off the rows' scores: the
    threshold alone decides what is declined and what is delivered."""
    from training.calibration_curve import threshold_for_caution

    if not bot.calibration.fit.get("curve"):
        return {}
    inside = [r for r in rows if r["gold"]]
    outside = [r for r in rows if not r["gold"]]
    out: dict[str, list] = {
        "refusal_promised": [],
        "refusal_measured": [],
        "refusal_gap": [],
        "delivered_at_caution": [],
        "ceiling_gap": [],
        "threshold_at_caution": [],
    }
    for caution in CAUTIONS:
        t = threshold_for_caution(bot.calibration.fit, caution)
        refusal = sum(r["score"] < t for r in outside) / max(1, len(outside))
        delivered = sum(r["score"] >= t and r["top"] == r["gold"] for r in inside) / max(
            1, len(inside)
        )
        ceiling = best_threshold(rows, min_refusal=caution)
        out["refusal_promised"].append(caution)
        out["refusal_measured"].append(round(refusal, 4))
        out["refusal_gap"].append(round(refusal - caution, 4))
        out["delivered_at_caution"].append(round(delivered, 4))
        out["ceiling_gap"].append(round(ceiling["acc"] - delivered, 4) if ceiling else None)
        out["threshold_at_caution"].append(round(t, 4))
    return out


def best_threshold(rows: list[dict], *, min_refusal: float) -> dict | None:
    """The answer threshold that would have delivered most (top-1 right and answered) with at
    least `min_refusal` of the out-of-scope questions declined, on these rows: a ceiling for any
    threshold a calibration picks without seeing them (the direct and best-match paths deliver
    the top entry's answer, so only the threshold decides)."""
    import numpy as np

    scores = np.asarray([r["score"] for r in rows if r["gold"]])
    right = np.asarray([r["top"] == r["gold"] for r in rows if r["gold"]])
    out_scores = np.sort([r["score"] for r in rows if not r["gold"]])
    if not len(scores) or not len(out_scores):
        return None
    candidates = np.unique(np.concatenate([scores, out_scores]))
    refusal = np.searchsorted(out_scores, candidates, side="left") / len(out_scores)
    right_scores = np.sort(scores[right])
    acc = (len(right_scores) - np.searchsorted(right_scores, candidates, side="left")) / len(scores)
    ok = refusal >= min_refusal
    if not ok.any():
        return None
    i = int(np.argmax(np.where(ok, acc, -1.0)))
    return {
        "threshold": round(float(candidates[i]), 4),
        "acc": round(float(acc[i]), 4),
        "refusal": round(float(refusal[i]), 4),
    }


def sweep(rows: list[dict], baseline: list[dict]) -> None:
    """Accuracy / refusal trade-off if only a threshold changed (calibration: DEV only)."""
    print("\nAnswer-threshold sweep (top hit's score; direct and generated both count as answered)")
    table = []
    for i in range(20, 61):
        t = i / 100
        ours = metrics([{**r, "answered": r["score"] >= t} for r in rows])
        base = metrics([{**r, "answered": r["score"] >= t} for r in baseline])
        table.append(
            (
                f"{t:.2f}",
                fmt(ours["in_scope_top1_acc"]),
                fmt(ours["oos_refusal_recall"]),
                fmt(ours["oos_refusal_precision"]),
                fmt(base["in_scope_top1_acc"]),
                fmt(base["oos_refusal_recall"]),
            )
        )
    print_table(
        table,
        ("threshold", "acc", "OOS recall", "OOS precision", "baseline acc", "baseline OOS recall"),
    )
    print(
        "\nDirect-threshold sweep: share of questions answered verbatim, and how many of those are right"
    )
    table = []
    for i in range(12, 20):
        t = i / 20
        direct = [r for r in rows if r["score"] >= t]
        right = sum(1 for r in direct if r["gold"] and r["top"] == r["gold"])
        table.append(
            (f"{t:.2f}", fmt(len(direct) / len(rows)), fmt(right / len(direct)) if direct else "-")
        )
    print_table(table, ("threshold", "answered directly", "direct precision"))


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # sentence-transformers draws a progress bar per encode() call at INFO level.
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    if not (args.data / "kb.jsonl").exists():
        raise SystemExit(f"No kb.jsonl in {args.data}")
    with throwaway_database("askhandle_bench"):
        result = run(args)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
