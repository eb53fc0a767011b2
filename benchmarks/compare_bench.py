"""RAG vs fine-tuned vs both on a labelled FAQ set, with the product's own comparison code.

    python -m benchmarks.compare_bench [--data DIR] [--split test] [--entries 12] [--limit 80]
        [--max-steps 20] [--both-steps 8] [--no-finetune]

The KB is a fixed subset of the set's entries (the first N by faq_id order, so the local
fine-tuning finishes in minutes on two cores); the questions are the split's questions about
those entries plus as many out-of-scope ones, a fixed random sample of at most --limit. The bot
is built like an owner's (ingestion, retrieval tuning). Then, as an owner does on the Training
page before the Compare page offers the tuned modes (chat.evaluation.available_modes), a local
chat model is tuned (training.chat_tuning: LoRA on SmolLM2) and deployed, and chat.evaluation
answers every question in each mode through the real pipeline: the same figures, intervals,
paired comparisons and recommendation the Compare page shows.

A bot has one deployed run per tuned mode, each answering in the mode it was trained for: the
question alone in fine-tuned mode, with the retrieved passages in both mode
(training.chat_tuning.deployed_chat_model). So each tuned mode is measured with its own run, as
an owner who compares all three does: a "fine-tuned model alone" run is trained, deployed and
compared, then a "fine-tuned model + retrieval" run.

RAG is the reference measured in the same run, on the same questions: each tuned mode's accuracy
is printed beside it as a ratio and as the paired difference with its 95 % interval, so the
comparison survives a noisy machine. Times: each phase (ingestion, retrieval tuning, each LoRA
run with its seconds per step, each mode's evaluation) and the whole run's wall time. The last
line is one JSON object: per mode delivered_acc with its 95 % interval, refusal_recall, p95_ms,
eval_seconds and, for a tuned mode, vs_rag (ratio), diff_vs_rag with its interval and the run's
LoRA steps and seconds; recommended; phases; total_seconds.

The defaults keep the whole run under 20 minutes on 2 shared CPU cores without a GPU
(benchmarks/RESULTS.md): in fine-tuned mode the model writes every answer, about 2.5 s each once
tuned (10-17 s while it has not learnt to stop), so --limit sets much of the time; a LoRA step
takes 5-8 s on a fine-tuned batch and 20-40 s on a both-mode one (three chunks of context
each). At these budgets the tuned models are far from converged (20 steps are about 2 epochs of
the fine-tuned set): the figures say what a short local run gives, not what the modes can
reach. --limit 240 --max-steps 60 --both-steps 60 (the old setting) takes about 45 minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import sys
import time
from pathlib import Path

from benchmarks.faq_bench import DEFAULT_DATA, print_table, read_jsonl
from benchmarks.throwaway_db import throwaway_database

NAMES = {"rag": "RAG", "finetuned": "Fine-tuned", "both": "Fine-tuned + RAG"}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_bench")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", default="test")
    parser.add_argument("--entries", type=int, default=12, help="KB entries kept (subset)")
    parser.add_argument("--limit", type=int, default=80, help="questions asked per mode")
    parser.add_argument(
        "--max-steps", type=int, default=20, help="LoRA steps of the fine-tuned mode's run"
    )
    # A both-mode example carries three retrieved chunks: a step costs 2-4x a fine-tuned one
    # here, and the model mostly learns to copy the passage (a confident match skips it).
    parser.add_argument("--both-steps", type=int, default=8, help="LoRA steps of the both run")
    parser.add_argument("--no-finetune", action="store_true", help="RAG only")
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


def chat_tune(bot, mode: str, max_steps: int):
    """A local LoRA run of `mode` as the worker runs it, then deployed (the Training page's
    Deploy button). Returns {"run", "seconds", "steps", "seconds_per_step"}, or None."""
    from training import chat_tuning
    from training.models import ChatTuning

    started = time.perf_counter()
    try:
        # Tasks run inline in a benchmark (benchmarks.throwaway_db): the launch's task trains
        # the run here, as the worker would, before the launch returns.
        run = chat_tuning.chat_tuning_launch(
            bot=bot, mode=mode, hyperparameters={"max_steps": max_steps}
        )
    except Exception as exc:  # report, and compare what can be compared
        print(f"Fine-tuning ({mode}) not launched: {exc}", flush=True)
        return None
    run.refresh_from_db()
    seconds = time.perf_counter() - started
    per_step = (run.metrics or {}).get("seconds_per_step")
    print(
        f"LoRA run {run.pk} ({mode}, {run.examples} examples): {run.get_status_display()}, "
        f"{run.progress_done} steps in {seconds:.0f} s ({per_step} s/step) {run.error}",
        flush=True,
    )
    if run.status != ChatTuning.Status.READY:
        return None
    chat_tuning.chat_tuning_deploy(run=run)
    return {
        "run": run,
        "seconds": seconds,
        "steps": run.progress_done,
        "seconds_per_step": per_step,
    }


def evaluate(bot, items, mode, curated) -> tuple[list[dict], float] | None:
    """Every question in `mode`, as chat.evaluation's task answers them (the bot in memory set
    to the mode), if the Compare page offers the mode now. Returns (rows, seconds) or None."""
    from chat import evaluation as ev

    bot.refresh_from_db()
    why = ev.available_modes(bot)[mode]
    if why:
        print(f"  {mode}: not available ({why})", flush=True)
        return None
    variant = copy.copy(bot)
    variant.mode = mode
    started = time.perf_counter()
    rows = [{"mode": mode, **q, **ev.ask(variant, q, curated)} for q in items]
    seconds = time.perf_counter() - started
    print(f"  {mode}: {len(items)} questions in {seconds:.0f} s", flush=True)
    return rows, seconds


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    started = time.perf_counter()
    phases: dict[str, float] = {}
    runs: dict[str, dict] = {}
    eval_seconds: dict[str, float] = {}

    def phase(name, since):
        phases[name] = round(time.perf_counter() - since, 1)

    with throwaway_database("askhandle_compare"):
        from chat import evaluation as ev
        from knowledge.models import FaqEntry

        t = time.perf_counter()
        bot, kb, items = build(args)
        phase("ingestion", t)
        print(
            f"{args.data.name}/{args.split}: {len(kb)} entries, {len(items)} questions "
            f"({sum(1 for q in items if q['gold'])} in scope)",
            flush=True,
        )
        t = time.perf_counter()
        retrieval_tune(bot)
        phase("retrieval tuning", t)
        curated = dict(FaqEntry.objects.filter(bot=bot).values_list("pk", "answer"))
        rows = []

        def measure(mode):
            got = evaluate(bot, items, mode, curated)
            if got:
                rows.extend(got[0])
                eval_seconds[mode] = round(got[1], 1)
                phases[f"evaluation {mode}"] = round(got[1], 1)

        measure("rag")  # the reference, before any tuned model is deployed
        if not args.no_finetune:
            for run_mode, modes in (("finetuned", ["finetuned"]), ("both", ["both"])):
                t = time.perf_counter()
                steps = args.both_steps if run_mode == "both" else args.max_steps
                tuned = chat_tune(bot, run_mode, steps)
                phase(f"LoRA {run_mode}", t)
                if tuned is None:
                    continue
                for mode in modes:
                    runs[mode] = tuned
                    measure(mode)
        modes = [m for m in NAMES if m in eval_seconds]
        t = time.perf_counter()
        bot.refresh_from_db()
        results, recommendation = ev.summarise(bot, modes, rows, ev.PRIORITIES)
        phase("summary", t)
    total = time.perf_counter() - started

    rag = results["rag"]["delivered_acc"] or 0.0

    def versus_rag(mode):
        """(ratio to RAG, mode minus RAG, its paired 95 % interval) or Nones for RAG."""
        if mode == "rag":
            return None, None, None
        for c in results["_comparisons"]:
            if {c["a"], c["b"]} == {"rag", mode} and c["difference"] is not None:
                sign = 1 if c["a"] == mode else -1
                low, high = (sign * v for v in c["interval"])
                ratio = results[mode]["delivered_acc"] / rag if rag else None
                # + 0.0: no "-0.000" for a difference of nothing
                return (
                    ratio,
                    round(sign * c["difference"], 4) + 0.0,
                    (round(min(low, high), 4) + 0.0, round(max(low, high), 4) + 0.0),
                )
        return None, None, None

    def cell(mode):
        ratio, diff, ci = versus_rag(mode)
        if diff is None:
            return "reference"
        times = "-" if ratio is None else f"{ratio:.2f}x"
        return f"{times}, {diff:+.3f} ({ci[0]:+.3f} to {ci[1]:+.3f})"

    table = [
        (
            NAMES[m],
            f"{results[m]['delivered_acc']:.3f}",
            f"{results[m]['delivered_ci'][0]:.3f}-{results[m]['delivered_ci'][1]:.3f}",
            cell(m),
            f"{results[m]['wrong']}",
            f"{results[m]['wrongly_declined']}",
            f"{results[m]['refusal_recall']:.3f}",
            f"{results[m]['first_p95_ms']:.0f}",
            f"{results[m]['total_p95_ms']:.0f}",
            f"{eval_seconds[m]:.0f}",
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
            "vs RAG: ratio, paired diff (95% CI)",
            "wrong",
            "wrongly declined",
            "refusal recall",
            "first token p95 ms",
            "answer p95 ms",
            "eval s",
        ),
    )
    for c in results["_comparisons"]:
        print(c["words"])
    print(f"Recommended: {recommendation.get('name')}")
    print("Phases: " + ", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
    for mode, tuned in runs.items():
        print(
            f"  {mode} answered by run {tuned['run'].pk} ({tuned['run'].mode}): "
            f"{tuned['steps']} LoRA steps in {tuned['seconds']:.0f} s "
            f"({tuned['seconds_per_step']} s/step)"
        )
    print(f"Total wall time: {total:.0f} s ({total / 60:.1f} min)", flush=True)
    out = {}
    for m in modes:
        ratio, diff, ci = versus_rag(m)
        out[m] = {
            "delivered_acc": results[m]["delivered_acc"],
            "delivered_ci": results[m]["delivered_ci"],
            "refusal_recall": results[m]["refusal_recall"],
            "p95_ms": results[m]["total_p95_ms"],
            "eval_seconds": eval_seconds[m],
        }
        if m in runs:
            out[m].update(
                vs_rag=round(ratio, 4) if ratio is not None else None,
                diff_vs_rag=diff,
                diff_vs_rag_ci=ci,
                run_mode=runs[m]["run"].mode,
                lora_steps=runs[m]["steps"],
                lora_seconds=round(runs[m]["seconds"], 1),
            )
    out.update(
        recommended=recommendation.get("mode"),
        questions=len(items),
        phases=phases,
        total_seconds=round(total, 1),
    )
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
