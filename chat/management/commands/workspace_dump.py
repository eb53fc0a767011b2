"""manage.py workspace_dump <workspace id> [-o FILE]: one workspace as JSON (chat.backup)."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from chat.backup import workspace_dump


class Command(BaseCommand):
    help = "Dump a workspace (bots, knowledge with vectors and files, conversations, keys' hashes, "
    "tunings) as JSON, to stdout or --output."

    def add_arguments(self, parser):
        parser.add_argument("workspace_id", type=int)
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")

    def handle(self, *args, workspace_id: int, output=None, **options):
        workspace = Workspace.objects.filter(pk=workspace_id).first()
        if workspace is None:
            raise CommandError(f"No workspace with id {workspace_id}.")
        doc = workspace_dump(workspace=workspace)
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                json.dump(doc, handle)
        else:
            json.dump(doc, sys.stdout)
        counts = ", ".join(f"{len(rows)} {label}" for label, rows in doc["tables"].items())
        self.stderr.write(f"Dumped workspace {workspace_id} ({workspace.name}): {counts}.")
