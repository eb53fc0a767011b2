"""Rows that make every dashboard page show its full self in a browser test, written with the ORM
(no worker, no model): knowledge in every state, a week of conversations, a fitted calibration
and a finished comparison."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.utils import timezone

from bots.models import Bot
from chat.models import Conversation, Message
from training.models import Calibration

FAQ = [
    ("How long does delivery take?", "Orders arrive in two to three working days.", "Delivery"),
    ("Can I return a bike?", "Yes, within 30 days, unridden and in its box.", "Returns"),
    ("Do you repair e-bikes?", "Yes, our workshop repairs every e-bike brand.", "Workshop"),
    ("Where is your shop?", "Kerkstraat 12, open Monday to Saturday.", ""),
]


def seed_conversations(bot) -> None:
    """A week of chats: answered, a thumbs-down, a hand-off and an unanswered question."""
    rows = [
        (1, [("How long does shipping take?", "direct", 1)], False),
        (2, [("Do you sell gift cards?", "fallback", -1)], True),
        (
            3,
            [("Where is your shop?", "best_match", 1), ("Open on Sunday?", "fallback", None)],
            False,
        ),
        (12, [("Can I pay by invoice?", "fallback", None)], True),
    ]
    for days_ago, turns, handoff in rows:
        when = timezone.now() - timedelta(days=days_ago)
        conv = Conversation.objects.create(bot=bot, channel="web")
        for question, path, rating in turns:
            Message.objects.create(conversation=conv, role="user", text=question)
            Message.objects.create(
                conversation=conv,
                role="assistant",
                text="…",
                path=path,
                rating=rating,
                score=0.71,
                latency_ms=42,
            )
        if handoff:
            Conversation.objects.filter(pk=conv.pk).update(
                handoff_email="jane@example.com", handoff_requested_at=when
            )
        Conversation.objects.filter(pk=conv.pk).update(created_at=when)
        conv.messages.update(created_at=when)


def seed_knowledge(bot) -> dict:
    """A ready FAQ file with its entries and chunks (one edited, with a warning), a document
    being read, a failed web page and an entry written in the FAQ editor."""
    from knowledge.models import Chunk, FaqEntry, Source

    now = timezone.now()
    vector = [0.0] * 383 + [1.0]
    faq = Source.objects.create(
        bot=bot,
        kind=Source.Kind.CSV,
        name="faq.csv",
        status=Source.Status.READY,
        chunk_count=len(FAQ),
        warnings=["Line 7: missing answer; row skipped."],
        entries_edited=True,
        started_at=now - timedelta(seconds=9),
        finished_at=now,
    )
    entries = []
    for position, (question, answer, category) in enumerate(FAQ):
        entry = FaqEntry.objects.create(
            bot=bot,
            source=faq,
            question=question,
            answer=answer,
            category=category,
            alternate_questions=[question.replace("?", " please?")],
        )
        entries.append(entry)
        Chunk.objects.create(
            bot=bot,
            source=faq,
            faq=entry,
            position=position,
            title=question,
            text=f"{question}\n{answer}",
            embedding=vector,
            embedding_model="local:all-MiniLM-L6-v2",
        )
    Source.objects.create(
        bot=bot,
        kind=Source.Kind.PDF,
        name="repair-policy.pdf",
        status=Source.Status.PROCESSING,
        stage="embedding",
        progress_done=3,
        progress_total=8,
    )
    Source.objects.create(
        bot=bot,
        kind=Source.Kind.URL,
        name="https://example.com/faq",
        url="https://example.com/faq",
        status=Source.Status.FAILED,
        error="The web page answered with an error (404).",
        finished_at=now,
    )
    manual = Source.objects.create(
        bot=bot, kind=Source.Kind.MANUAL, name="FAQ editor", status=Source.Status.READY
    )
    FaqEntry.objects.create(
        bot=bot, source=manual, question="Do you sell gift cards?", answer="Yes, from 10 euros."
    )
    return {"source": faq, "entry": entries[0]}


def seed_calibration(bot) -> None:
    """A fit of synthetic scores, stored as the worker stores one (training.calibration)."""
    from training import calibration_curve

    rng = np.random.default_rng(7)
    samples = calibration_curve.Samples(
        in_scores=rng.normal(0.72, 0.1, 60).clip(0, 1),
        in_correct=rng.random(60) < 0.85,
        unrelated=rng.normal(0.3, 0.1, 120).clip(0, 1),
        on_topic=rng.normal(0.5, 0.1, 40).clip(0, 1),
    )
    fit = calibration_curve.fit(samples)
    fit.update(fitted_at=timezone.now().isoformat(), method="each phrasing held out in turn")
    Calibration.objects.update_or_create(bot=bot, defaults={"fit": fit})
    Bot.objects.filter(pk=bot.pk).update(
        answer_threshold=fit["answer_threshold"],
        direct_threshold=fit["direct_threshold"],
    )


def seed_comparison(bot, entry) -> None:
    """A finished comparison of RAG and both modes, with misses to fix."""
    from chat import evaluation as ev
    from chat.models import Evaluation

    rows = []
    for mode, right_share in (("rag", 0.8), ("both", 0.6)):
        for i in range(20):
            gold = entry.pk if i < 15 else None
            right = bool(gold) and i < 15 * right_share
            rows.append(
                {
                    "mode": mode,
                    "text": f"Question {i}",
                    "gold": gold,
                    "origin": "held-out phrasing" if gold else "unrelated",
                    "path": "direct" if right else "fallback",
                    "reply": "Orders arrive in two to three working days." if right else "…",
                    "answered": right or (not gold and i % 4 == 0),
                    "right": right,
                    "first_ms": 40.0 + i,
                    "total_ms": 90.0 + 3 * i,
                    "written_chars": 0,
                    "cited": [],
                }
            )
    results, recommendation = ev.summarise(bot, ["rag", "both"], rows, dict(ev.PRIORITIES))
    now = timezone.now()
    for when in (now - timedelta(days=2), now):
        Evaluation.objects.create(
            bot=bot,
            status=Evaluation.Status.DONE,
            modes=["rag", "both"],
            questions=[{"text": r["text"], "gold": r["gold"], "origin": r["origin"]} for r in rows],
            results=results,
            answers=rows,
            recommendation=recommendation,
            seconds=12.0,
            finished_at=when,
        )
