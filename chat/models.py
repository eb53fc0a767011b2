"""Comparing how a bot's answer modes serve its own questions (chat.evaluation).

Conversation, Message and ApiKey live in bots (their tables predate the chat app); these two
tables are the comparison's: the questions an owner labelled, and each evaluation run.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from askhandle.jobs import TrackedJob
from bots.models import Bot


class LabelledQuestion(models.Model):
    """A question with the answer the owner expects: an FAQ entry, or "should decline".
    Uploaded as CSV on the Compare page, or labelled from a real conversation."""

    class Origin(models.TextChoices):
        UPLOAD = "upload", _("Uploaded")
        CONVERSATION = "conversation", _("From a conversation")

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="labelled_questions")
    text = models.CharField(max_length=2000)
    # The expected entry; null with should_decline=False never happens (the form refuses it).
    faq_entry = models.ForeignKey(
        "knowledge.FaqEntry", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    should_decline = models.BooleanField(default=False)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.UPLOAD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["bot", "text"], name="chat_labelled_question_unique")
        ]

    def __str__(self) -> str:
        return self.text[:80]


class Evaluation(TrackedJob):
    """One comparison of a bot's modes on its own questions; kept, so the owner sees whether a
    change helped. `results` holds the figures per mode, `answers` what each mode said."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    SUCCEEDED = Status.DONE

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="evaluations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    modes = models.JSONField(default=list)  # the modes compared, e.g. ["rag", "finetuned"]
    priorities = models.JSONField(default=dict)  # what the owner said matters (chat.evaluation)
    questions = models.JSONField(default=list)  # [{"text", "gold", "origin"}]; gold: entry id
    results = models.JSONField(default=dict, blank=True)
    answers = models.JSONField(default=list, blank=True)
    recommendation = models.JSONField(default=dict, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta(TrackedJob.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.bot} evaluation #{self.pk}"
