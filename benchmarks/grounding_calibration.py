"""Calibrates chat.answering.grounding's support threshold, per bot language: how similar a written
sentence must be to the closest sentence of its context to count as "the knowledge says this".

    python -m benchmarks.grounding_calibration [--language en|nl|de|fr|es]

Context: for each case, the answers of a small FAQ's entries that a question retrieves (here:
the gold entry's answer plus two other entries' answers, as the bot's top 3 would be).
- supported: sentences a faithful writer would produce from that context, reworded by hand
  (not copied), about the gold entry;
- unsupported: plausible support-bot sentences the context does not back (invented services or
  policies, no numbers, so the fact check cannot catch them), plus sentences taken from other
  entries' answers that are not in the context.
English (default): the demo shop FAQ, cases below. Dutch, German, French, Spanish: cases written
by hand in the language (not translated from the English ones) on a small FAQ in it, in
benchmarks/data/grounding/<language>.json (its "faq": a CSV or kb.jsonl with question/answer).

For the language's own model (grounding.GROUNDING) and, as the reference measured in the same
run, the other local model (English: multilingual-e5-small; other languages: the English
MiniLM), prints both distributions of the max cosine, the ROC AUC (how often a supported
sentence scores above an unsupported one), the pass rate of each at candidate thresholds, and
the threshold that keeps >= 90 % of supported sentences while passing the fewest unsupported
ones; then the whole check as shipped (facts, word overlap with the language's stop words,
similarity at the language's threshold). Figures: benchmarks/RESULTS.md, "Grounding in the
bot's language"; the chosen thresholds are in chat/answering/grounding.py's GROUNDING.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "knowledge" / "fixtures" / "brightside_faq.csv"
CASE_DIR = ROOT / "benchmarks" / "data" / "grounding"
LANGUAGES = ("en", "nl", "de", "fr", "es")
ENGLISH_MODEL, MULTILINGUAL_MODEL = "all-MiniLM-L6-v2", "multilingual-e5-small"
# Candidate thresholds per model: multilingual-e5's cosines crowd higher than MiniLM's.
CANDIDATES = {
    ENGLISH_MODEL: np.round(np.arange(0.40, 0.861, 0.02), 2),
    MULTILINGUAL_MODEL: np.round(np.arange(0.78, 0.961, 0.01), 2),
}
KEEP_SUPPORTED = 0.90

# (gold entry question, reworded supported sentences, invented unsupported sentences)
CASES = [
    (
        "What are your opening hours?",
        [
            "On weekdays the shop opens at 9:00 and closes at 18:30.",
            "The workshop shuts half an hour before the shop does.",
            "On Sundays you can visit us between 11:00 and 16:00.",
        ],
        ["We stay open late on Thursdays for commuters.", "The café inside the shop opens early."],
    ),
    (
        "How long does delivery take?",
        [
            "If you order before 14:00 on a working day, we send it the same day.",
            "Standard shipping usually arrives within 2-3 working days.",
            "With express delivery your order comes the next working day.",
        ],
        [
            "Weekend delivery is available in most cities.",
            "A courier calls you before delivering to agree on a time slot.",
        ],
    ),
    (
        "How much does delivery cost?",
        [
            "Orders over 50 EUR ship for free with standard delivery.",
            "Express shipping is 9.95 EUR.",
            "Complete bikes are delivered assembled and test-ridden for a flat 29 EUR.",
        ],
        ["Members of our loyalty club never pay for shipping.", "Delivery is free for students."],
    ),
    (
        "What is your return policy?",
        [
            "Unused items can be sent back within 30 days of delivery for a full refund.",
            "A bike can only be returned if it has not been ridden and still has its tags.",
            "You can start a return in your account or bring the item to the shop.",
        ],
        [
            "Returned items are exchanged for store credit only.",
            "Sale items cannot be returned at all.",
        ],
    ),
    (
        "How long does a refund take?",
        [
            "Your money goes back to the card or account you paid with.",
            "The refund is made within 5 working days of us checking the return.",
            "We send you an email once the refund has been processed.",
        ],
        ["Refunds are paid out in cash at the counter.", "A small handling fee is deducted."],
    ),
    (
        "Can I change or cancel my order?",
        [
            "Until your order has shipped you can change or cancel it at no cost.",
            "Reply to the confirmation email or phone us to make a change.",
            "Once it has shipped, please use the return process instead.",
        ],
        [
            "Cancelled orders are refunded as a gift voucher.",
            "Orders can be changed in the mobile app at any time.",
        ],
    ),
    (
        "Do you deliver abroad?",
        [
            "We ship to every EU country as well as Switzerland and Norway.",
            "International orders take 4-7 working days.",
            "Complete bikes are only delivered inside the EU.",
        ],
        [
            "We also ship to the United States and Canada.",
            "Customs duties are always covered by us.",
        ],
    ),
    (
        "Where is the shop?",
        [
            "You will find Brightside Bikes at 14 Canal Street.",
            "The shop is right next to the Riverside tram stop.",
            "There is a public car park on Mill Lane, about 100 m away.",
        ],
        ["We have a second branch at the central station.", "Parking in our own garage is free."],
    ),
]


def faq_answers(path: Path = FAQ) -> dict[str, str]:
    """{question: answer} of a FAQ file: a CSV with question and answer columns, or kb.jsonl."""
    with path.open(encoding="utf-8") as handle:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in handle if line.strip()]
        else:
            rows = list(csv.DictReader(handle))
    return {row["question"]: row["answer"] for row in rows}


def case_set(language: str) -> tuple[Path, list]:
    """(FAQ file, [(gold question, supported sentences, invented sentences)]) of a language."""
    if language == "en":
        return FAQ, CASES
    data = json.loads((CASE_DIR / f"{language}.json").read_text(encoding="utf-8"))
    cases = [(c["question"], c["supported"], c["invented"]) for c in data["cases"]]
    return ROOT / data["faq"], cases


def contexts(answers: dict[str, str], cases: list) -> list[tuple[list[str], list, list, list]]:
    """Per case: (context, supported, invented, foreign): the gold answer and two distractors'
    as context; two sentences of a third entry's answer as the foreign unsupported ones."""
    from chat.answering import grounding

    questions = list(answers)
    out = []
    for i, (gold, good, invented) in enumerate(cases):
        if gold not in answers:
            raise SystemExit(f"{gold!r} is not a question of the FAQ")
        others = [q for q in questions if q != gold]
        distractors = [others[(7 * i + k) % len(others)] for k in (1, 2)]
        context = [answers[gold], *(answers[q] for q in distractors)]
        far = [q for q in questions if q not in (gold, *distractors)]
        foreign = grounding.split_sentences(answers[far[i % len(far)]])[:2]
        out.append((context, good, invented, foreign))
    return out


def max_cosines(prepared, language: str, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(supported, unsupported) max cosine of each sentence to its context's sentences."""
    from chat.answering import grounding

    supported, unsupported = [], []
    for context, good, invented, foreign in prepared:
        checker = grounding.SentenceChecker(context, language)
        vectors = np.asarray(grounding._embed(checker.context_sentences, model), np.float32)
        for group, sentences in ((supported, good), (unsupported, invented + foreign)):
            embedded = np.asarray(grounding._embed(sentences, model), dtype=np.float32)
            group.extend((vectors @ embedded.T).max(axis=0).tolist())
    return np.array(supported), np.array(unsupported)


def auc(sup: np.ndarray, uns: np.ndarray) -> float:
    """P(a supported sentence scores above an unsupported one), ties counting half."""
    diff = sup[:, None] - uns[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def best_threshold(sup: np.ndarray, uns: np.ndarray, candidates) -> tuple | None:
    """(threshold, supported pass, unsupported pass): the highest candidate keeping
    KEEP_SUPPORTED of the supported sentences (the fewest unsupported pass there)."""
    best = None
    for t in candidates:
        if (sup >= t).mean() >= KEEP_SUPPORTED:
            best = (round(float(t), 2), (sup >= t).mean(), (uns >= t).mean())
    return best


def report_model(label: str, sup: np.ndarray, uns: np.ndarray, shipped: float | None) -> None:
    model = label.split()[0]
    print(f"\n{label}   ROC AUC {auc(sup, uns):.3f}")
    print(
        f"  supported   n={len(sup)}  min {sup.min():.3f}  p10 {np.percentile(sup, 10):.3f}  "
        f"median {np.median(sup):.3f}"
    )
    print(
        f"  unsupported n={len(uns)}  max {uns.max():.3f}  p90 {np.percentile(uns, 90):.3f}  "
        f"median {np.median(uns):.3f}"
    )
    print("  threshold  supported_pass  unsupported_pass")
    for t in CANDIDATES[model]:
        print(f"    {t:.2f}        {(sup >= t).mean():.2f}            {(uns >= t).mean():.2f}")
    best = best_threshold(sup, uns, CANDIDATES[model])
    if best:
        print(
            f"  highest threshold keeping >= {KEEP_SUPPORTED:.0%} of supported sentences: "
            f"{best[0]:.2f} (supported {best[1]:.2f}, unsupported {best[2]:.2f})"
        )
    if shipped is not None:
        print(
            f"  similarity alone at the shipped {shipped:.2f}: supported "
            f"{(sup >= shipped).mean():.2f}, unsupported {(uns >= shipped).mean():.2f}"
        )


def whole_check(prepared, language: str, setting=None) -> dict[str, list[bool]]:
    """Pass/fail of every sentence through the check, by group: as shipped, or with `setting`
    (a grounding.GroundingLanguage) in place of the language's own (then no refusals listed)."""
    from chat.answering import grounding

    verdicts: dict[str, list[bool]] = {"supported": [], "invented": [], "foreign": []}
    for context, good, invented, foreign in prepared:
        for group, sentences in (("supported", good), ("invented", invented), ("foreign", foreign)):
            for sentence in sentences:  # a fresh checker each: one failure stops a checker
                checker = grounding.SentenceChecker(context, language)
                checker.language = setting or checker.language
                verdicts[group].append(checker.check(sentence))
                if not checker.verdict.passed and group == "supported" and setting is None:
                    print(f"  refused supported: {sentence}  ({checker.verdict.reason})")
    return verdicts


def report_check(label: str, verdicts: dict[str, list[bool]]) -> None:
    unsupported = verdicts["invented"] + verdicts["foreign"]
    print(
        f"{label}: supported {np.mean(verdicts['supported']):.2f} "
        f"(n={len(verdicts['supported'])}), unsupported {np.mean(unsupported):.2f} "
        f"(n={len(unsupported)}: invented {np.mean(verdicts['invented']):.2f}, other entries' "
        f"{np.mean(verdicts['foreign']):.2f})"
    )


def main(argv=None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=LANGUAGES, default="en")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    import django

    django.setup()
    from chat.answering import grounding

    setting = grounding.grounding_for(args.language)
    faq, cases = case_set(args.language)
    prepared = contexts(faq_answers(faq), cases)
    print(f"language {args.language}: {len(cases)} cases on {faq.relative_to(ROOT)}")
    reference = MULTILINGUAL_MODEL if setting.model == ENGLISH_MODEL else ENGLISH_MODEL
    sup, uns = max_cosines(prepared, args.language, setting.model)
    report_model(f"{setting.model} (the language's model)", sup, uns, setting.threshold)
    sup, uns = max_cosines(prepared, args.language, reference)
    report_model(f"{reference} (reference, not used)", sup, uns, None)
    reference_best = best_threshold(sup, uns, CANDIDATES[reference])
    print(f"\nthe whole check as shipped ({setting.model} at {setting.threshold:.2f}):")
    report_check("  shipped", whole_check(prepared, args.language))
    if reference_best:
        swapped = dataclasses.replace(setting, model=reference, threshold=reference_best[0])
        report_check(
            f"  the same check with {reference} at its {reference_best[0]:.2f}",
            whole_check(prepared, args.language, swapped),
        )
    if args.language != "en":  # what such a bot got before the check followed its language
        report_check(
            "  with the English settings (MiniLM at 0.62, English stop words)",
            whole_check(prepared, args.language, grounding.grounding_for("en")),
        )


if __name__ == "__main__":
    main()
