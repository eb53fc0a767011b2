from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Workspace
from bots.models import Bot
from knowledge import serving
from knowledge.models import Source
from knowledge.services import source_add, source_delete, source_ingest
from training.retrieval import tuning_request

DEMO_EMAIL = "demo@askhandle.local"
DEMO_PASSWORD = "demo-password-123"
DEMO_BUSINESS = "Brightside Bikes"
KNOWLEDGE_DIR = Path(__file__).resolve().parents[3] / "knowledge" / "fixtures"
KNOWLEDGE_FILES = ["brightside_faq.csv", "rental_and_repair_policy.md"]
# A Dutch bakery-café beside the English bike shop, so a newcomer sees the multilingual path
# (bots.languages: Dutch questions, Dutch search, Dutch refusals) work too.
DUTCH_SLUG = "demo-nl"
DUTCH_FILES = ["demo_nl/faq.csv"]
DUTCH_BOT = {
    "workspace": None,
    "name": "De Zoete Inval (Nederlands)",
    "language": "nl",
    "greeting": "Hoi! Ik ben de assistent van bakkerij-café De Zoete Inval. Vraag me over "
    "openingstijden, bestellen, bezorgen of allergenen.",
    "fallback_message": "Sorry, dat weet ik nog niet. Vraag naar een medewerker, dan nemen we "
    "contact met je op.",
    "instructions": "Je bent de vriendelijke assistent van bakkerij-café De Zoete Inval. "
    "Antwoord kort en alleen uit de gegeven kennis.",
    "primary_colour": "#b45309",
}


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner, workspace and bot. Safe to run repeatedly."

    def handle(self, *args, **options):
        with transaction.atomic():
            bot = self._owner_and_bot()
            dutch = self._dutch_bot(bot.workspace)
        self._seed_knowledge(bot, KNOWLEDGE_FILES)
        self._tune(bot)
        self._seed_knowledge(dutch, DUTCH_FILES)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {DEMO_EMAIL} / {DEMO_PASSWORD}, bots /c/{bot.slug}/ and "
                f"/c/{dutch.slug}/ (Dutch)"
            )
        )

    def _dutch_bot(self, workspace: Workspace) -> Bot:
        bot, _ = Bot.objects.get_or_create(
            slug=DUTCH_SLUG, defaults={**DUTCH_BOT, "workspace": workspace}
        )
        return bot

    def _owner_and_bot(self) -> Bot:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_EMAIL,
            defaults={"email": DEMO_EMAIL, "is_staff": True, "is_superuser": True},
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        workspace = Workspace.objects.filter(memberships__user=user, name=DEMO_BUSINESS).first()
        if workspace is None:
            workspace = Workspace.objects.create(name=DEMO_BUSINESS)
            Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.OWNER)
        bot, _ = Bot.objects.get_or_create(
            slug="demo",
            defaults={
                "workspace": workspace,
                "name": "Brightside Bikes Help",
                "greeting": "Hi! I'm the Brightside Bikes assistant. Ask me about orders, delivery, repairs or rentals.",
                "instructions": "You are the friendly support assistant of Brightside Bikes, a bicycle shop. Answer briefly and only from the provided knowledge.",
                "primary_colour": "#0f766e",
            },
        )
        return bot

    def _tune(self, bot: Bot) -> None:
        """Queue retrieval tuning for a demo bot that has none yet (also one seeded before tuning
        existed); the worker trains it in the background. A fresh seed has already queued one
        after its FAQ was ingested, which this folds into."""
        bot.refresh_from_db()
        if settings.RETRIEVAL_TUNING_AUTO and not serving.tuned_model(bot):
            if tuning_request(bot=bot, reason="demo set-up"):
                self.stdout.write(
                    "  retrieval tuning queued (the worker trains it in the background)"
                )

    def _seed_knowledge(self, bot: Bot, files: list[str]) -> None:
        """Ingest the sample knowledge synchronously, once: a bot with ready sources is left alone,
        so running this again stays fast."""
        if bot.sources.filter(status=Source.Status.READY).exists():
            return
        for path in files:
            name = Path(path).name
            for leftover in bot.sources.filter(name=name):  # an earlier, interrupted seed
                source_delete(source=leftover)
            with (KNOWLEDGE_DIR / path).open("rb") as handle:
                source = source_add(bot=bot, upload=File(handle, name=name), enqueue=False)
            source = source_ingest(source_id=source.pk)
            detail = f": {source.error}" if source.error else ""
            self.stdout.write(
                f"  {name}: {source.get_status_display()}, {source.chunk_count} chunks{detail}"
            )
