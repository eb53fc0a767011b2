"""Chat fine-tuning benchmark (`make bench-tune`): local LoRA tuning of SmolLM2-135M on a fixed
CLINC150 subset, the product's run beside a bare peft loop on the same data in the same process,
then delivered-answer accuracy and refusal recall for rag / tuned / both through the real answer
pipeline (with its grounding check). Printed, never asserted; the last line is one JSON object.

Subset (fixed): the first --entries intents of ../shared/data/faq_bench/clinc150/kb.jsonl sorted
by id (default 4: accept_reservations, account_blocked, alarm, application_status), each with
its question and 5 phrasings; one phrasing of each is held out by the
product (training.datasets). Questions: those held-out phrasings, the first --per-intent TEST
questions of each intent, and the first --oos out-of-scope TEST questions.

A question is delivered right when the text the customer reads contains the gold entry's
curated answer (or is at least 0.9 similar to it); an out-of-scope question is refused when the
answer is the fallback. CLINC150's answers are synthetic ("[synthetic answer for FAQ 'x'] ...").
"""

from __future__ import annotations

import argparse
import difflib
import json
import resource
import time
from pathlib import Path

from benchmarks.throwaway_db import throwaway_database

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "faq_bench" / "clinc150"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--entries", type=int, default=4)
    p.add_argument("--per-intent", type=int, default=2)
    p.add_argument("--oos", type=int, default=6)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--both-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=8)
    # One thread: on a shared 2-core machine two torch threads ran 5-9x slower (docs/decisions.md).
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(args):
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Workspace
    from bots.services import bot_create
    from knowledge.services import faq_entries_import, source_ingest
    from training import calibration

    kb = sorted(read_jsonl(args.data / "kb.jsonl"), key=lambda e: str(e["faq_id"]))[: args.entries]
    user = get_user_model().objects.create_user("tune@askhandle.local", "tune@askhandle.local")
    workspace = Workspace.objects.create(name="Tuning bench")
    Membership.objects.create(workspace=workspace, user=user, role="owner")
    bot = bot_create(workspace=workspace, name="Tuning bench", slug=f"tune-{int(time.time())}")
    source = faq_entries_import(bot=bot, name="kb", entries=kb, enqueue=False)
    source_ingest(source_id=source.pk)
    calibration.calibration_run(bot_id=bot.pk)  # the thresholds the product fits for this FAQ
    bot.refresh_from_db()
    return bot, kb


def questions(args, kb, held_out: list[dict]) -> list[dict]:
    from knowledge.models import FaqEntry

    answers = {e["faq_id"]: e["answer"] for e in kb}
    by_pk = {pk: ext for pk, ext in FaqEntry.objects.values_list("pk", "external_id")}
    out = [
        {"text": h["question"], "gold": by_pk[h["faq_id"]], "kind": "held-out"} for h in held_out
    ]
    test = read_jsonl(args.data / "test.jsonl")
    for faq_id in answers:
        picked = [q for q in test if q.get("gold_faq_id") == faq_id][: args.per_intent]
        out += [{"text": q["text"], "gold": faq_id, "kind": "test"} for q in picked]
    oos = [q for q in test if not q.get("gold_faq_id")][: args.oos]
    out += [{"text": q["text"], "gold": None, "kind": "oos"} for q in oos]
    for q in out:
        q["answer"] = answers.get(q["gold"]) if q["gold"] else None
    return out


def delivered_right(text: str, gold: str) -> bool:
    norm = " ".join(text.lower().split())
    target = " ".join(gold.lower().split())
    return target in norm or difflib.SequenceMatcher(None, norm, target).ratio() >= 0.9


# --- Training: the product's run and a bare peft loop on the same data -------------------------


def product_run(bot, mode: str, hyper: dict):
    from training import chat_tuning, chat_tuning_local
    from training.models import ChatTuning

    started = time.perf_counter()
    run = chat_tuning.chat_tuning_launch(bot=bot, mode=mode, hyperparameters=hyper)
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    run.refresh_from_db()
    wall = time.perf_counter() - started
    if run.status != ChatTuning.Status.READY:
        raise SystemExit(f"Run {run.pk} ended {run.status}: {run.error}")
    return run, wall


def bare_peft(conversations, hyper: dict) -> dict:
    """The same LoRA training as training.local_training.train_chat_adapter, without the product
    around it: no database, progress, cancel check, checkpoints or storage."""
    import tempfile

    import torch
    from django.conf import settings

    import providers
    from training import local_training

    started = time.perf_counter()
    model = local_training.lora_model(r=hyper["lora_r"], alpha=2 * hyper["lora_r"], device="cpu")
    torch.set_num_threads(settings.TRAINING_TORCH_THREADS)  # as train_chat_adapter does
    torch.manual_seed(hyper["seed"])
    tokenizer = providers.local_chat_tokenizer()
    encoded = [
        local_training.encode_chat_example(tokenizer, c, hyper["max_length"]) for c in conversations
    ]
    steps = local_training.chat_batches(
        len(encoded), batch_size=hyper["batch_size"], epochs=hyper["epochs"], seed=hyper["seed"]
    )
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hyper["learning_rate"]
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    t = time.perf_counter()
    losses = []
    for batch in steps:
        input_ids, labels, mask = local_training.collate_chat(encoded, batch, pad)
        out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    loop = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
    return {
        "wall": time.perf_counter() - started,
        "loop": loop,
        "steps": len(steps),
        "losses": losses,
    }


# --- Answering ----------------------------------------------------------------------------------


def evaluate(bot, items, mode: str) -> dict:
    from bots.models import Bot
    from chat.answering import answer

    variant = Bot.objects.get(pk=bot.pk)
    variant.mode = mode
    right = inside = refused = outside = written = passed = 0
    paths: dict[str, int] = {}
    started = time.perf_counter()
    for q in items:
        result = answer(variant, q["text"])
        paths[result.path] = paths.get(result.path, 0) + 1
        if result.grounding is not None and result.policy.startswith("tuned"):
            written += 1
            passed += int(bool(result.grounding.get("passed")))
        if q["gold"]:
            inside += 1
            right += int(result.answered and delivered_right(result.text, q["answer"]))
        else:
            outside += 1
            refused += int(not result.answered)
    return {
        "delivered_acc": round(right / max(1, inside), 3),
        "refusal_recall": round(refused / max(1, outside), 3),
        "grounding_pass": round(passed / written, 3) if written else None,
        "tuned_wrote": written,
        "paths": paths,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    with throwaway_database("askhandle_tune"):
        from django.conf import settings

        from training import chat_tuning, datasets
        from training.models import ChatTuning

        settings.TRAINING_TORCH_THREADS = args.threads
        bot, kb = build(args)
        hyper = {
            **chat_tuning.default_hyperparameters("local"),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_steps": None,
        }
        ts = datasets.build(bot, mode="finetuned")
        conversations = [e.messages for e in ts.examples]
        print(
            f"CLINC150 subset: {len(kb)} intents ({', '.join(e['faq_id'] for e in kb)}), "
            f"{len(ts.examples)} examples ({ts.counts()}), {len(ts.held_out)} held out; "
            f"batch {args.batch_size}, {args.epochs} epochs, {args.threads} torch threads",
            flush=True,
        )

        # The bare loop first (it also warms the float model's file cache for both).
        bare = bare_peft(conversations, hyper)
        run, wall = product_run(bot, ChatTuning.Mode.FINETUNED, hyper)
        steps = run.progress_done
        product_steps_per_s = steps / run.train_seconds
        bare_steps_per_s = bare["steps"] / bare["loop"]
        overhead = 100 * (wall - bare["wall"]) / bare["wall"]
        print(
            f"Fine-tuned mode run: {steps} steps, product {wall:.1f} s wall "
            f"({product_steps_per_s:.3f} steps/s in the loop) vs bare peft {bare['wall']:.1f} s "
            f"({bare_steps_per_s:.3f} steps/s); overhead {overhead:+.1f} %; loss "
            f"{run.losses[0][1]:.3f} -> {run.losses[-1][1]:.3f}",
            flush=True,
        )
        both_hyper = {**hyper, "epochs": args.both_epochs}
        both_run, both_wall = product_run(bot, ChatTuning.Mode.BOTH, both_hyper)
        print(
            f"Both mode run: {both_run.progress_done} steps in {both_wall:.1f} s, loss "
            f"{both_run.losses[0][1]:.3f} -> {both_run.losses[-1][1]:.3f}",
            flush=True,
        )

        items = questions(args, kb, run.held_out)
        n_in = sum(1 for q in items if q["gold"])
        print(f"Questions: {n_in} in scope, {len(items) - n_in} out of scope", flush=True)
        results = {"rag": evaluate(bot, items, "rag")}
        chat_tuning.chat_tuning_deploy(run=run)
        results["tuned"] = evaluate(bot, items, "finetuned")
        chat_tuning.chat_tuning_deploy(run=both_run)
        results["both"] = evaluate(bot, items, "both")

        print(
            f"\n{'mode':<6} {'delivered acc':>13} {'refusal recall':>14} {'grounding pass':>14}  paths"
        )
        for mode, r in results.items():
            gp = (
                "-"
                if r["grounding_pass"] is None
                else f"{r['grounding_pass']:.3f} of {r['tuned_wrote']}"
            )
            print(
                f"{mode:<6} {r['delivered_acc']:>13.3f} {r['refusal_recall']:>14.3f} {gp:>14}  "
                f"{r['paths']} ({r['seconds']} s)"
            )
    summary = {
        "overhead_pct": round(overhead, 1),
        "steps_per_s": round(product_steps_per_s, 3),
        "bare_steps_per_s": round(bare_steps_per_s, 3),
        "peak_rss_mb": round(peak_rss_mb()),
        "train_wall_s": round(wall, 1),
        "bench_seconds": round(time.perf_counter() - started),
        **{
            mode: {
                "delivered_acc": r["delivered_acc"],
                "refusal_recall": r["refusal_recall"],
                "grounding_pass": r["grounding_pass"],
            }
            for mode, r in results.items()
        },
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
