from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Workspace
from bots.models import Bot

DEMO_EMAIL = "demo@askhandle.local"
DEMO_PASSWORD = "demo-password-123"
DEMO_BUSINESS = "Brightside Bikes"


class Command(BaseCommand):
    help = "Create (or refresh) the demo owner, workspace and bot. Safe to run repeatedly."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_EMAIL, defaults={"email": DEMO_EMAIL, "is_staff": True, "is_superuser": True}
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
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {DEMO_EMAIL} / {DEMO_PASSWORD}, bot /c/{bot.slug}/"))
