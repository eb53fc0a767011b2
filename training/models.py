"""Model training jobs and what they fit. RetrievalTuning: a per-bot fine-tune of the local
embedding model on the bot's FAQ phrasings (training.retrieval). ChatTuning: a fine-tuned chat
model of the bot, one row per run and version (training.chat_tuning). Calibration: the bot's
fitted refusal curve and the owner's caution (training.calibration)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from askhandle.jobs import TrackedJob
from bots.models import Bot, BotSettings


class RetrievalTuning(TrackedJob):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DEPLOYED = "deployed", _("Deployed")
        REPLACED = "replaced", _("Replaced by a newer tuning")
        SKIPPED = "skipped", _("Not needed")
        FAILED = "failed", _("Failed")

    SUCCEEDED = Status.DEPLOYED

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="retrieval_tunings")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    stage = models.CharField(max_length=40, blank=True)  # training, embedding, deploying
    reason = models.CharField(max_length=200, blank=True)  # what asked for it
    message = models.TextField(blank=True)  # why it was skipped or failed
    base_model = models.CharField(max_length=200, blank=True)
    model_name = models.CharField(max_length=200, blank=True)  # e.g. all-MiniLM-L6-v2~t12
    weights = models.CharField(max_length=300, blank=True)  # storage name of the safetensors file
    entries = models.PositiveIntegerField(default=0)  # FAQ entries trained on
    phrasings = models.PositiveIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0)  # chunks re-embedded on deploy
    losses = models.JSONField(default=list, blank=True)  # mean training loss per epoch
    train_seconds = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Retrieval tuning {self.pk} of {self.bot}"


class ChatTuning(TrackedJob):
    """One fine-tuning run of a bot's chat model, and the version it produced.

    Local runs train a LoRA adapter on SmolLM2 (training.local_training) whose files live in Django's
    default storage under `adapter`; OpenAI-compatible runs are a provider job (`provider_job_id`)
    whose result is `fine_tuned_model`. At most one run per bot is DEPLOYED: the model its
    fine-tuned and both modes answer with (training.chat_tuning.deployed_chat_model)."""

    class Backend(models.TextChoices):
        LOCAL = "local", _("Local (LoRA on SmolLM2, no API key)")
        OPENAI = "openai", _("OpenAI / OpenAI-compatible fine-tuning API")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        READY = "ready", _("Ready to deploy")
        DEPLOYED = "deployed", _("Deployed")
        REPLACED = "replaced", _("Replaced by another version")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Mode(models.TextChoices):
        FINETUNED = "finetuned", _("Fine-tuned model alone")
        BOTH = "both", _("Fine-tuned model + retrieval")

    SUCCEEDED = Status.READY
    DEPLOYABLE = (Status.READY, Status.REPLACED, Status.DEPLOYED)
    FINAL = (Status.READY, Status.DEPLOYED, Status.REPLACED, Status.FAILED, Status.CANCELLED)

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="chat_tunings")
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.LOCAL)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.FINETUNED)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    stage = models.CharField(max_length=60, blank=True)  # loading the model, training, saving
    error = models.TextField(blank=True)  # why it failed or was cancelled
    cancel_requested = models.BooleanField(default=False)  # the training loop checks it each step
    base_model = models.CharField(max_length=200, blank=True)
    # Local: the storage folder of the adapter files (adapter_config.json,
    # adapter_model.safetensors); its last checkpoint is under <adapter>/checkpoint/.
    adapter = models.CharField(max_length=300, blank=True)
    model_name = models.CharField(max_length=200, blank=True)  # what providers are asked for
    training_file = models.CharField(max_length=300, blank=True)  # storage name of the JSONL
    checkpoint_step = models.PositiveIntegerField(default=0)
    provider_job_id = models.CharField(max_length=200, blank=True)
    provider_file_id = models.CharField(max_length=200, blank=True)
    provider_status = models.CharField(max_length=40, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    examples = models.PositiveIntegerField(default=0)
    held_out = models.JSONField(default=list, blank=True)  # [{"faq_id", "question"}] for evaluation
    # {"losses": [[step, loss], ...], "seconds_per_step": float, "eta_seconds": int, ...}
    metrics = models.JSONField(default=dict, blank=True)
    estimate = models.JSONField(default=dict, blank=True)
    train_seconds = models.FloatField(null=True, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TrackedJob.Meta):
        constraints = [
            # One deployed run per tuned mode: each answers in the mode it was trained for.
            models.UniqueConstraint(
                fields=["bot", "mode"],
                condition=models.Q(status="deployed"),
                name="one_deployed_chat_tuning_per_bot_and_mode",
            ),
        ]

    def __str__(self) -> str:
        return f"Fine-tuning run {self.pk} of {self.bot}"

    @property
    def version(self) -> int:
        return self.pk

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def losses(self) -> list:
        return (self.metrics or {}).get("losses", [])

    @property
    def served_model(self) -> str:
        """The model id the bot's provider is asked for once this run is deployed."""
        return self.fine_tuned_model or self.model_name


class DocumentPair(models.Model):
    """A question/answer pair drawn from one of the bot's document chunks (training.documents),
    for the owner to accept (possibly edited) or reject. Only accepted pairs join the chat
    fine-tuning set. The chunk is kept as the pair's gold context in both mode; re-ingesting the
    document replaces its chunks, so a reviewed pair outlives its chunk (chunk becomes null)."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="document_pairs")
    chunk = models.ForeignKey(
        "knowledge.Chunk",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="document_pairs",
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PROPOSED, db_index=True
    )
    question = models.CharField(max_length=500)
    answer = models.TextField()
    heading = models.CharField(max_length=500, blank=True)  # the chunk's title it came from
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.question[:60]} ({self.status})"


class Calibration(BotSettings):
    """How sure a bot must be to answer: the curve training.calibration fits to its FAQ after every
    FAQ change, tuning deploy or model switch, the owner's caution that moves along it, and
    whether the bot's answer thresholds (on Bot) follow the fit or were set by hand."""

    bot = models.OneToOneField(
        Bot, on_delete=models.CASCADE, primary_key=True, related_name="calibration"
    )
    # The fit: the curve, the thresholds it gives and the plain-words figures ({} until then).
    fit = models.JSONField(default=dict, blank=True)
    caution = models.FloatField(
        _("caution"),
        default=0.7,  # training.calibration_curve.DEFAULT_CAUTION
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "The share of questions it has no answer for that the bot declines (estimated), "
            "from helpful (0: answers more, now and then with the wrong entry) to cautious "
            "(1: declines more, answers only when sure)."
        ),
    )
    thresholds_auto = models.BooleanField(
        _("fit thresholds automatically"),
        default=True,
        help_text=_("Off: the direct and answer thresholds stay as you set them."),
    )

    def __str__(self) -> str:
        return f"{self.bot}: caution {self.caution:.2f}"
