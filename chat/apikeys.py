"""API keys for the OpenAI-compatible API: create (shown once), revoke, authenticate.

A key is `ah_` + 40 random URL-safe characters. Only its SHA-256 is stored; a stolen database
does not yield usable keys, and lookup by hash is one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from bots.models import Bot

from .models import ApiKey

KEY_PREFIX = "ah_"
SHOWN_PREFIX_CHARS = 10
# last_used_at is informational; writing it at most once a minute keeps the API path read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, bot: Bot, name: str) -> tuple[ApiKey, str]:
    """Create a key for `bot`. Returns the row and the raw key, which is never stored."""
    raw = KEY_PREFIX + secrets.token_urlsafe(30)
    key = ApiKey(
        bot=bot,
        name=name.strip() or "API key",
        prefix=raw[:SHOWN_PREFIX_CHARS],
        key_hash=hash_key(raw),
    )
    key.full_clean()
    key.save()
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The active key matching `raw` (with its bot), or None. Marks it used."""
    if not raw or not raw.startswith(KEY_PREFIX):
        return None
    key = (
        # With the model that serves the bot's knowledge: every answer reads it.
        ApiKey.objects.select_related("bot", "bot__embedding_state")
        .filter(key_hash=hash_key(raw), revoked_at__isnull=True)
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
