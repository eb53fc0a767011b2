"""The score samples a bot's thresholds are fitted on (training.calibration_curve), each scored as
search() scores a question: its cosine to an FAQ entry's centroid of phrasings.

- in scope: held-out phrasings against every entry, their own entry's centroid without them
  (right or wrong, and the score). With a tuned model only the phrasings retrieval tuning kept
  out of training are honest (holdout_split); with the base model every phrasing of an entry
  with two or more is held out in turn. An FAQ without enough of them adds pseudo-paraphrases
  of its questions;
- unrelated: the shipped unrelated questions of the bot's language (training.unrelated), without
  those that score like the bot's own right answers (trim_unrelated: a shop's "can I return my
  order" is in scope for it);
- on topic but unanswerable: each held-out phrasing against the other entries only;
- the owner's labelled questions from the bot's own traffic (training.sources).

calibration_fit() reads the bot's stored vectors and embeds what it needs with the bot's serving
model; it never writes."""

from __future__ import annotations

import hashlib
import random
import re

import numpy as np

from knowledge import serving
from knowledge.models import Chunk, FaqEntry

from .calibration_curve import DEFAULT_CAUTION, Samples, fit
from .sources import observed_questions
from .unrelated import carriers, every

HOLDOUT_MIN_PHRASINGS = 3  # an entry keeps >= 2 phrasings to train on when one is held out
# Unrelated samples scoring at least the median right in-scope score are probably in scope for
# this bot; at most this share of the unrelated set is trimmed, so a bot whose own questions
# score low cannot discard its whole out-of-scope sample.
TRIM_QUANTILE = 0.5
TRIM_MAX_SHARE = 0.15
# Below this many real held-out phrasings the in-scope sample is too small for a curve, so
# pseudo-paraphrases of the questions are added.
MIN_IN_SCOPE_SAMPLES = 20
# Pseudo-paraphrases per question: a few variants give a spread of scores and stay cheap to embed.
PSEUDO_PER_QUESTION = 4


# --- Which phrasings calibration holds out ------------------------------------------------------


def _stable_key(text: str) -> str:
    return hashlib.sha1(text.strip().lower().encode("utf-8")).hexdigest()


def holdout_split(groups: list[list[str]]) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """(training groups, held-out (entry, phrasing) indexes): one alternate phrasing of every
    entry with at least HOLDOUT_MIN_PHRASINGS phrasings is kept out of retrieval tuning, so the
    tuned model's scores on it are honest calibration samples. The canonical question (index 0)
    is never held out. The choice depends only on the entry's own texts (a hash), so editing one
    entry does not reshuffle the others'."""
    train, held = [], []
    for gi, group in enumerate(groups):
        if len(group) >= HOLDOUT_MIN_PHRASINGS:
            pi = min(range(1, len(group)), key=lambda i: _stable_key(group[i]))
            held.append((gi, pi))
            train.append([p for i, p in enumerate(group) if i != pi])
        else:
            train.append(list(group))
    return train, held


# --- Score samples ------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def entry_sums(vectors: np.ndarray, labels: np.ndarray, n_entries: int) -> np.ndarray:
    """Sum of each entry's phrasing vectors (a centroid up to scale: cosine ignores scale)."""
    sums = np.zeros((n_entries, vectors.shape[1]))
    np.add.at(sums, labels, np.asarray(vectors, dtype=np.float64))
    return sums


def best_entry(queries: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the best entry, its centroid cosine) for each query."""
    scores = _unit(queries) @ _unit(sums).T
    top = scores.argmax(axis=1)
    return top, scores[np.arange(len(queries)), top]


def held_out_samples(
    vectors: np.ndarray, labels: np.ndarray, held: np.ndarray, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each held-out phrasing (indexes `held` into vectors/labels): its best score against
    every entry's centroid with itself removed from its own entry's centroid, whether that top-1
    is its own entry, and its best score against the other entries only (leave one entry out: a
    question on topic that no entry answers). Phrasings that are their entry's only one are
    skipped (their entry has no centroid left). `queries`: the phrasings embedded as questions,
    where the stored vectors are passages (knowledge.serving.embeds_answers), aligned with
    `vectors`. Returns (scores, correct, other_scores)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    n_entries = int(labels.max()) + 1 if len(labels) else 0
    sums = entry_sums(vectors, labels, n_entries)
    counts = np.bincount(labels, minlength=n_entries)
    held = np.asarray([i for i in held if counts[labels[i]] >= 2], dtype=int)
    if not len(held):
        empty = np.zeros(0)
        return empty, np.zeros(0, dtype=bool), empty
    q = _unit(vectors[held] if queries is None else np.asarray(queries, dtype=np.float64)[held])
    scores = q @ _unit(sums).T
    own = labels[held]
    rest = sums[own] - vectors[held]
    rows = np.arange(len(held))
    scores[rows, own] = np.einsum("ij,ij->i", q, _unit(rest))
    top = scores.argmax(axis=1)
    best = scores[rows, top]
    others = scores.copy()
    others[rows, own] = -np.inf
    return best, top == own, others.max(axis=1) if n_entries > 1 else np.full(len(held), -1.0)


def unrelated_scores(vectors: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Best centroid score of each unrelated question."""
    if not len(vectors):
        return np.zeros(0)
    return best_entry(np.asarray(vectors), sums)[1]


def trim_unrelated(
    unrelated: np.ndarray,
    right_in_scope: np.ndarray,
    *,
    quantile: float = TRIM_QUANTILE,
    max_share: float = TRIM_MAX_SHARE,
) -> np.ndarray:
    """The unrelated scores without those that score like this bot's right answers (at least the
    `quantile` of right in-scope scores): they are probably questions this bot should answer.
    At most `max_share` of the sample is dropped, highest first."""
    unrelated = np.sort(np.asarray(unrelated, dtype=np.float64))
    if not len(unrelated) or not len(right_in_scope):
        return unrelated
    cut = float(np.quantile(right_in_scope, quantile))
    above = int((unrelated >= cut).sum())
    drop = min(above, int(max_share * len(unrelated)))
    return unrelated[: len(unrelated) - drop]


_WORD = re.compile(r"[\w'-]+")
_STOP = {
    "a", "an", "the", "i", "my", "me", "you", "your", "we", "our", "is", "are", "do", "does",
    "can", "to", "of", "for", "in", "on", "it", "be", "how", "what", "when", "where", "why",
    "which", "who", "and", "or", "with", "at", "this", "that", "there", "if", "will", "would",
}  # fmt: skip


def pseudo_paraphrases(
    question: str, n: int = PSEUDO_PER_QUESTION, seed: int = 0, language: str = "en"
) -> list[str]:
    """Cheap stand-ins for how customers might ask `question` when the FAQ has no alternate
    phrasings: about a third of the words dropped (never every content word), the rest sometimes
    reordered, wrapped in a carrier phrase of the bot's language (training.unrelated.carriers:
    customers wrap a question in words of their own, which pulls its embedding away from the
    FAQ's wording). Deterministic for a (question, seed, language)."""
    wrappers = carriers(language)
    words = _WORD.findall(question.lower())
    if not words:
        return []
    rng = random.Random(f"{seed}:{question}")

    # Other languages' stop words are not listed: their short words stand in for them.
    def stop(word: str) -> bool:
        return word in _STOP if language == "en" else len(word) <= 3

    content = [i for i, w in enumerate(words) if not stop(w)] or list(range(len(words)))
    out = []
    for k in range(n):
        keep = [w for w in words if rng.random() > 0.35]
        kept_content = [w for w in keep if not stop(w)]
        if not kept_content:
            keep.append(words[rng.choice(content)])
        if k % 2 and len(keep) > 1:
            rng.shuffle(keep)
        out.append(rng.choice(wrappers).format(" ".join(keep)))
    return out


# --- Building the samples from vectors ----------------------------------------------------------


def build_samples(
    vectors: np.ndarray,
    labels: np.ndarray,
    held: np.ndarray,
    unrelated_vectors: np.ndarray,
    pseudo_vectors: np.ndarray | None = None,
    pseudo_labels: np.ndarray | None = None,
    *,
    trim: bool = True,
    queries: np.ndarray | None = None,
) -> Samples:
    """Samples from one bot's phrasing vectors (labels: entry index per vector), the indexes of
    the phrasings to hold out, the unrelated questions' vectors and optionally pseudo-paraphrases
    (vectors + the entry they paraphrase), scored against the unchanged centroids."""
    labels = np.asarray(labels)
    n_entries = int(labels.max()) + 1
    sums = entry_sums(np.asarray(vectors), labels, n_entries)
    in_scores, in_correct, on_topic = held_out_samples(
        vectors, labels, np.asarray(held, int), queries
    )
    if pseudo_vectors is not None and len(pseudo_vectors):
        top, best = best_entry(np.asarray(pseudo_vectors), sums)
        scores = _unit(pseudo_vectors) @ _unit(sums).T
        scores[np.arange(len(top)), pseudo_labels] = -np.inf
        in_scores = np.concatenate([in_scores, best])
        in_correct = np.concatenate([in_correct, top == np.asarray(pseudo_labels)])
        if n_entries > 1:
            on_topic = np.concatenate([on_topic, scores.max(axis=1)])
    unrelated = unrelated_scores(unrelated_vectors, sums)
    if trim:
        unrelated = trim_unrelated(unrelated, in_scores[in_correct])
    return Samples(in_scores, in_correct, unrelated, on_topic)


def load_unrelated(language: str = "en") -> list[str]:
    return every(language)


# --- One bot ------------------------------------------------------------------------------------

# A process serves a few models and languages at a time; each cached set is ~500 vectors.
_UNRELATED_CACHE_SIZE = 8
# (serving model name, language) -> vectors, oldest first
_unrelated_vectors: dict[tuple[str, str], np.ndarray] = {}


def _unrelated_for(bot, model: str) -> np.ndarray:
    """The unrelated set of the bot's language embedded with the bot's serving model; a process
    keeps the last few (a tuned model's name is never reused, so the name is a safe key)."""
    key = (model, bot.language)
    if key in _unrelated_vectors:
        return _unrelated_vectors[key]
    vectors = np.asarray(serving.embed_for_bot(bot, load_unrelated(bot.language)), dtype=np.float64)
    _unrelated_vectors[key] = vectors
    while len(_unrelated_vectors) > _UNRELATED_CACHE_SIZE:
        _unrelated_vectors.pop(next(iter(_unrelated_vectors)))
    return vectors


def calibration_fit(bot, caution: float | None = None) -> dict | None:
    """Fit the bot's thresholds from its FAQ as it is searched now (the stored phrasing vectors of
    its serving embedding model) and the unrelated set. Returns fit()'s dict plus the model and
    the method used, or None when the bot has no FAQ entry with vectors.

    Held-out samples: with a tuned model, the phrasings retrieval tuning kept out of training
    (holdout_split); with the base model, every phrasing of an entry that has two or more.
    Fewer than MIN_IN_SCOPE_SAMPLES of them: pseudo-paraphrases of every question are added.
    Embeds the unrelated set (cached per model) and the pseudo-paraphrases; reads, never writes.
    """
    model = serving.embedding_model_for_bot(bot)
    loaded = _phrasing_vectors(bot, model)
    if loaded is None:
        return None
    entries, groups, vectors, labels, titles, remap = loaded
    held, method = _held_out(bot, groups, titles, labels, remap)
    queries = None
    if serving.embeds_answers(model):
        held, queries = _asked_as_questions(bot, vectors, labels, titles, held)
        method = "other phrasings, asked as questions"
    pseudo_vectors = pseudo_labels = None
    if len(held) < MIN_IN_SCOPE_SAMPLES:
        pseudo_vectors, pseudo_labels = _pseudo_samples(bot, entries, remap)
        method += " + pseudo-paraphrases of the questions"
    samples = build_samples(
        vectors,
        labels,
        np.asarray(held, dtype=int),
        _unrelated_for(bot, model),
        pseudo_vectors,
        pseudo_labels,
        queries=queries,
    )
    observed = observed_questions(bot)
    if observed:
        samples = _with_observed(bot, samples, observed, vectors, labels, entries, remap)
        method += f" + {len(observed)} questions you labelled"
    result = fit(samples, DEFAULT_CAUTION if caution is None else caution)
    return {**result, "model": model, "method": method}


def _asked_as_questions(bot, vectors, labels, titles, held) -> tuple[list[int], np.ndarray]:
    """Where the stored vectors are passages (a phrasing with its entry's question and answer),
    a customer's question is embedded as a query, so the held-out phrasings are too: (the held
    out indexes left, their query vectors aligned with `vectors`). An entry's own question is in
    every one of its passages, so only its other phrasings are held out."""
    first = {int(lab): i for i, lab in reversed(list(enumerate(labels)))}
    held = [i for i in held if first[int(labels[i])] != i]
    queries = np.zeros_like(vectors)
    if held:
        queries[held] = serving.embed_for_bot(bot, [titles[i] for i in held])
    return held, queries


def _pseudo_samples(bot, entries, remap) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-paraphrases of every entry's question with vectors: (their vectors, the dense
    index of the entry each paraphrases)."""
    pairs = [
        (p, remap[gi])
        for gi, (_, question, _) in enumerate(entries)
        if gi in remap
        for p in pseudo_paraphrases(question, language=bot.language)
    ]
    vectors = np.asarray(serving.embed_for_bot(bot, [p for p, _ in pairs]))
    return vectors, np.asarray([gi for _, gi in pairs])


def _with_observed(bot, samples: Samples, observed, vectors, labels, entries, remap) -> Samples:
    """The samples with the owner's labelled questions added: each embedded as a question and
    scored against every entry's centroid; one that should get an entry joins the in-scope
    samples (right if its best entry is that one), one that should be declined is observed
    out-of-scope traffic (Samples.observed_out)."""
    dense = {pk: remap[i] for i, (pk, _, _) in enumerate(entries) if i in remap}
    sums = entry_sums(np.asarray(vectors), np.asarray(labels), int(np.max(labels)) + 1)
    queries = np.asarray(serving.embed_for_bot(bot, [text for text, _ in observed]))
    top, best = best_entry(queries, sums)
    expected = [dense.get(pk, -1) if pk is not None else None for _, pk in observed]
    answerable = [i for i, e in enumerate(expected) if e is not None and e >= 0]
    declines = [i for i, e in enumerate(expected) if e is None]
    return Samples(
        np.concatenate([samples.in_scores, best[answerable]]),
        np.concatenate(
            [samples.in_correct, np.asarray([top[i] == expected[i] for i in answerable], bool)]
        ).astype(bool),
        samples.unrelated,
        samples.on_topic,
        best[declines],
    )


def _phrasing_vectors(bot, model: str):
    """The bot's FAQ entries, their phrasing groups, and the stored phrasing vectors of `model`
    with dense entry labels and chunk titles; None when no entry has vectors yet."""
    entries = list(
        FaqEntry.objects.filter(bot=bot)
        .order_by("pk")
        .values_list("pk", "question", "alternate_questions")
    )
    chunks = (
        Chunk.objects.filter(bot=bot, embedding_model=model, faq__isnull=False)
        .order_by("faq_id", "position", "pk")
        .values_list("faq_id", "title", "embedding")
    )
    index = {pk: i for i, (pk, _, _) in enumerate(entries)}
    vectors, labels, titles = [], [], []
    for faq_id, title, vector in chunks.iterator(chunk_size=2000):
        if faq_id in index:
            vectors.append(np.asarray(vector, dtype=np.float64))
            labels.append(index[faq_id])
            titles.append(title)
    if not vectors:
        return None
    # Entries without vectors (mid-ingestion) are dropped; indexes stay dense.
    remap = {old: new for new, old in enumerate(sorted(set(labels)))}
    groups = [[q, *(alts or [])] for _, q, alts in entries]
    dense = np.asarray([remap[x] for x in labels])
    return entries, groups, np.vstack(vectors), dense, titles, remap


def _held_out(bot, groups, titles, labels, remap) -> tuple[list[int], str]:
    """Indexes of the in-scope samples among the phrasing vectors, and how they were chosen."""
    tuned = bool(serving.tuned_model(bot)) and not serving.serving_embedding(bot)
    if tuned:
        # Chunk titles are the phrasings (cut to the title field's length).
        cut = Chunk._meta.get_field("title").max_length
        held_texts = {
            (remap[gi], groups[gi][pi][:cut]) for gi, pi in holdout_split(groups)[1] if gi in remap
        }
        held = [
            i
            for i, (t, lab) in enumerate(zip(titles, labels, strict=True))
            if (int(lab), t) in held_texts
        ]
        return held, "held-out phrasings (kept out of retrieval tuning)"
    counts = np.bincount(labels)
    return [i for i, lab in enumerate(labels) if counts[lab] >= 2], "each phrasing held out in turn"
