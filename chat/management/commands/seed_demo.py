from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Workspace
from bots.models import Bot

DEMO_EMAIL = "demo@askhandle.local"
DEMO_PASSWORD = "demo-password-123"
DEMO_BUSINESS = "Brightside Bikes"
KNOWLEDGE_DIR = Path(__file__).resolve().parents[3] / "knowledge" / "fixtures"
KNOWLEDGE_FILES = ["brightside_faq.csv", "rental_and_repair_policy.md"]


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner, workspace and bot. Safe to run repeatedly."

    def handle(self, *args, **options):
        with transaction.atomic():
            bot = self._owner_and_bot()
        self._seed_knowledge(bot)
        self._tune(bot)
        self.stdout.write(
            self.style.SUCCESS(f"Demo ready: {DEMO_EMAIL} / {DEMO_PASSWORD}, bot /c/{bot.slug}/")
        )

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
        from django.conf import settings

        from training.retrieval import tuning_request

        bot.refresh_from_db()
        if settings.RETRIEVAL_TUNING_AUTO and not bot.tuned_embedding_model:
            if tuning_request(bot=bot, reason="demo set-up"):
                self.stdout.write(
                    "  retrieval tuning queued (the worker trains it in the background)"
                )

    def _seed_knowledge(self, bot: Bot) -> None:
        """Ingest the sample knowledge synchronously, once: a bot with ready sources is left alone,
        so running this again stays fast."""
        from knowledge.models import Source
        from knowledge.services import source_add, source_delete, source_ingest

        if bot.sources.filter(status=Source.Status.READY).exists():
            return
        for name in KNOWLEDGE_FILES:
            for leftover in bot.sources.filter(name=name):  # an earlier, interrupted seed
                source_delete(source=leftover)
            with (KNOWLEDGE_DIR / name).open("rb") as handle:
                source = source_add(bot=bot, upload=File(handle, name=name), enqueue=False)
            source = source_ingest(source_id=source.pk)
            detail = f": {source.error}" if source.error else ""
            self.stdout.write(
                f"  {name}: {source.get_status_display()}, {source.chunk_count} chunks{detail}"
            )
