"""Calibrates chat.answering.grounding's support threshold: how similar a written sentence must be to the
closest sentence of its context to count as "the knowledge says this".

    python -m benchmarks.grounding_calibration

Context: for each case, the answers of the demo shop FAQ entries that a question retrieves
(here: the gold entry's answer plus two other entries' answers, as the bot's top 3 would be).
- supported: sentences a faithful writer would produce from that context, reworded by hand
  (not copied), about the gold entry;
- unsupported: plausible support-bot sentences the context does not back (invented services or
  policies, no numbers, so the fact check cannot catch them), plus sentences taken from other
  entries' answers that are not in the context.
Prints both distributions of the max cosine (local MiniLM), the pass rate of each at candidate
thresholds, and the threshold that keeps >= 90 % of supported sentences while passing the
fewest unsupported ones. Measured 2026-12-01 (figures in chat/answering/grounding.py's SUPPORT_THRESHOLD
comment).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FAQ = ROOT / "knowledge" / "fixtures" / "brightside_faq.csv"

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


def faq_answers() -> dict[str, str]:
    with FAQ.open(encoding="utf-8") as handle:
        return {row["question"]: row["answer"] for row in csv.DictReader(handle)}


def main(argv=None) -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "askhandle.settings")
    import django

    django.setup()
    from chat.answering import grounding

    answers = faq_answers()
    questions = list(answers)
    supported, unsupported, passed_s, passed_u = [], [], [], []
    for i, (gold, good, invented) in enumerate(CASES):
        others = [q for q in questions if q != gold]
        distractors = [others[(7 * i + k) % len(others)] for k in (1, 2)]
        context = [answers[gold], *(answers[q] for q in distractors)]
        checker = grounding.SentenceChecker(context)
        vectors = checker._context_vectors()
        far = [q for q in questions if q not in (gold, *distractors)]
        foreign = grounding.split_sentences(answers[far[i % len(far)]])[:2]
        for group, verdicts, sentences in (
            (supported, passed_s, good),
            (unsupported, passed_u, invented + foreign),
        ):
            embedded = np.asarray(grounding._embed(sentences), dtype=np.float32)
            group.extend((vectors @ embedded.T).max(axis=0).tolist())
            for sentence in sentences:  # a fresh checker each: one failure stops a checker
                verdicts.append(grounding.SentenceChecker(context).check(sentence))
    sup, uns = np.array(supported), np.array(unsupported)
    print(
        f"supported   n={len(sup)}  min {sup.min():.3f}  p10 {np.percentile(sup, 10):.3f}  "
        f"median {np.median(sup):.3f}"
    )
    print(
        f"unsupported n={len(uns)}  max {uns.max():.3f}  p90 {np.percentile(uns, 90):.3f}  "
        f"median {np.median(uns):.3f}"
    )
    print("threshold  supported_pass  unsupported_pass")
    best = None
    for t in np.arange(0.40, 0.86, 0.02):
        s_pass, u_pass = (sup >= t).mean(), (uns >= t).mean()
        print(f"  {t:.2f}        {s_pass:.2f}            {u_pass:.2f}")
        if s_pass >= 0.90:
            best = (t, s_pass, u_pass)
    if best:
        print(
            f"highest threshold keeping >= 90% of supported sentences: {best[0]:.2f} "
            f"(supported {best[1]:.2f}, unsupported {best[2]:.2f})"
        )
    print(
        f"similarity alone at {grounding.SUPPORT_THRESHOLD:.2f}: supported "
        f"{(sup >= grounding.SUPPORT_THRESHOLD).mean():.2f}, unsupported "
        f"{(uns >= grounding.SUPPORT_THRESHOLD).mean():.2f}"
    )
    print(
        f"the whole check as shipped: supported {np.mean(passed_s):.2f}, unsupported "
        f"{np.mean(passed_u):.2f}"
    )


if __name__ == "__main__":
    main()
