"""manage.py workspace_restore FILE [--name NAME]: create a dumped workspace again, new ids."""

import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from chat.backup import workspace_restore


class Command(BaseCommand):
    help = "Restore a workspace dumped by workspace_dump (FILE, or - for stdin), with new ids."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--name", help="the restored workspace's name (default: as dumped)")

    def handle(self, *args, file: str, name=None, **options):
        if file == "-":
            doc = json.load(sys.stdin)
        else:
            with open(file, encoding="utf-8") as handle:
                doc = json.load(handle)
        try:
            workspace = workspace_restore(doc=doc, name=name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        bots = ", ".join(f"{b.slug} (id {b.pk})" for b in workspace.bots.order_by("pk"))
        self.stdout.write(f"Restored workspace {workspace.pk} ({workspace.name}); bots: {bots}.")
