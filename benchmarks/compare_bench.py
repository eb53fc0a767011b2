"""RAG vs fine-tuned vs both on a labelled FAQ set, with the product's own comparison code.

    python -m benchmarks.compare_bench [--data DIR] [--split test] [--entries 12] [--limit 240]

The KB is a fixed subset of the set's entries (the first N by faq_id order, so the local
fine-tuning finishes in minutes on two cores); the questions are the split's questions about
those entries plus as many out-of-scope ones, a fixed random sample of at most --limit. The
bot is built like an owner's (ingestion, retrieval tuning), then a local chat model is tuned
(training.chat_tuning, LoRA on SmolLM2) and deployed, and chat.evaluation answers every question
in every mode through the real pipeline: the same figures, intervals and recommendation the
Compare page shows. The last line is one JSON object: per mode delivered_acc with its 95 %
interval, refusal_recall, p95_ms; recommended; eval_seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

from benchmarks.faq_bench import DEFAULT_DATA, print_table, read_jsonl
from benchmarks.throwaway_db import throwaway_database


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_bench")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test")
    parser.add_argument("--entries", type=int, default=12, help="KB entries kept (subset)")
    parser.add_argument("--limit", type=int, default=240, help="questions asked per mode")
    parser.add_argument("--max-steps", type=int, default=60, help="LoRA steps of the local run")
    parser.add_argument("--no-finetune", action="store_true")
    return parser.parse_args(argv)


def build(args):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Workspace
    from bots.services import bot_create
    from knowledge.models import FaqEntry
    from knowledge.services import faq_entries_import, source_ingest

    kb = sorted(read_jsonl(args.data / "kb.jsonl"), key=lambda e: str(e["faq_id"]))[: args.entries]
    keep = {str(e["faq_id"]) for e in kb}
    questions = read_jsonl(args.data / f"{args.split}.jsonl")
    inside = [q for q in questions if q.get("gold_faq_id") and str(q["gold_faq_id"]) in keep]
    outside = [q for q in questions if not q.get("gold_faq_id")]
    rng = random.Random(0)
    half = args.limit // 2
    picked = rng.sample(inside, min(half, len(inside))) + rng.sample(
        outside, min(args.limit - min(half, len(inside)), len(outside))
    )
    user = get_user_model().objects.create_user(
        "compare@askhandle.local", "compare@askhandle.local"
    )
    workspace = Workspace.objects.create(name="Compare bench")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    bot = bot_create(workspace=workspace, name="Compare bench", slug=f"cmp-{int(time.time())}")
    source = faq_entries_import(bot=bot, name="kb", entries=kb, enqueue=False)
    source_ingest(source_id=source.pk)
    external = {
        str(v): k for k, v in FaqEntry.objects.filter(bot=bot).values_list("pk", "external_id")
    }
    items = [
        {
            "text": q["text"],
            "gold": external.get(str(q["gold_faq_id"])) if q.get("gold_faq_id") else None,
            "origin": "benchmark",
        }
        for q in picked
    ]
    return bot, kb, items


def retrieval_tune(bot):
    from training import retrieval

    job = retrieval.tuning_request(bot=bot, reason="benchmark", force=True)
    if job is not None:
        retrieval.tuning_run(tuning_id=job.pk)
    bot.refresh_from_db()


def chat_tune(bot, max_steps: int):
    """A local LoRA run as the worker runs it, then deployed. Returns (run, seconds) or None."""
    from training import chat_tuning, chat_tuning_local
    from training.models import ChatTuning

    started = time.perf_counter()
    try:
        # Tasks run inline in a benchmark (benchmarks.throwaway_db): the launch trains too.
        run = chat_tuning.chat_tuning_launch(
            bot=bot, mode=ChatTuning.Mode.BOTH, hyperparameters={"max_steps": max_steps}
        )
    except Exception as exc:  # report, and compare what can be compared
        print(f"Fine-tuning not launched: {exc}", flush=True)
        return None
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)  # a no-op when the launch already ran it
    run.refresh_from_db()
    seconds = time.perf_counter() - started
    print(
        f"Local chat tuning: {run.get_status_display()} in {seconds:.0f} s {run.error}", flush=True
    )
    if run.status != ChatTuning.Status.READY:
        return None
    chat_tuning.chat_tuning_deploy(run=run)
    return run, seconds


def evaluate(bot, items, modes):
    from chat import evaluation as ev
    from knowledge.models import FaqEntry

    curated = dict(FaqEntry.objects.filter(bot=bot).values_list("pk", "answer"))
    rows = []
    started = time.perf_counter()
    for mode in modes:
        variant = type(bot).objects.get(pk=bot.pk)
        variant.mode = mode
        t = time.perf_counter()
        for q in items:
            rows.append({"mode": mode, **q, **ev.ask(variant, q, curated)})
        print(f"  {mode}: {len(items)} questions in {time.perf_counter() - t:.0f} s", flush=True)
    results, recommendation = ev.summarise(bot, modes, rows, ev.PRIORITIES)
    return results, recommendation, time.perf_counter() - started


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    with throwaway_database("askhandle_compare"):
        bot, kb, items = build(args)
        print(
            f"{args.data.name}/{args.split}: {len(kb)} entries, {len(items)} questions "
            f"({sum(1 for q in items if q['gold'])} in scope)",
            flush=True,
        )
        retrieval_tune(bot)
        modes = ["rag"]
        if not args.no_finetune and chat_tune(bot, args.max_steps):
            modes += ["finetuned", "both"]
        results, recommendation, seconds = evaluate(bot, items, modes)
    names = {"rag": "RAG", "finetuned": "Fine-tuned", "both": "Fine-tuned + RAG"}
    table = [
        (
            names[m],
            f"{results[m]['delivered_acc']:.3f}",
            f"{results[m]['delivered_ci'][0]:.3f}-{results[m]['delivered_ci'][1]:.3f}",
            f"{results[m]['wrong']}",
            f"{results[m]['wrongly_declined']}",
            f"{results[m]['refusal_recall']:.3f}",
            f"{results[m]['first_p95_ms']:.0f}",
            f"{results[m]['total_p95_ms']:.0f}",
        )
        for m in modes
    ]
    print()
    print_table(
        table,
        (
            "mode",
            "delivered acc",
            "95% CI",
            "wrong",
            "wrongly declined",
            "refusal recall",
            "first token p95 ms",
            "answer p95 ms",
        ),
    )
    for c in results["_comparisons"]:
        print(c["words"])
    print(f"Recommended: {recommendation.get('name')}; evaluation took {seconds:.0f} s")
    out = {
        m: {
            "delivered_acc": results[m]["delivered_acc"],
            "delivered_ci": results[m]["delivered_ci"],
            "refusal_recall": results[m]["refusal_recall"],
            "p95_ms": results[m]["total_p95_ms"],
        }
        for m in modes
    }
    out.update({"recommended": recommendation.get("mode"), "eval_seconds": round(seconds, 1)})
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
