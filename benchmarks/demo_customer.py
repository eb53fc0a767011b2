"""What a customer reads on the demo bot: realistic questions in a customer's own words.

    python -m benchmarks.demo_customer [--no-tuning]

The demo bot is seeded as `make run` seeds it (`seed_demo`: the Brightside Bikes FAQ CSV and the
rental and repair policy document), in a throwaway database, then tuned as the worker would tune
it. benchmarks/data/demo_questions.jsonl holds 35 questions written by hand in words the FAQ does
not use (each with a fact the right answer must contain: "59 EUR", "Riverside tram stop"...) and
10 unrelated ones the bot must decline. Every question goes through the real answer pipeline with
the bot's real policy; a question counts as right only when the text the customer reads contains
the expected fact. Nothing is asserted: the figures are printed, with the time per answer.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from pathlib import Path

from benchmarks.throwaway_db import percentile, throwaway_database

QUESTIONS = Path(__file__).resolve().parent / "data" / "demo_questions.jsonl"


def read_questions() -> list[dict]:
    with QUESTIONS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def seed():
    from django.core.management import call_command

    from bots.models import Bot

    call_command("seed_demo", stdout=io.StringIO())
    return Bot.objects.get(slug="demo")


def prepare(bot, *, tuning: bool):
    """What the worker does after the seed: retrieval tuning, then fitting the bot's thresholds."""
    from training import retrieval

    if tuning:
        job = retrieval.tuning_request(bot=bot, reason="benchmark", force=True)
        if job is not None:
            retrieval.tuning_run(tuning_id=job.pk)
    from training.calibration import calibration_run

    calibration_run(bot_id=bot.pk)
    bot.refresh_from_db()
    return bot


def ask_all(bot, questions: list[dict]) -> list[dict]:
    from chat.answering import answer

    answer(bot, "warm-up")  # model load, connection
    rows = []
    for q in questions:
        t = time.perf_counter()
        result = answer(bot, q["text"])
        ms = (time.perf_counter() - t) * 1000
        expect = q.get("expect")
        rows.append(
            {
                **q,
                "path": str(result.path),
                "reply": result.text,
                "ms": ms,
                "right": bool(expect) and result.answered and expect.lower() in result.text.lower(),
                "declined": not result.answered,
            }
        )
    return rows


def report(label: str, bot, rows: list[dict]) -> dict:
    in_scope = [r for r in rows if r.get("expect")]
    unrelated = [r for r in rows if r.get("decline")]
    right = sum(r["right"] for r in in_scope)
    declined_in = sum(r["declined"] for r in in_scope)
    wrong = len(in_scope) - right - declined_in
    declined_out = sum(r["declined"] for r in unrelated)
    paths: dict[str, int] = {}
    for r in rows:
        paths[r["path"]] = paths.get(r["path"], 0) + 1
    times = [r["ms"] for r in rows]
    print(
        f"\n{label}: thresholds direct {bot.direct_threshold:.3f}, answer {bot.answer_threshold:.3f}"
    )
    print(
        f"  customer read the right answer for {right} of {len(in_scope)}; "
        f"an honest 'I don't know' for {declined_in}; a wrong answer for {wrong}"
    )
    print(f"  unrelated questions declined: {declined_out} of {len(unrelated)}")
    print(
        f"  paths: {paths}; time per answer p50 {percentile(times, 50):.0f} ms, "
        f"p95 {percentile(times, 95):.0f} ms"
    )
    for r in in_scope:
        if not r["right"]:
            what = "declined" if r["declined"] else f"read: {r['reply'][:110]!r}"
            print(f"    missed {r['text']!r} (expects {r['expect']!r}) -> {r['path']}, {what}")
    for r in unrelated:
        if not r["declined"]:
            print(f"    answered unrelated {r['text']!r} -> {r['path']}: {r['reply'][:80]!r}")
    return {
        "right": right,
        "in_scope": len(in_scope),
        "declined_in_scope": declined_in,
        "wrong": wrong,
        "unrelated_declined": declined_out,
        "unrelated": len(unrelated),
        "p95_ms": round(percentile(times, 95), 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_customer")
    parser.add_argument("--no-tuning", action="store_true")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    questions = read_questions()
    with throwaway_database("askhandle_demo_bench"):
        bot = seed()
        bot = prepare(bot, tuning=False)
        result = {"base": report("Demo bot, base model", bot, ask_all(bot, questions))}
        if not args.no_tuning:
            bot = prepare(bot, tuning=True)
            result["tuned"] = report("Demo bot, tuned retrieval", bot, ask_all(bot, questions))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
