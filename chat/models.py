"""What customers and developers leave behind: conversations and their messages, /v1 API keys,
and the Compare tab's data (the questions an owner labelled, and each evaluation run); and the
bot's Share & embed settings (Widget), kept off Bot as a one-to-one row of chat's own.

Conversation, Message and ApiKey keep the table names they had in bots, where they lived until
chat's migration 0002 moved them without touching a row.
"""

import re
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from askhandle.jobs import TrackedJob
from bots.models import Bot, BotSettings, hex_colour

# An origin as CSP's frame-ancestors takes it: scheme and host (a leading "*." for every
# subdomain), an optional port, no path.
ORIGIN_RE = re.compile(r"^https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?$")


class Widget(BotSettings):
    """The bot's Share & embed settings: which sites may embed its chat, and the widget's bubble.
    Every bot has one (chat.receivers creates it with the bot); read it through `Widget.of`,
    which also covers a bot saved without signals (bulk_create, a restore)."""

    bot = models.OneToOneField(
        Bot, on_delete=models.CASCADE, primary_key=True, related_name="widget"
    )
    allowed_origins = models.TextField(
        _("allowed sites"),
        blank=True,
        help_text=_(
            "Sites allowed to embed the chat widget, one per line, e.g. https://shop.example.com."
        ),
    )
    colour = models.CharField(
        max_length=7, default="#4f46e5", validators=[hex_colour], verbose_name=_("bubble colour")
    )
    position = models.CharField(
        max_length=16,
        choices=[("bottom-right", _("Bottom right")), ("bottom-left", _("Bottom left"))],
        default="bottom-right",
        verbose_name=_("bubble position"),
    )

    def __str__(self) -> str:
        return f"Widget of {self.bot}"

    @property
    def allowed_origin_list(self) -> list[str]:
        """The valid origins among `allowed_origins`; they go into a CSP header verbatim."""
        lines = (line.strip().rstrip("/") for line in self.allowed_origins.splitlines())
        return [line for line in lines if ORIGIN_RE.match(line)]


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


class Conversation(models.Model):
    """One customer's chat with a bot. `public_id` is the only handle the customer ever sees."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="conversations")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    channel = models.CharField(max_length=16, default="web")  # web, widget, api, test
    handoff_email = models.EmailField(blank=True)
    handoff_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "bots_conversation"  # kept when the model moved from bots (chat 0002)
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.bot} #{self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("Customer")
        BOT = "assistant", _("Bot")

    class Path(models.TextChoices):
        DIRECT = "direct", _("Direct FAQ answer")
        BEST_MATCH = "best_match", _("Best-matching FAQ answer")
        EXTRACTIVE = "extractive", _("Quoted from documents")
        GENERATED = "generated", _("Generated from knowledge")
        FALLBACK = "fallback", _("Fallback (unanswered)")
        ERROR = "error", _("Error")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    path = models.CharField(max_length=16, choices=Path.choices, blank=True)
    sources = models.JSONField(default=list, blank=True)  # [{"title", "url", "chunk_id", "score"}]
    related = models.JSONField(default=list, blank=True)  # questions offered to ask next
    score = models.FloatField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True)  # +1 / -1
    # The owner marked this answer "good for training": training.datasets adds it, with the
    # customer's question before it, to the chat fine-tuning set.
    training_approved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "bots_message"
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


class ApiKey(models.Model):
    """A developer key for the OpenAI-compatible API, scoped to one bot.

    Only a SHA-256 hash is stored: the key itself is shown once, when it is created.
    """

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("key name"), max_length=80)
    prefix = models.CharField(max_length=16)  # shown in the list so owners can tell keys apart
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "bots_apikey"
        ordering = ["-created_at"]
        verbose_name = _("API key")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
