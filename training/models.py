"""Model training jobs. RetrievalTuning: a per-bot fine-tune of the local embedding model on the
bot's FAQ phrasings (training.retrieval). Chat-model fine-tuning will live beside it."""

from django.db import models

from askhandle.jobs import TrackedJob
from bots.models import Bot


class RetrievalTuning(TrackedJob):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DEPLOYED = "deployed", "Deployed"
        REPLACED = "replaced", "Replaced by a newer tuning"
        SKIPPED = "skipped", "Not needed"
        FAILED = "failed", "Failed"

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
