from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField

from askhandle.jobs import TrackedJob
from bots.models import Bot, BotSettings


class Source(TrackedJob):
    """Something an owner taught a bot: an uploaded file, a web page, or the in-dashboard FAQ.
    Its ingestion is a tracked job (askhandle.jobs): progress, attempts, the claim's token."""

    class Kind(models.TextChoices):
        CSV = "csv", _("FAQ CSV")
        JSON = "json", _("JSON / JSONL Q&A")
        MARKDOWN = "markdown", _("Markdown")
        TEXT = "text", _("Plain text")
        PDF = "pdf", _("PDF")
        DOCX = "docx", _("Word (DOCX)")
        URL = "url", _("Web page")
        MANUAL = "manual", _("FAQ editor")

    class Status(models.TextChoices):
        PENDING = "pending", _("Queued")
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=255)
    file = models.FileField(upload_to="sources/%Y/%m/", blank=True)
    url = models.URLField(max_length=2000, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    stage = models.CharField(max_length=32, blank=True)  # parsing, embedding, saving
    error = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)  # e.g. malformed CSV rows with lines
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    # The language it is written in, detected at ingest (knowledge.language_detection; ISO 639-1,
    # "" when unclear): the Knowledge tab says so when it is not the bot's.
    language = models.CharField(max_length=8, blank=True)
    # The dashboard language of whoever added or last re-read it: the worker writes its notes
    # (error, warnings) in it, since the owner reads them on the Knowledge tab ("" = English).
    notes_language = models.CharField(max_length=8, blank=True, editable=False)
    # The owner edited or deleted entries of this imported FAQ in the dashboard: from then on
    # its entries in the database are what it says (a re-ingest keeps the edits), not the file.
    entries_edited = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    SUCCEEDED = Status.READY
    ACTIVE = (Status.PENDING, Status.PROCESSING)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)

    def mark_failed(self, error: str) -> None:
        self.status, self.error, self.finished_at = self.Status.FAILED, error, timezone.now()
        self.save(update_fields=["status", "error", "finished_at", "updated_at"])


class FaqEntry(models.Model):
    """One question and its curated answer. An entry stays one retrievable unit."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="faq_entries")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="faq_entries")
    question = models.TextField(_("question"))
    answer = models.TextField(_("answer"))
    category = models.CharField(_("category"), max_length=120, blank=True)
    url = models.URLField(_("link"), max_length=2000, blank=True)
    # Other phrasings of the question; each is embedded so paraphrases match.
    alternate_questions = models.JSONField(default=list, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        verbose_name_plural = "FAQ entries"

    def __str__(self) -> str:
        return self.question[:80]


class Chunk(models.Model):
    """A retrievable unit with its embedding. FAQ entries give one chunk per phrasing."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="chunks")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="chunks")
    faq = models.ForeignKey(
        FaqEntry, on_delete=models.CASCADE, related_name="chunks", null=True, blank=True
    )
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=500, blank=True)
    text = models.TextField()
    # Dimensions are not fixed here: models differ (MiniLM 384, OpenAI 1536). A large bot gets a
    # partial HNSW index of its own over a cast expression (knowledge.vector_indexes), and every
    # search filters on bot and embedding_model, so vectors of different models never mix.
    embedding = VectorField()
    embedding_model = models.CharField(max_length=200)
    search_vector = SearchVectorField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["source_id", "position"]
        indexes = [
            models.Index(fields=["bot", "embedding_model"]),
            # bot_id inside the GIN index (btree_gin) keeps a full-text query on one bot's rows
            # instead of matching every bot's and filtering afterwards.
            GinIndex(fields=["bot", "search_vector"], name="knowledge_chunk_bot_fts"),
        ]

    def __str__(self) -> str:
        return self.title or self.text[:60]


class Reembedding(TrackedJob):
    """A switch of one bot's knowledge to another embedding model (knowledge.reembedding).

    Every chunk is embedded with the new model while the old vectors keep answering; one
    transaction then swaps them all, so a bot never searches a model that has no vectors.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Re-embedding")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Replaced by a newer change")
        FAILED = "failed", _("Failed")

    SUCCEEDED = Status.DONE

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="reembeddings")
    from_model = models.CharField(max_length=200)
    to_model = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    chunks = models.PositiveIntegerField(default=0)  # chunks swapped to the new model

    def __str__(self) -> str:
        return f"{self.bot}: {self.from_model} -> {self.to_model}"


class StagedVector(models.Model):
    """A vector an unfinished run has embedded (an ingestion or a model switch), saved after each
    batch so that the run taking over after a crash resumes from the last saved batch instead
    of from zero (knowledge.resume). Deleted when the run ends."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, null=True, related_name="+")
    reembedding = models.ForeignKey(
        Reembedding, on_delete=models.CASCADE, null=True, related_name="+"
    )
    embedding_model = models.CharField(max_length=200)
    digest = models.CharField(max_length=64)  # sha256 of the embedded text
    embedding = VectorField()

    class Meta:
        indexes = [
            models.Index(fields=["source", "embedding_model"]),
            models.Index(fields=["reembedding", "embedding_model"]),
        ]

    def __str__(self) -> str:
        return f"{self.embedding_model} {self.digest[:12]}"


class EmbeddingState(BotSettings):
    """Which vectors serve a bot's knowledge (knowledge.serving): the tuned model training
    deployed, and while the bot switches models (knowledge.reembedding) the fully qualified model
    its stored vectors still come from, e.g. 'local:all-MiniLM-L6-v2'. Blank: the model the bot's
    settings name. Workers write it; the owner's settings form never does."""

    bot = models.OneToOneField(
        Bot, on_delete=models.CASCADE, primary_key=True, related_name="embedding_state"
    )
    # A tuned embedding model deployed by training.retrieval, e.g. 'all-MiniLM-L6-v2~t12'.
    tuned_embedding_model = models.CharField(max_length=200, blank=True)
    serving_embedding = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.bot}: {self.serving_embedding or self.tuned_embedding_model or 'as set'}"
