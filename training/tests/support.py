"""Helpers shared by the training tests and the browser tests of training's pages: an FAQ whose
entries a generic embedding model confuses, a calibration fit without a model call, and the
fixtures that turn automatic tuning on and clean up what tuning stored."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from knowledge.models import Source
from training import calibration_curve
from training.models import Calibration, RetrievalTuning

# Entries that share most of their words: what a generic embedding model confuses.
ACCOUNT_FAQ = [
    {
        "faq_id": "freeze",
        "question": "How do I freeze my card?",
        "answer": "Tap Card > Freeze in the app.",
        "example_questions": ["block my card for now", "I want to lock my card", "pause my card"],
    },
    {
        "faq_id": "unfreeze",
        "question": "How do I unfreeze my card?",
        "answer": "Tap Card > Unfreeze in the app.",
        "example_questions": ["unblock my card", "I want to unlock my card", "reactivate my card"],
    },
    {
        "faq_id": "lost",
        "question": "I lost my card, what do I do?",
        "answer": "Report it lost in the app; we send a new one.",
        "example_questions": ["my card is missing", "someone stole my card", "card got stolen"],
    },
    {
        "faq_id": "limit",
        "question": "What is my card's spending limit?",
        "answer": "5,000 EUR a month unless you change it.",
        "example_questions": ["how much can I spend with my card", "raise my card limit"],
    },
]


def calibration_set(bot, **fields) -> Calibration:
    """Store the bot's Calibration fields (fit, caution, thresholds_auto) as a fit would."""
    row, _ = Calibration.objects.update_or_create(bot=bot, defaults=fields)
    return row


def synthetic_fit() -> dict:
    in_scores = np.linspace(0.30, 0.95, 60)
    samples = calibration_curve.Samples(
        in_scores=in_scores,
        in_correct=in_scores > 0.45,
        unrelated=np.linspace(0.05, 0.60, 100),
        on_topic=np.linspace(0.20, 0.70, 60),
    )
    return {**calibration_curve.fit(samples), "model": "local:test", "method": "synthetic",
            "fitted_at": "2025-03-04T10:00:00+00:00"}  # fmt: skip


@pytest.fixture
def auto_tuning(settings):
    settings.RETRIEVAL_TUNING_AUTO = True  # passed on to the worker by child_env()


@pytest.fixture
def cleanup(bot):
    """Deletes the bot's uploaded files and tuned weights after the test (stored where a worker
    process can read them, not in a temporary folder)."""
    yield
    for source in Source.objects.filter(bot=bot):
        if source.file:
            source.file.storage.delete(source.file.name)
    for weights in RetrievalTuning.objects.filter(bot=bot).values_list("weights", flat=True):
        if weights:
            default_storage.delete(weights)
