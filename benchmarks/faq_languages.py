"""FAQ answering in every bot language: `benchmarks.faq_bench` on each hand-written set under
benchmarks/data/faq_<code>/<business>/ (its README), one throwaway database per run.

    python -m benchmarks.faq_languages [--split dev|test] [--before] [--no-phrasings] [--only nl]

Each set is answered by a bot set to its language (bots.languages: multilingual-e5-small for
nl/de/fr/es), beside the reference a plain nearest neighbour over the same vectors reaches
(faq_bench's baseline rows). `--before` also answers each set with the bot left on English
(all-MiniLM-L6-v2, English text search and refusals), which is what a Dutch or German bot got
before bots understood their language. A cross-lingual run asks English questions
(`test_en.jsonl`, where a set has one) of that set's bot. One table per language, and one
JSON line at the end: {language: {set: figures}}.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

from benchmarks import faq_bench

DATA = Path(__file__).resolve().parent / "data"


def sets(only: set[str]) -> list[Path]:
    found = sorted(p.parent for p in DATA.glob("faq_*/*/kb.jsonl"))
    return [p for p in found if not only or faq_bench.data_language(p) in only]


def run_one(data: Path, split: str, *, language: str | None, phrasings: bool) -> dict:
    argv = ["--data", str(data), "--split", split, "--latency-sample", "60"]
    if language:
        argv += ["--language", language]
    if not phrasings:
        argv.append("--no-phrasings")
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        result = faq_bench.main(argv)
    return result


def row(name: str, r: dict) -> tuple:
    ceiling = r.get("ceiling_at_refusal_070") or {}
    return (
        name,
        f"{r['delivered_acc']:.3f}",
        f"{r['oos_refusal_recall']:.3f}",
        f"{ceiling.get('acc', 0):.3f}" if ceiling else "-",
        str(r["ungrounded_shown"]),
        f"{r['first_token_p95_ms']}",
        r["embedding_model"].split(":")[-1],
    )


HEADER = ("set", "delivered", "refusal", "ceiling@0.70", "ungrounded", "1st token p95 ms", "model")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faq_languages")
    parser.add_argument("--split", default="test")
    parser.add_argument("--before", action="store_true", help="also answer on the English model")
    parser.add_argument("--no-phrasings", action="store_true")
    parser.add_argument("--only", action="append", default=[], help="a language code")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results: dict[str, dict] = {}
    for data in sets(set(args.only)):
        language = faq_bench.data_language(data)
        name = data.name
        runs = {"after": (None, args.split)}
        if args.before:
            runs["before (English model)"] = ("en", args.split)
        if (data / "test_en.jsonl").exists() and args.split == "test":
            runs["English questions"] = (None, "test_en")
        for label, (forced, split) in runs.items():
            print(f"{language}/{name} {label} ...", flush=True)
            result = run_one(data, split, language=forced, phrasings=not args.no_phrasings)
            results.setdefault(language, {})[f"{name} / {label}"] = result
    for language, by_set in results.items():
        print(f"\n{language}, split {args.split}" + (", no phrasings" if args.no_phrasings else ""))
        faq_bench.print_table([row(name, r) for name, r in by_set.items()], HEADER)
        after = [r for name, r in by_set.items() if name.endswith("/ after")]
        if after:
            mean = sum(r["delivered_acc"] for r in after) / len(after)
            refusal = sum(r["oos_refusal_recall"] for r in after) / len(after)
            print(f"mean over {len(after)} sets: delivered {mean:.3f}, refusal {refusal:.3f}")
    summary = {
        language: {
            name: {
                k: r[k]
                for k in (
                    "delivered_acc",
                    "oos_refusal_recall",
                    "ungrounded_shown",
                    "first_token_p95_ms",
                    "embedding_model",
                    "ceiling_at_refusal_070",
                )
            }
            for name, r in by_set.items()
        }
        for language, by_set in results.items()
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
