"""What knowledge announces to later apps (training), which it never imports.

- `faq_changed` is sent after the commit that changed a bot's FAQ entries (an ingestion that
  replaced an FAQ source's chunks, a deleted FAQ source) or its serving embedding model.
  kwargs: bot_id, reason. training re-tunes the bot's retrieval model and recalibrates it.
- `vectors_swapped` is sent inside the transaction that moved every chunk of a bot to another
  embedding model (knowledge.reembedding), holding the bot row. kwargs: bot_id, reason.
  Receivers must not do network or model I/O; training retires the tuned model that no longer
  serves (its weights are deleted after commit).
"""

from django.db import transaction
from django.dispatch import Signal

faq_changed = Signal()
vectors_swapped = Signal()


def faq_changed_on_commit(bot_id: int, reason: str) -> None:
    transaction.on_commit(
        lambda: faq_changed.send(sender="knowledge", bot_id=bot_id, reason=reason)
    )
