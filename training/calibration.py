"""Answer thresholds fitted to one bot from its own FAQ plus a shipped set of unrelated questions.

A bot answers when the best FAQ entry's score (cosine between the question and the centroid of
the entry's phrasings, knowledge.selectors) reaches its answer threshold, and answers verbatim
above its direct threshold. One pair of constants does not fit every bot: the scores' scale
depends on the FAQ (how close its entries sit) and on the embedding model (base or tuned). So
each bot gets its own, from three samples of scores computed exactly as search() computes them:

- in scope: held-out phrasings scored against every entry's centroid, their own entry's centroid
  without them (top-1 right or wrong, and the score). With a tuned model only the phrasings that
  retrieval tuning kept out of training (holdout_split) are honest samples; with the base model
  every phrasing of an entry that has two or more can be held out in turn. An FAQ without
  alternate phrasings gets pseudo-paraphrases of its questions (pseudo_paraphrases);
- unrelated: the questions in data/unrelated_questions.txt (small talk, world knowledge, other
  businesses' customer questions), scored against every centroid. Some may be in scope for a
  bot (a shop's "can I return my order"): the ones that score like the bot's own right answers
  are trimmed (trim_unrelated);
- unanswerable but on topic: each entry's held-out phrasings scored against the *other* entries
  only (leave one entry out), i.e. questions about the business that no entry answers.

fit() turns them into the curve of (answer rate, right-answer rate, refusal rate) per threshold,
kernel-smoothed (curve(smooth=True)): counted, a tuned 50-entry bot's 50 held-out questions make
a staircase whose best step moves with one question. The caution is the share of out-of-scope
questions the bot should decline, as the curve estimates it (the mean of the unrelated and the
on-topic refusal rates). The answer threshold (answer_threshold) is the lowest that declines
that share, i.e. of the thresholds that decline enough, the one that answers the most, unless
declining more costs no right answers: then the point where right answers and refusals are
worth most together (refusals weighted as about 1 in 4 questions, OUT_OF_SCOPE_SHARE) is higher
and wins. A one-entry FAQ declines 7 in 10 unrelated questions from similarity 0.10 already,
and all of them from 0.3 without losing one of its own. The default caution, 0.7 ("declines
about 7 in 10 questions it has no answer for"), is the refusal the product promises (issue 11's
goal), not a value fitted to a benchmark; the owner's "cautious <-> helpful" control moves it,
and threshold_for_caution() reads a new value off the stored curve without recomputing
anything. The estimate is conservative where measured: the on-topic sample (a held-out phrasing
against its siblings) is harder to decline than real out-of-scope questions. The direct
threshold is where held-out top-1 precision stays high (DIRECT_MAX_ERROR, estimated
conservatively).

Why not an objective that weighs in-scope outcomes against refusals (used until 2026-12-02:
maximise (1 - c) * good_in + c * refuse_out with c = 0.25, a good in-scope outcome being a right
answer or the refusal of a wrong top-1, and no refusal asked for): with a tuned model a third
of the 50 held-out questions of BANKING77-OOS had a wrong top-1 (0.21 on TEST), so refusing
them looked as good as answering right ones, the in-scope term went flat and the pessimistic
on-topic refusal estimate decided alone: answer 0.69-0.72, TEST 0.60-0.64 right at 0.87-0.91
refusal. The refusal target asks the estimate only what it estimates conservatively, and the
weighed point counts right answers only. A target alone was tried first: it sent small FAQs to
thresholds of 0.10-0.17, where "Can I buy a gift card?" (0.14) got a one-entry shipping FAQ's
answer.

Everything above is pure numpy over arrays; calibration_fit(bot) loads the bot's vectors and
embeds the unrelated set with the bot's serving model (cached per model name).

Measured (centroid scores in numpy on the cached vectors of benchmarks/calibration_study.py;
in-scope top-1-and-answered accuracy / out-of-scope refusal on TEST, which calibration never
sees; the default caution against the old objective at c = 0.25 on the same smoothed curve):
  - tuned, holdout: CLINC150 (1 run) 0.845 / 0.934 (the share asked for alone: 0.857 / 0.905)
    against 0.828 / 0.943 (counted: 0.799 / 0.963); BANKING77-OOS (3-run soup) 0.730 / 0.725
    against 0.602 / 0.905 (counted: 0.634 / 0.882). The best threshold chosen with TEST's
    answers known gives 0.900 and 0.736 at 0.70. Through the pipeline (faq_bench, 3-run soups):
    CLINC150 0.845 / 0.930, BANKING77-OOS 0.730 / 0.726.
  - base model: CLINC150 0.772 / 0.908 against 0.783 / 0.894; BANKING77-OOS 0.672 / 0.776
    against 0.664 / 0.793.
  - question-only FAQs (pseudo-paraphrases): CLINC150 0.528 / 0.927 against 0.490 / 0.950;
    BANKING77-OOS 0.601 / 0.679 against 0.497 / 0.875.
  - Measured refusal is at or above the 0.7 asked in all six but the last (0.679): the on-topic
    sample is the harder one (CLINC150's out-of-scope questions score lower against its tuned
    bot, DEV median 0.33, than the unrelated sample, 0.39, and the on-topic one, 0.52;
    BANKING77-OOS's, 0.57, sit near its on-topic sample, 0.63).
  - The in-scope estimate is honest where samples are many (base model, CLINC150 DEV at 0.49:
    right answers 0.77 estimated, 0.78 measured) and noisy with 50 held-out phrasings (a tuned
    50-entry bot: 0.54 estimated vs 0.67 measured), which the refusal target does not lean on.
  - Holding phrasings out of tuning cost nothing measurable (top-1 within +-0.5 pt).
  - Question-only FAQs: pseudo-paraphrases are still closer to their question than customers'
    words are; under the old objective their thresholds came out too high (CLINC150 TEST
    0.490 / 0.950 against the global 0.540 / 0.916; BANKING77 0.437 / 0.930 against 0.610 /
    0.638).
  - Trimming (measured under the old objective) dropped 1-11 of the 519 unrelated questions
    (most on CLINC150, whose intents include weather, recipes and small talk) and moved no
    answer threshold; it moved the direct threshold of the tuned CLINC150 bot from 0.82 to 0.76.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

import numpy as np
from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from bots.models import Bot
from knowledge import serving
from knowledge.models import Chunk, FaqEntry
from providers import ProviderUnavailable

from .models import Calibration
from .sources import observed_questions
from .unrelated import carriers, every

# The caution is the share of out-of-scope questions a bot should decline (estimated on its own
# samples). 0.7 is what the product promises an owner by default (see the module docstring).
DEFAULT_CAUTION = 0.7
# About 1 in 4 customer questions are not about the business (a product assumption, not fitted
# to a benchmark): the weight of refusals against right answers at the default caution.
OUT_OF_SCOPE_SHARE = 0.25
# The curve's resolution (401 points from 0 to 1): multilingual-e5 packs a bot's scores into a
# few hundredths (0.82-0.89), where 0.01 steps moved refusal by 0.1-0.3 at a time.
THRESHOLD_STEP = 0.0025
HOLDOUT_MIN_PHRASINGS = 3  # an entry keeps >= 2 phrasings to train on when one is held out
# Unrelated samples scoring at least the median right in-scope score are probably in scope for
# this bot; at most this share of the unrelated set is trimmed, so a bot whose own questions
# score low cannot discard its whole out-of-scope sample.
TRIM_QUANTILE = 0.5
TRIM_MAX_SHARE = 0.15
# Direct (verbatim) answers: the conservative error estimate (wrong + 1) / (answered + 2) of the
# held-out questions above the threshold stays under this, and unrelated questions pass it at
# most this often.
DIRECT_MAX_ERROR = 0.05
DIRECT_MAX_UNRELATED = 0.01
# Without enough samples to show a safe direct threshold: verbatim only for a question nearly
# identical to the entry's wording. (A phrasing scored against its own entry's centroid: median
# 0.80, 5th percentile 0.59 over the demo FAQ and 60 CLINC150 entries; 0.9 keeps the framing
# for all but the closest matches.)
DIRECT_FALLBACK = 0.9
# Below this many real held-out phrasings, pseudo-paraphrases of the questions are added.
MIN_IN_SCOPE_SAMPLES = 20
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
    FAQ's wording; short carriers left pseudo-paraphrases far closer to their question than real
    ones). Deterministic for a (question, seed, language)."""
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


# --- Fitting ------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Scores of one bot's calibration samples (see the module docstring)."""

    in_scores: np.ndarray  # held-out (or pseudo) questions: best centroid score
    in_correct: np.ndarray  # ... whether that best entry is their own
    unrelated: np.ndarray  # generic unrelated questions, already trimmed
    on_topic: np.ndarray  # leave one entry out: on topic, no entry answers them
    # Questions from the bot's own traffic the owner marked "should decline" (training.sources)
    observed_out: np.ndarray = field(default_factory=lambda: np.zeros(0))


# --- What the bot's own traffic taught: the owner's labels ---------------------------------------

# The synthetic out-of-scope estimate weighs as much as this many of the owner's own labelled
# questions: a handful of labels nudge the curve, a few dozen decide it. A prior's strength, not
# a figure fitted to a data set.
OBSERVED_PRIOR = 20


def grid() -> np.ndarray:
    return np.round(np.arange(0.0, 1.0 + THRESHOLD_STEP / 2, THRESHOLD_STEP), 4)


def bandwidth(scores: np.ndarray) -> float:
    """The normal-reference (Silverman) bandwidth of a sample of scores: 1.06 sigma n^(-1/5).
    0 when there is nothing to smooth (fewer than two scores, or all equal)."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return 0.0
    return float(1.06 * scores.std() * len(scores) ** -0.2)


def _passes(scores: np.ndarray, thresholds: np.ndarray, smooth: bool) -> np.ndarray:
    """(thresholds x scores): whether each score reaches each threshold; smoothed, the chance
    that a score drawn around it (a Gaussian kernel of the sample's bandwidth) does."""
    scores = np.asarray(scores, dtype=np.float64)
    h = bandwidth(scores) if smooth else 0.0
    if h <= 0:
        return (scores[None, :] >= thresholds[:, None]).astype(np.float64)
    from scipy.special import ndtr  # ~300 ms to import: only smoothed curves need it

    return ndtr((scores[None, :] - thresholds[:, None]) / h)


def _refused(scores: np.ndarray, thresholds: np.ndarray, smooth: bool = False) -> np.ndarray:
    if not len(scores):
        return np.full(len(thresholds), np.nan)
    return 1.0 - _passes(scores, thresholds, smooth).mean(axis=1)


def curve(
    samples: Samples, thresholds: np.ndarray | None = None, *, smooth: bool = False
) -> dict[str, np.ndarray]:
    """Rates per answer threshold (answered = score >= threshold):
    answer: share of in-scope samples answered; right: answered with their own entry;
    refuse_unrelated, refuse_on_topic; refuse_out: the mean of the two refusal rates that have
    samples.

    smooth: each sample's rates come from its scores' kernel estimate (Gaussian kernels of the
    normal-reference bandwidth) instead of counting. A tuned 50-entry bot has 50 held-out
    questions: counted, its curve is a staircase whose best step moves with one question, and
    the fit jumped between far-apart thresholds (BANKING77-OOS, 0.69 where 0.60-0.64 met both
    goals); smoothed, the best threshold sits where the densities say, not on a step. fit() uses
    the smoothed curve; counting stays for tests and studies of the raw samples."""
    t = grid() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    s = np.asarray(samples.in_scores, dtype=np.float64)
    c = np.asarray(samples.in_correct, dtype=bool)
    answered = _passes(s, t, smooth)
    n = max(1, len(s))
    right = (answered * c).sum(axis=1) / n
    unrelated = _refused(samples.unrelated, t, smooth)
    on_topic = _refused(samples.on_topic, t, smooth)
    out = np.nanmean(np.vstack([unrelated, on_topic]), axis=0) if len(t) else np.zeros(0)
    rates = {
        "threshold": t,
        "answer": answered.sum(axis=1) / n,
        "right": right,
        "refuse_unrelated": unrelated,
        "refuse_on_topic": on_topic,
    }
    observed = np.asarray(samples.observed_out, dtype=np.float64)
    if len(observed):
        # The owner's labelled questions are the bot's real out-of-scope traffic: they pull the
        # synthetic estimate towards what they show, by how many there are (OBSERVED_PRIOR).
        seen = _refused(observed, t, smooth)
        rates["refuse_observed"] = seen
        out = (len(observed) * seen + OBSERVED_PRIOR * np.nan_to_num(out, nan=0.0)) / (
            len(observed) + OBSERVED_PRIOR
        )
    rates["refuse_out"] = np.nan_to_num(out, nan=0.0)
    return rates


def answer_threshold(rates: dict[str, np.ndarray], caution: float = DEFAULT_CAUTION) -> float:
    """The answer threshold for a caution: the higher of
    - the lowest threshold that declines a share `caution` of the out-of-scope questions
      (refuse_out, estimated): the refusal the owner asked for, answering as much as it can;
    - the threshold where right answers and refusals are worth most together, with out-of-scope
      questions weighted OUT_OF_SCOPE_SHARE * caution / DEFAULT_CAUTION (none at the helpful
      end): refusals that cost no right answer are taken even beyond the share asked for. A
      one-entry FAQ declines 7 in 10 unrelated questions from similarity 0.10; its held-out
      questions stay answered far above that, so it declines all of them.
    Both grow with the caution, so the threshold never falls as the caution rises. A caution no
    threshold reaches gets the first threshold with the highest refusal."""
    caution = min(1.0, max(0.0, float(caution)))
    thresholds = np.asarray(rates["threshold"], dtype=np.float64)
    refuse = np.nan_to_num(np.asarray(rates["refuse_out"], dtype=np.float64), nan=0.0)
    right = np.nan_to_num(np.asarray(rates["right"], dtype=np.float64), nan=0.0)
    enough = np.flatnonzero(refuse >= caution - 1e-9)
    floor = int(enough[0]) if len(enough) else int(np.argmax(refuse))
    weight = min(1.0, OUT_OF_SCOPE_SHARE * caution / DEFAULT_CAUTION)
    value = (1 - weight) * right + weight * refuse
    best = int(np.flatnonzero(np.isclose(value, value.max()))[0])
    return float(thresholds[max(floor, best)])


def direct_threshold(samples: Samples, floor: float) -> float:
    """The lowest threshold >= `floor` above which the held-out questions' top-1 is right with a
    conservative error estimate (wrong + 1) / (answered + 2) <= DIRECT_MAX_ERROR, and at most
    DIRECT_MAX_UNRELATED of unrelated questions reach it. If none qualifies (too few held-out
    questions to show it, as in a small FAQ), DIRECT_FALLBACK: only a question nearly identical
    to an entry's own wording is answered word for word; the rest get the same curated text
    framed as a best match (chat.answer), so this choice changes the framing, never the text."""
    s = np.asarray(samples.in_scores, dtype=np.float64)
    c = np.asarray(samples.in_correct, dtype=bool)
    u = np.asarray(samples.unrelated, dtype=np.float64)
    for t in grid():
        if t < floor - 1e-9:
            continue
        above = s >= t
        wrong = int((above & ~c).sum())
        if (wrong + 1) / (int(above.sum()) + 2) > DIRECT_MAX_ERROR:
            continue
        if len(u) and (u >= t).mean() > DIRECT_MAX_UNRELATED:
            continue
        return float(t)
    return max(DIRECT_FALLBACK, floor)


def _at(rates: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    i = int(np.argmin(np.abs(rates["threshold"] - threshold)))
    return {
        k: round(float(v[i]), 4) for k, v in rates.items() if k != "threshold" and np.isfinite(v[i])
    }


def _in_ten(rate: float) -> str:
    return f"{max(0, min(10, round(rate * 10)))} in 10"


def refusal_spread(samples: Samples, threshold: float, rounds: int = 200) -> float:
    """The standard deviation of the estimated refusal at `threshold` over bootstrap resamples of
    the out-of-scope samples (deterministic): how much the estimate would move with other
    samples of the same kind. It does not cover a sample unlike the bot's real traffic."""
    rng = np.random.default_rng(0)
    t = np.asarray([threshold])
    values = []
    for _ in range(rounds):
        resampled = Samples(
            samples.in_scores,
            samples.in_correct,
            rng.choice(samples.unrelated, len(samples.unrelated))
            if len(samples.unrelated)
            else samples.unrelated,
            rng.choice(samples.on_topic, len(samples.on_topic))
            if len(samples.on_topic)
            else samples.on_topic,
            rng.choice(samples.observed_out, len(samples.observed_out))
            if len(samples.observed_out)
            else samples.observed_out,
        )
        values.append(float(curve(resampled, t)["refuse_out"][0]))
    return float(np.std(values))


def give_or_take(spread: float) -> int:
    """The owner's "give or take N in 10": a 95 % interval's half-width, at least 1 in 10 (the
    estimate also rests on samples that are not the bot's own traffic)."""
    return max(1, round(1.96 * spread * 10))


def summary(at: dict[str, float], spread: float | None = None) -> str:
    """The owner's plain-words reading of one point of the curve; with `spread`, also what it
    declines in all and how sure that is."""
    unrelated = at.get("refuse_unrelated", at.get("refuse_out", 0.0))
    text = (
        f"Answers about {_in_ten(at['answer'])} questions like your FAQ's "
        f"(about {_in_ten(at['right'])} with the right entry), "
        f"declines about {_in_ten(unrelated)} unrelated ones"
    )
    if "refuse_on_topic" in at:
        text += (
            f" and about {_in_ten(at['refuse_on_topic'])} questions on your topic "
            "that no entry answers"
        )
    text += "."
    if spread is not None:
        text += (
            f" In all it declines about {_in_ten(at['refuse_out'])} questions it has no answer "
            f"for, give or take {give_or_take(spread)}."
        )
    return text


def fit(samples: Samples, caution: float = DEFAULT_CAUTION) -> dict:
    """Thresholds, the curve and plain words for one bot (JSON-ready)."""
    # Rounded as stored, so the caution read off the stored curve later (the slider, a refit's
    # apply) lands on the same threshold as this fit: near-ties could otherwise fall either way.
    # The smoothed curve (curve(smooth=True)) is the one fitted, stored and shown to the owner.
    rates = {k: np.round(v, 4) for k, v in curve(samples, smooth=True).items()}
    answer = answer_threshold(rates, caution)
    # Where verbatim answers are safe does not depend on the caution: a new caution only lifts
    # the direct threshold to its answer threshold (thresholds_for_caution).
    direct_free = direct_threshold(samples, floor=0.0)
    at = _at(rates, answer)
    spread = refusal_spread(samples, answer)
    preview = []
    for c in np.round(np.linspace(0, 1, 11), 2):
        t = answer_threshold(rates, c)
        point = _at(rates, t)
        preview.append({"caution": float(c), "threshold": t, **point, "summary": summary(point)})
    return {
        "caution": float(caution),
        "answer_threshold": answer,
        "direct_threshold": max(direct_free, answer),
        "direct_free": direct_free,
        "at_threshold": at,
        "summary": summary(at, spread),
        "refusal_spread": round(spread, 4),
        "give_or_take": give_or_take(spread),
        "preview": preview,
        "curve": {
            k: [round(float(x), 4) if np.isfinite(x) else None for x in v] for k, v in rates.items()
        },
        "samples": {
            "in_scope": int(len(samples.in_scores)),
            "unrelated": int(len(samples.unrelated)),
            "on_topic": int(len(samples.on_topic)),
            "observed": int(len(samples.observed_out)),
        },
    }


def threshold_for_caution(calibration: dict, caution: float) -> float:
    """A new caution's answer threshold, read off a stored fit()'s curve (instant, no model)."""
    rates = {k: np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
             for k, v in calibration["curve"].items()}  # fmt: skip
    return answer_threshold(rates, caution)


def thresholds_for_caution(calibration: dict, caution: float) -> tuple[float, float]:
    """(answer, direct) thresholds for a new caution, from a stored fit() (instant, no model)."""
    answer = threshold_for_caution(calibration, caution)
    return answer, max(float(calibration["direct_free"]), answer)


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
        # The stored vectors are passages (phrasing with its entry's question and answer): a
        # customer's question is embedded as a query, so the held-out phrasings are too. An
        # entry's own question is in every one of its passages; only other phrasings are held out.
        first = {int(lab): i for i, lab in reversed(list(enumerate(labels)))}
        held = [i for i in held if first[int(labels[i])] != i]
        queries = np.zeros_like(vectors)
        if held:
            queries[held] = serving.embed_for_bot(bot, [titles[i] for i in held])
        method = "other phrasings, asked as questions"
    pseudo_vectors = pseudo_labels = None
    if len(held) < MIN_IN_SCOPE_SAMPLES:
        pairs = [
            (p, remap[gi])
            for gi, (_, question, _) in enumerate(entries)
            if gi in remap
            for p in pseudo_paraphrases(question, language=bot.language)
        ]
        pseudo_vectors = np.asarray(serving.embed_for_bot(bot, [p for p, _ in pairs]))
        pseudo_labels = np.asarray([gi for _, gi in pairs])
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


# --- Storing it on the bot ----------------------------------------------------------------------


def calibration_request(bot_id: int) -> None:
    """Queue a calibration of the bot after the current transaction commits (or now, outside
    one). Called after its FAQ or serving model changed and after a tuning deploy or revert."""
    calibrate_bot.delay_on_commit(bot_id)


def calibration_run(*, bot_id: int) -> dict | None:
    """Fit the bot's calibration and store it in its Calibration row; with automatic thresholds, also
    set its answer and direct thresholds from its caution. Idempotent (the same FAQ and model
    give the same fit). Returns the stored fit, or None when the bot is gone, has no FAQ (its
    calibration is cleared; automatic thresholds go back to the defaults), or switched models
    while this ran (the switch queues its own calibration). Model I/O runs outside the
    transaction that stores the result."""
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return None
    result = calibration_fit(bot)
    if result is not None:
        result["fitted_at"] = timezone.now().isoformat()
    with transaction.atomic():
        bot = Bot.objects.select_for_update().filter(pk=bot_id).first()
        if bot is None:
            return None
        if result is not None and serving.embedding_model_for_bot(bot) != result["model"]:
            return None
        settings = Calibration.of(bot)
        if settings.thresholds_auto:
            if result is None:
                answer = Bot._meta.get_field("answer_threshold").default
                direct = Bot._meta.get_field("direct_threshold").default
            else:
                answer, direct = thresholds_for_caution(result, settings.caution)
                result = {**result, **_point(result, settings.caution)}
            Bot.objects.filter(pk=bot_id).update(answer_threshold=answer, direct_threshold=direct)
        Calibration.objects.filter(pk=settings.pk).update(fit=result or {})
    return result


@shared_task(
    name="training.tasks.calibrate_bot",
    acks_late=True,
    autoretry_for=(ProviderUnavailable,),
    retry_backoff=10,
    retry_backoff_max=600,
    max_retries=5,
)
def calibrate_bot(bot_id: int) -> bool:
    """Fit the bot's thresholds (calibration_run); a repeat stores the same fit. Defined here,
    beside its service; training.tasks imports it for the worker."""
    return calibration_run(bot_id=bot_id) is not None


def _point(calibration: dict, caution: float) -> dict:
    """The stored fit's headline for `caution`: its thresholds, rates and plain words."""
    answer, direct = thresholds_for_caution(calibration, caution)
    rates = {k: np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
             for k, v in calibration["curve"].items()}  # fmt: skip
    at = _at(rates, answer)
    return {
        "caution": float(caution),
        "answer_threshold": answer,
        "direct_threshold": direct,
        "at_threshold": at,
        # The spread was measured at the fitted caution's threshold: near enough for a preview.
        "summary": summary(at, calibration.get("refusal_spread")),
    }


def caution_preview(calibration: dict, caution: float) -> dict:
    """What the slider shows live for a caution the owner has not saved yet (no model, no
    write): thresholds, rates and the plain-words summary; {} before the first fit."""
    return _point(calibration, caution) if calibration.get("curve") else {}


def caution_apply(*, bot, caution: float):
    """Save the owner's caution. With automatic thresholds the bot answers by the thresholds it
    gives on the stored curve at once (no model call); with hand-set ones only the caution is
    kept for when they are switched back to automatic. Returns the bot."""
    caution = min(1.0, max(0.0, float(caution)))
    settings = Calibration.of(bot)
    settings.caution = caution
    if settings.thresholds_auto and settings.fit.get("curve"):
        point = _point(settings.fit, caution)
        settings.fit = {**settings.fit, **point}
        _set_thresholds(bot, point["direct_threshold"], point["answer_threshold"])
    Calibration.objects.filter(pk=settings.pk).update(caution=caution, fit=settings.fit)
    return bot


def _set_thresholds(bot, direct: float, answer: float) -> None:
    Bot.objects.filter(pk=bot.pk).update(direct_threshold=direct, answer_threshold=answer)
    bot.direct_threshold, bot.answer_threshold = direct, answer


def thresholds_auto_set(*, bot, auto: bool):
    """Switch between fitted thresholds and hand-set ones (the advanced section). Back to
    automatic, the stored fit's thresholds for the bot's caution apply at once."""
    settings = Calibration.of(bot)
    Calibration.objects.filter(pk=settings.pk).update(thresholds_auto=auto)
    settings.thresholds_auto = auto
    if auto:
        return caution_apply(bot=bot, caution=settings.caution)
    return bot


def thresholds_hand_set(*, bot, direct: float, answer: float):
    """The owner's own thresholds (the advanced section): stored as given and automatic fitting
    switched off, so the next calibration keeps them. Raises ValidationError when the answer
    threshold is above the direct one or either is outside 0..1. Returns the bot."""
    direct, answer = float(direct), float(answer)
    if not (0.0 <= answer <= 1.0 and 0.0 <= direct <= 1.0):
        raise ValidationError("Thresholds are similarities between 0 and 1.")
    if answer > direct:
        raise ValidationError(
            {"answer_threshold": "Must not be above the direct-answer threshold."}
        )
    _set_thresholds(bot, direct, answer)
    thresholds_by_hand(bot)
    return bot


def thresholds_by_hand(bot) -> None:
    """The bot's thresholds were set by hand (here, or on the bots settings form through
    bots.signals.thresholds_set_by_hand): the next calibration keeps them."""
    settings = Calibration.of(bot)
    Calibration.objects.filter(pk=settings.pk).update(thresholds_auto=False)
    settings.thresholds_auto = False
