"""Grouping the questions a bot missed: the unanswered and thumbs-down questions are embedded with the
bot's own embedding model and paraphrases grouped together, so the owner answers "do you ship to
Canada" once, not five times."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.core.cache import cache

import providers
from bots.models import Bot

from .selectors import answered_questions, normalise, weak_questions

# Cosine similarity at which a question joins a group (against the group centroid). Measured on
# MiniLM with 19 shop questions in 5 intents: paraphrase pairs 0.48-0.95 (median 0.76), unrelated
# pairs at most 0.40 (median 0.11); thresholds 0.50-0.65 gave the same groups, 0.70 split two.
CLUSTER_THRESHOLD = 0.55


EXAMPLES_SHOWN = 5


EMBEDDING_CACHE_SECONDS = 30 * 24 * 3600


@dataclass
class QuestionGroup:
    questions: list[str]  # distinct phrasings, most asked first
    count: int  # times asked in total
    fallback_count: int = 0
    down_count: int = 0
    last_asked: datetime | None = None
    resolved_by: object | None = None  # the FaqEntry that answers it now
    counts: dict = field(default_factory=dict)

    @property
    def question(self) -> str:
        return self.questions[0]

    @property
    def examples(self) -> list[tuple[str, int]]:
        return [(q, self.counts.get(q, 1)) for q in self.questions[:EXAMPLES_SHOWN]]

    @property
    def more(self) -> int:
        return max(0, len(self.questions) - EXAMPLES_SHOWN)

    @property
    def alternates(self) -> list[str]:
        return self.questions[1:]

    @property
    def key(self) -> str:
        return hashlib.sha1(normalise(self.question).encode()).hexdigest()[:12]


def embed_cached(bot: Bot, texts: list[str]) -> np.ndarray:
    """Unit vectors for `texts` from the bot's embedding model; each text is embedded once.

    Vectors are cached (Redis) by model and text, so reloading the page costs no model time.
    """
    # The base model of the bot's settings, not a tuned or still-serving one (grouping questions
    # needs no FAQ-specific model), and the cache key names exactly the model that embedded.
    provider = providers.for_bot(bot)
    model = bot.embedding_model or provider.default_embedding_model()
    keys = {
        t: f"insights:emb:{hashlib.sha1(f'{provider.name}:{model}|{t}'.encode()).hexdigest()}"
        for t in texts
    }
    found = cache.get_many(list(keys.values()))
    missing = [t for t in texts if keys[t] not in found]
    if missing:
        vectors = provider.embed(missing, model=model)
        new = {keys[t]: list(map(float, v)) for t, v in zip(missing, vectors, strict=True)}
        cache.set_many(new, timeout=EMBEDDING_CACHE_SECONDS)
        found.update(new)
    matrix = np.asarray([found[keys[t]] for t in texts], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def cluster(vectors: np.ndarray, threshold: float = CLUSTER_THRESHOLD) -> list[list[int]]:
    """Greedy centroid clustering of unit vectors by cosine similarity.

    Rows are taken in the order given (callers pass the most frequent first, so the most asked
    phrasing seeds its group); each joins the group whose centroid is most similar if that
    similarity reaches `threshold`, else starts a new group.
    """
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, v in enumerate(vectors):
        if groups:
            centroids = np.stack(sums)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            sims = centroids @ v
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                groups[best].append(i)
                sums[best] = sums[best] + v
                continue
        groups.append([i])
        sums.append(v.copy())
    return groups


def question_groups(
    *, bot: Bot, days: int, threshold: float = CLUSTER_THRESHOLD
) -> list[QuestionGroup]:
    """Unanswered and thumbs-down questions grouped by meaning, most frequent group first.

    Side effect: embeds phrasings not embedded before (cached). Raises ProviderError when the
    bot's embedding provider cannot be reached.
    """
    weak = weak_questions(bot=bot, days=days)
    if not weak:
        return []
    # Phrasings that differ only in case/punctuation are one phrasing, shown in its commonest spelling.
    phrasing: dict[str, dict] = {}
    for w in weak:
        p = phrasing.setdefault(
            normalise(w.text),
            {"spellings": Counter(), "count": 0, "fallback": 0, "down": 0, "last": w.asked_at},
        )
        p["spellings"][w.text] += 1
        p["count"] += 1
        p["fallback"] += w.fallback
        p["down"] += w.thumbs_down
        p["last"] = max(p["last"], w.asked_at)
    for p in phrasing.values():
        p["text"] = p["spellings"].most_common(1)[0][0]
    ordered = sorted(phrasing.values(), key=lambda p: (-p["count"], -p["last"].timestamp()))
    vectors = embed_cached(bot, [p["text"] for p in ordered])
    answered = answered_questions(bot)
    groups = []
    for members in cluster(vectors, threshold):
        items = [ordered[i] for i in members]
        groups.append(
            QuestionGroup(
                questions=[p["text"] for p in items],
                count=sum(p["count"] for p in items),
                fallback_count=sum(p["fallback"] for p in items),
                down_count=sum(p["down"] for p in items),
                last_asked=max(p["last"] for p in items),
                resolved_by=next(
                    (
                        answered[normalise(p["text"])]
                        for p in items
                        if normalise(p["text"]) in answered
                    ),
                    None,
                ),
                counts={p["text"]: p["count"] for p in items},
            )
        )
    # Open groups first (that is the owner's to-do list), then by how often they were asked.
    groups.sort(key=lambda g: (g.resolved_by is not None, -g.count, -g.last_asked.timestamp()))
    return groups
