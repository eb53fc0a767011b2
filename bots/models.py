from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Workspace

# The chat page's own words are translated into these (locale/); settings.LANGUAGES names them.
from .languages import DEFAULT_FALLBACK, DEFAULT_GREETING, DEFAULT_INSTRUCTIONS, LANGUAGE_CHOICES

hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a colour like #4f46e5."))


class Bot(models.Model):
    class Mode(models.TextChoices):
        RAG = "rag", _("Retrieval (RAG)")
        FINETUNED = "finetuned", _("Fine-tuned model")
        BOTH = "both", _("Fine-tuned model + retrieval")

    class Provider(models.TextChoices):
        LOCAL = "local", _("Local models (no API key)")
        OPENAI = "openai", _("OpenAI / OpenAI-compatible")

    class Generation(models.TextChoices):
        AUTO = "auto", _("Automatic: only with an OpenAI-compatible chat model")
        ON = "on", _("Always write answers with the chat model (checked against your knowledge)")
        OFF = "off", _("Never: answer only with your own words")

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(_("name"), max_length=80)
    slug = models.SlugField(
        _("address"),
        max_length=60,
        unique=True,
        help_text=_(
            "The public address of the chat page: /c/<address>/. Letters, numbers and hyphens."
        ),
    )
    greeting = models.CharField(_("greeting"), max_length=300, default=DEFAULT_GREETING)
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=LANGUAGE_CHOICES,
        default="en",
        help_text=_(
            "The language your customers write in. The bot understands questions in it (its "
            "search and refusals are set up for it) and the chat page's own words use it. "
            "Write the greeting and answers in it too."
        ),
    )
    instructions = models.TextField(
        _("persona"),
        blank=True,
        default=DEFAULT_INSTRUCTIONS,
        help_text=_("Persona and rules the bot follows when it writes an answer."),
    )
    mode = models.CharField(
        _("mode"),
        max_length=16,
        choices=Mode.choices,
        default=Mode.RAG,
        help_text=_(
            "Until a fine-tuned model is deployed to this bot, every mode answers with "
            "retrieval. The Compare modes tab shows which mode answers your questions best."
        ),
    )
    fallback_message = models.CharField(
        _("fallback message"),
        max_length=400,
        default=DEFAULT_FALLBACK,
        help_text=_("What the bot says when it does not know."),
    )
    provider = models.CharField(
        _("models"), max_length=16, choices=Provider.choices, default=Provider.LOCAL
    )
    generation = models.CharField(
        _("written answers"),
        max_length=8,
        choices=Generation.choices,
        default=Generation.AUTO,
        help_text=_(
            "When no FAQ answer fits word for word, may the chat model write an answer from your "
            "knowledge? Every written sentence is checked against your knowledge before a "
            "customer sees it. Automatic lets only an OpenAI-compatible model write: the small "
            "local model gets most answers wrong, so local bots answer with your own answer "
            "(“Here is what I found about …”) or quote your documents. Ask a few questions on "
            "the Test tab to see what your customers would read."
        ),
    )
    chat_model = models.CharField(
        _("chat model"),
        max_length=200,
        blank=True,
        help_text=_("Leave blank for the provider's default chat model."),
    )
    embedding_model = models.CharField(
        _("embedding model"),
        max_length=200,
        blank=True,
        help_text=_("Leave blank for the provider's default embedding model."),
    )
    retrieval_tuning = models.BooleanField(
        _("tune retrieval to my FAQ"),
        default=True,
        help_text=_(
            "After each FAQ change, fine-tune the local embedding model on your questions' own "
            "phrasings, so questions that share words but mean different things are told apart "
            "(local models only; about a minute for a small FAQ, several minutes for a large "
            "one). The Knowledge tab shows its progress."
        ),
    )
    # On the cosine between a question and an FAQ entry: the defaults hold until the bot's first
    # calibration (training.calibration) fits them to its FAQ (docs/decisions.md: how chosen).
    direct_threshold = models.FloatField(
        _("word-for-word threshold"),
        default=0.80,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Similarity above which the best FAQ answer is returned verbatim."),
    )
    answer_threshold = models.FloatField(
        _("answer threshold"),
        default=0.45,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Similarity below which the bot gives its fallback message."),
    )
    primary_colour = models.CharField(
        _("colour"), max_length=7, default="#4f46e5", validators=[hex_colour]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def may_generate(self) -> bool:
        """Whether the chat model may write answers (see `generation`)."""
        if self.generation == self.Generation.AUTO:
            return self.provider == self.Provider.OPENAI
        return self.generation == self.Generation.ON


class BotSettings(models.Model):
    """Settings of a bot that a later app owns, one row per bot, off the Bot itself (as pretix
    keeps plugin settings off Event): knowledge's EmbeddingState, training's Calibration, chat's
    Widget. A subclass declares `bot = models.OneToOneField(Bot, primary_key=True,
    related_name=...)`. Every new bot gets a row of each (bots.receivers); `of(bot)` reads it,
    and creates it for a bot that has none (one restored with bulk_create)."""

    class Meta:
        abstract = True

    @classmethod
    def of(cls, bot: Bot):
        """The bot's row, read once per bot instance (select_related fills it too)."""
        accessor = cls._meta.get_field("bot").remote_field.get_accessor_name()
        try:
            return getattr(bot, accessor)
        except cls.DoesNotExist:
            row, _created = cls.objects.get_or_create(bot=bot)
            setattr(bot, accessor, row)
            return row
