"""Resuming an interrupted embedding run from its last saved batch (knowledge.models.StagedVector).

An ingestion or a model switch embeds in batches outside any transaction and replaces vectors in
one transaction at the end; a worker killed at batch 45 of 100 used to start again at batch 1.
Each batch's vectors are now staged as soon as they are embedded, keyed by the text's digest and
the model, and the run that takes over reuses them. Same text, same model: same vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .models import StagedVector


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Staged:
    """The staged vectors of one job (a source or a re-embedding) for one model."""

    def __init__(self, *, bot_id: int, model: str, source_id=None, reembedding_id=None) -> None:
        self.bot_id = bot_id
        self.model = model
        self.job = {"source_id": source_id, "reembedding_id": reembedding_id}
        self.rows = StagedVector.objects.filter(embedding_model=model, **self.job)

    def vectors(self) -> dict[str, object]:
        """{digest: vector} of what an earlier run of this job embedded."""
        return dict(self.rows.values_list("digest", "embedding").iterator(chunk_size=2000))

    def digests(self) -> set[str]:
        """The digests of what an earlier run (or slice) of this job embedded."""
        return set(self.rows.values_list("digest", flat=True).iterator(chunk_size=5000))

    def save(self, texts: Sequence[str], vectors: Sequence) -> None:
        StagedVector.objects.bulk_create(
            StagedVector(
                bot_id=self.bot_id,
                embedding_model=self.model,
                digest=digest(text),
                embedding=vector,
                **self.job,
            )
            for text, vector in zip(texts, vectors, strict=True)
        )

    def clear(self) -> None:
        """Every staged vector of the job, whatever the model (inside the final transaction)."""
        StagedVector.objects.filter(**self.job)._raw_delete(StagedVector.objects.db)
