"""Files that follow their rows: a source deleted directly or by cascade (its bot or workspace
deleted) takes its uploaded file with it, once the deletion commits."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Source


@receiver(post_delete, sender=Source, dispatch_uid="knowledge.source_file")
def delete_file_with_source(sender, instance: Source, **kwargs) -> None:
    # After commit: a rolled-back deletion must not lose the file its row still names.
    file = instance.file
    if file:
        storage, name = file.storage, file.name
        transaction.on_commit(lambda: storage.delete(name))
