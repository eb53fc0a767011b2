"""From a bot's score samples to its thresholds, in pure numpy: the kernel-smoothed curve of what
each answer threshold answers, gets right and declines (curve), the answer threshold for a caution
(answer_threshold), where word-for-word answers are safe (direct_threshold) and the owner's plain
words (summary). The caution is the share of questions without an answer that the bot should
decline; a stored fit gives a new caution's thresholds without any model (thresholds_for_caution).
training.calibration_samples computes the samples; training.calibration stores the fit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The share of out-of-scope questions a bot declines unless its owner says otherwise: the refusal
# the product promises (issue 11's goal), not a value fitted to a benchmark.
DEFAULT_CAUTION = 0.7
# About 1 in 4 customer questions are not about the business (a product assumption, not fitted
# to a benchmark): the weight of refusals against right answers at the default caution.
OUT_OF_SCOPE_SHARE = 0.25
# The curve's resolution (401 points from 0 to 1): multilingual-e5 packs a bot's scores into a
# few hundredths (docs/decisions.md), where 0.01 steps moved refusal by 0.1-0.3 at a time.
THRESHOLD_STEP = 0.0025
# Direct (verbatim) answers: the conservative error estimate (wrong + 1) / (answered + 2) of the
# held-out questions above the threshold stays under this, and unrelated questions pass it at
# most this often.
DIRECT_MAX_ERROR = 0.05
DIRECT_MAX_UNRELATED = 0.01
# Without enough samples to show a safe direct threshold, only a question nearly identical to the
# entry's wording is answered verbatim (most phrasings score well below 0.9 against their own
# entry: docs/decisions.md).
DIRECT_FALLBACK = 0.9
# The synthetic out-of-scope estimate weighs as much as this many of the owner's own labelled
# questions: a handful of labels nudge the curve, a few dozen decide it. A prior's strength, not
# a figure fitted to a data set.
OBSERVED_PRIOR = 20


@dataclass
class Samples:
    """Scores of one bot's calibration samples (training.calibration_samples)."""

    in_scores: np.ndarray  # held-out (or pseudo) questions: best centroid score
    in_correct: np.ndarray  # ... whether that best entry is their own
    unrelated: np.ndarray  # generic unrelated questions, already trimmed
    on_topic: np.ndarray  # leave one entry out: on topic, no entry answers them
    # Questions from the bot's own traffic the owner marked "should decline" (training.sources)
    observed_out: np.ndarray = field(default_factory=lambda: np.zeros(0))


# --- The curve and the thresholds it gives ------------------------------------------------------


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
    the fit jumps between far-apart thresholds; smoothed, the best threshold sits where the
    densities say, not on a step. fit() uses the smoothed curve; counting stays for tests and
    studies of the raw samples."""
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
    framed as a best match (chat.answering), so this choice changes the framing, never the text."""
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


def rates_at_threshold(rates: dict[str, np.ndarray], threshold: float) -> dict[str, float]:
    """The curve's rates (rounded) at the grid point nearest `threshold`."""
    i = int(np.argmin(np.abs(rates["threshold"] - threshold)))
    return {
        k: round(float(v[i]), 4) for k, v in rates.items() if k != "threshold" and np.isfinite(v[i])
    }


# --- How sure, in the owner's words -------------------------------------------------------------


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
    at = rates_at_threshold(rates, answer)
    spread = refusal_spread(samples, answer)
    preview = []
    for c in np.round(np.linspace(0, 1, 11), 2):
        t = answer_threshold(rates, c)
        point = rates_at_threshold(rates, t)
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


# --- Reading a stored fit -----------------------------------------------------------------------


def _stored_rates(calibration: dict) -> dict[str, np.ndarray]:
    """A stored fit()'s curve as arrays again (its JSON None back to NaN)."""
    return {
        k: np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
        for k, v in calibration["curve"].items()
    }


def threshold_for_caution(calibration: dict, caution: float) -> float:
    """A new caution's answer threshold, read off a stored fit()'s curve (instant, no model)."""
    rates = _stored_rates(calibration)
    return answer_threshold(rates, caution)


def thresholds_for_caution(calibration: dict, caution: float) -> tuple[float, float]:
    """(answer, direct) thresholds for a new caution, from a stored fit() (instant, no model)."""
    answer = threshold_for_caution(calibration, caution)
    return answer, max(float(calibration["direct_free"]), answer)


def point_for_caution(calibration: dict, caution: float) -> dict:
    """The stored fit's headline for `caution`: its thresholds, rates and plain words."""
    answer, direct = thresholds_for_caution(calibration, caution)
    rates = _stored_rates(calibration)
    at = rates_at_threshold(rates, answer)
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
    return point_for_caution(calibration, caution) if calibration.get("curve") else {}
