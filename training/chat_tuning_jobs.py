"""What the chat fine-tuning modules share: the claims on ChatTuning rows (RUNS, askhandle.jobs)
and how long a running one may stay silent before it counts as stuck."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from askhandle.jobs import ClaimedJobs

from .models import ChatTuning

RUNS = ClaimedJobs(
    ChatTuning,
    waiting=ChatTuning.Status.QUEUED,
    running=ChatTuning.Status.RUNNING,
    failed=ChatTuning.Status.FAILED,
    reason_field="error",
)


def stale_after() -> timedelta:
    """A run with no sign of life for this long has lost its worker (CHAT_TUNING_STALE_SECONDS)."""
    return timedelta(seconds=settings.CHAT_TUNING_STALE_SECONDS)
