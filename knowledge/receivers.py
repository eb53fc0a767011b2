"""What follows a source's deletion, direct or by cascade (its bot or workspace deleted), once it
commits: its uploaded file is deleted, and the bot's per-bot vector index is synced (dropped when
the bot is gone or has shrunk)."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import vector_indexes
from .models import Source


@receiver(post_delete, sender=Source, dispatch_uid="knowledge.source_file")
def delete_file_with_source(sender, instance: Source, **kwargs) -> None:
    # After commit: a rolled-back deletion must not lose the file its row still names.
    file = instance.file
    if file:
        storage, name = file.storage, file.name
        transaction.on_commit(lambda: storage.delete(name))


@receiver(post_delete, sender=Source, dispatch_uid="knowledge.source_vector_index")
def sync_vector_index_after_delete(sender, instance: Source, **kwargs) -> None:
    # A deletion can only make an index unnecessary: bots without one need no sync (and a bot
    # deleted with its 500 sources queues no 500 syncs of nothing).
    if vector_indexes.existing(instance.bot_id):
        vector_indexes.sync_on_commit(instance.bot_id)
