"""Compare a bot's answer modes (RAG, fine-tuned, both) on its own questions, and recommend one.

The question set is the owner's own (question_set):
- held-out phrasings of the FAQ entries: training.calibration_samples.holdout_split, the same
  choice that keeps them out of every tuning run (retrieval and chat), so no mode has seen them;
- questions the owner uploaded or labelled from real conversations (LabelledQuestion);
- unrelated questions from the shipped list (training/data/unrelated_questions.txt), which every
  mode should decline.
Every available mode answers every question through the real pipeline (chat.answering, with its
policy and grounding check), one question at a time, timed to the first token and to the end.
A question is answered right when the customer reads the gold entry's answer: its curated text
(word for word or framed as a best match), or a written answer that passed the grounding check,
cites it, and says only what its curated answer says (each sentence checked against that answer
alone; the same measure as benchmarks/faq_bench.py).

Figures per mode (mode_metrics): right, wrong, wrongly declined, unrelated correctly declined,
p50/p95 times, cost per 1,000 answers, one-off training time or cost, freshness (measured from
this bot's own last ingestion and last tuning run), and a 95 % bootstrap interval on the share
answered right; pairs of modes are compared with a paired bootstrap (compare_modes), and the
recommendation (recommend) weighs what the owner said matters.

The comparison's tasks are defined here, beside the services they run; chat.tasks imports them
for the worker.
"""

from __future__ import annotations

import copy
import random
import time
from datetime import timedelta

import numpy as np
from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from askhandle.jobs import ClaimedJobs, Superseded
from bots.models import Bot
from bots.services import bot_update
from knowledge.models import FaqEntry, Source
from training.calibration_samples import holdout_split
from training.chat_tuning import deployed_run
from training.models import ChatTuning
from training.unrelated import must_decline

from .answering import answer_stream, grounding
from .models import Evaluation, LabelledQuestion, Message

MODES = (Bot.Mode.RAG, Bot.Mode.FINETUNED, Bot.Mode.BOTH)
UNRELATED_SAMPLE = 40
MAX_QUESTIONS = 400  # a comparison stays a few minutes even on a slow chat model
BOOTSTRAP_SAMPLES = 2000
PRIORITIES = {  # what the owner says matters, 0 (not at all) .. 3 (most)
    "accuracy": 3,
    "speed": 1,
    "cost": 1,
    "changes": 1,  # how often the knowledge changes
}
# Characters per token, to price a provider's answers from their text (OpenAI's rule of thumb).
CHARS_PER_TOKEN = 4
JOBS = ClaimedJobs(
    Evaluation,
    waiting=Evaluation.Status.QUEUED,
    running=Evaluation.Status.RUNNING,
    failed=Evaluation.Status.FAILED,
)


class Cancelled(Exception):
    pass


# --- The question set ---------------------------------------------------------------------------


def question_set(bot: Bot, *, unrelated: int = UNRELATED_SAMPLE) -> list[dict]:
    """[{"text", "gold" (FAQ entry id or None: must decline), "origin"}], deterministic."""
    entries = list(FaqEntry.objects.filter(bot=bot).order_by("pk"))
    groups = [[e.question, *e.alternate_questions] for e in entries]
    _train, held = holdout_split(groups)
    questions = [
        {"text": groups[gi][pi], "gold": entries[gi].pk, "origin": "held-out phrasing"}
        for gi, pi in held
    ]
    for labelled in LabelledQuestion.objects.filter(bot=bot).order_by("pk"):
        questions.append(
            {
                "text": labelled.text,
                "gold": None if labelled.should_decline else labelled.faq_entry_id,
                # Stored in English (the page shows ORIGINS' words in the reader's language).
                "origin": LABELLED_ORIGINS.get(labelled.origin, labelled.origin),
            }
        )
    pool = must_decline(bot.language)
    for text in random.Random(bot.pk).sample(pool, min(unrelated, len(pool))):
        questions.append({"text": text, "gold": None, "origin": "unrelated"})
    seen, unique = set(), []
    for q in questions:
        if q["text"].lower() not in seen:
            seen.add(q["text"].lower())
            unique.append(q)
    return unique[:MAX_QUESTIONS]


def available_modes(bot: Bot) -> dict[str, str]:
    """{mode: ""} for modes that can answer now, {mode: why not} for the others."""
    deployed = set(
        ChatTuning.objects.filter(bot=bot, status=ChatTuning.Status.DEPLOYED).values_list(
            "mode", flat=True
        )
    )
    why = _("Train and deploy a fine-tuned model first.")
    return {
        Bot.Mode.RAG: "",
        **{mode: "" if mode in deployed else why for mode in (Bot.Mode.FINETUNED, Bot.Mode.BOTH)},
    }


# --- Starting, cancelling, running --------------------------------------------------------------


def evaluation_start(*, bot: Bot, priorities: dict | None = None) -> Evaluation:
    """Queue a comparison of every available mode on the bot's own questions."""
    modes = [m for m, why in available_modes(bot).items() if not why]
    questions = question_set(bot)
    if not any(q["gold"] for q in questions):
        raise ValidationError(
            _(
                "There is nothing to test yet: add FAQ entries with other phrasings (one of each "
                "entry's phrasings is kept for testing), or upload questions with the answer you "
                "expect."
            )
        )
    clean = {k: max(0, min(3, int((priorities or {}).get(k, v)))) for k, v in PRIORITIES.items()}
    evaluation = Evaluation.objects.create(
        bot=bot, modes=modes, questions=questions, priorities=clean
    )
    _enqueue(evaluation.pk)
    return evaluation


def _enqueue(evaluation_id: int) -> None:
    run_evaluation.delay_on_commit(evaluation_id)


def evaluation_cancel(*, evaluation: Evaluation) -> Evaluation:
    """Stop a comparison: a queued one at once, a running one at its next question."""
    now = timezone.now()
    Evaluation.objects.filter(pk=evaluation.pk, status=Evaluation.Status.QUEUED).update(
        status=Evaluation.Status.CANCELLED, finished_at=now, updated_at=now
    )
    Evaluation.objects.filter(pk=evaluation.pk, status=Evaluation.Status.RUNNING).update(
        cancel_requested=True
    )
    evaluation.refresh_from_db()
    return evaluation


def evaluation_run(*, evaluation_id: int) -> str:
    """The task's body: claim, answer every question in every mode, store the figures."""
    token = JOBS.claim(evaluation_id, stale=timedelta(seconds=settings.EVALUATION_STALE_SECONDS))
    if token is None:
        return "not claimed"
    evaluation = Evaluation.objects.select_related("bot").get(pk=evaluation_id)
    started = time.perf_counter()
    try:
        rows = _answer_everything(evaluation, token)
    except Cancelled:
        JOBS.finish(evaluation_id, token, Evaluation.Status.CANCELLED, "Cancelled by the owner.")
        return "cancelled"
    except Superseded:
        return "superseded"
    except Exception as exc:
        JOBS.finish(
            evaluation_id,
            token,
            Evaluation.Status.FAILED,
            f"The comparison failed ({exc.__class__.__name__}: {exc}).",
        )
        raise
    results, recommendation = summarise(
        evaluation.bot, evaluation.modes, rows, evaluation.priorities
    )
    JOBS.finish(
        evaluation_id,
        token,
        Evaluation.Status.DONE,
        results=results,
        answers=rows,
        recommendation=recommendation,
        seconds=round(time.perf_counter() - started, 1),
    )
    return "done"


@shared_task(name="chat.tasks.run_evaluation", acks_late=True)
def run_evaluation(evaluation_id: int) -> str:
    return evaluation_run(evaluation_id=evaluation_id)


def _answer_everything(evaluation: Evaluation, token) -> list[dict]:
    curated = dict(FaqEntry.objects.filter(bot=evaluation.bot).values_list("pk", "answer"))
    total = len(evaluation.modes) * len(evaluation.questions)
    rows, done = [], 0
    for mode in evaluation.modes:
        variant = copy.copy(evaluation.bot)
        variant.mode = mode  # in memory only: the bot keeps answering customers as it was
        for question in evaluation.questions:
            rows.append({"mode": mode, **question, **ask(variant, question, curated)})
            done += 1
            if done % 5 == 0 or done == total:
                JOBS.progress(evaluation.pk, token, progress_done=done, progress_total=total)
                if Evaluation.objects.filter(pk=evaluation.pk, cancel_requested=True).exists():
                    raise Cancelled
    return rows


def ask(bot: Bot, question: dict, curated: dict[int, str]) -> dict:
    """One question through the real pipeline: what the customer read, and how fast."""
    started = time.perf_counter()
    first = None
    result = None
    for kind, value in answer_stream(bot, question["text"]):
        if kind == "token" and first is None:
            first = time.perf_counter()
        elif kind == "done":
            result = value
    end = time.perf_counter()
    gold = question["gold"]
    return {
        "path": str(result.path),
        "reply": result.text[:600],
        "answered": result.answered,
        "right": bool(gold) and delivered_right(result, gold, curated, bot.language),
        "first_ms": round(((first or end) - started) * 1000, 1),
        "total_ms": round((end - started) * 1000, 1),
        "written_chars": len(result.text) if result.path == Message.Path.GENERATED else 0,
        "cited": [s.faq_id for s in result.sources if s.faq_id],
    }


def delivered_right(result, gold: int, curated: dict[int, str], language: str = "en") -> bool:
    """The customer read the gold entry's answer: its curated text (verbatim or framed as a
    best match), or a written answer that passed the grounding check and cites the entry."""
    if not result.answered or not result.sources:
        return False
    if result.path == Message.Path.GENERATED:
        cited = {s.faq_id for s in result.sources}
        return (
            gold in cited
            and bool(result.grounding and result.grounding["passed"])
            and says_what(result.text, curated.get(gold, ""), language)
        )
    return result.sources[0].faq_id == gold and curated.get(gold, "\0") in result.text


def says_what(text: str, answer: str, language: str = "en") -> bool:
    """Every sentence of a written answer is supported by the gold entry's own curated answer
    (chat.answering.grounding against that answer alone): grounded in *some* retrieved chunk is not
    enough to call it the right answer. Checked in the bot's language."""
    if not answer:
        return False
    checker = grounding.SentenceChecker([answer], language)
    return all(checker.check(s) for s in grounding.split_sentences(text))


# --- Figures -------------------------------------------------------------------------------------


def bootstrap_interval(values: list[float], *, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES):
    """95 % percentile-bootstrap interval of the mean of `values` (0/1 outcomes)."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return (round(float(low), 4), round(float(high), 4))


def mode_metrics(rows: list[dict]) -> dict:
    """The side-by-side figures of one mode's rows."""
    in_scope = [r for r in rows if r["gold"]]
    unrelated = [r for r in rows if not r["gold"]]
    right = [1.0 if r["right"] else 0.0 for r in in_scope]
    first = [r["first_ms"] for r in rows]
    total = [r["total_ms"] for r in rows]
    n_in = len(in_scope)
    return {
        "questions": len(rows),
        "in_scope": n_in,
        "unrelated": len(unrelated),
        "right": int(sum(right)),
        "wrong": sum(1 for r in in_scope if r["answered"] and not r["right"]),
        "wrongly_declined": sum(1 for r in in_scope if not r["answered"]),
        "declined_unrelated": sum(1 for r in unrelated if not r["answered"]),
        "delivered_acc": round(sum(right) / n_in, 4) if n_in else None,
        "delivered_ci": bootstrap_interval(right),
        "refusal_recall": round(sum(1 for r in unrelated if not r["answered"]) / len(unrelated), 4)
        if unrelated
        else None,
        "first_p50_ms": _pct(first, 50),
        "first_p95_ms": _pct(first, 95),
        "total_p50_ms": _pct(total, 50),
        "total_p95_ms": _pct(total, 95),
    }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def compare_modes(a: list[dict], b: list[dict], *, seed: int = 0) -> dict:
    """Paired bootstrap over the in-scope questions both modes answered: the difference in the
    share answered right (a minus b), its 95 % interval, and whether it is more than chance."""
    pairs = [(x["right"], y["right"]) for x, y in zip(a, b, strict=True) if x["gold"]]
    if not pairs:
        return {"difference": None, "interval": None, "real": False}
    diff = np.asarray([float(x) - float(y) for x, y in pairs])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(BOOTSTRAP_SAMPLES, len(diff)))].mean(axis=1)
    low, high = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return {
        "difference": round(float(diff.mean()), 4),
        "interval": (round(low, 4), round(high, 4)),
        "real": low > 0 or high < 0,
    }


def in_plain_words(name_a: str, name_b: str, comparison: dict) -> str:
    """A stored comparison in the reader's language (the page words it anew on each view)."""
    d = comparison["difference"]
    names = {"a": name_a, "b": name_b}
    if d is None:
        return _("%(a)s and %(b)s had no questions in common to compare.") % names
    n = abs(round(d * 100))
    if n == 0:
        return _("%(a)s and %(b)s answer the same share of questions right.") % names
    better, worse = (name_a, name_b) if d > 0 else (name_b, name_a)
    values = {"better": better, "worse": worse, "n": n}
    if comparison["real"]:
        return (
            ngettext(
                "%(better)s answers %(n)s more question in 100 than %(worse)s; that is not chance.",
                "%(better)s answers %(n)s more questions in 100 than %(worse)s; that is not chance.",
                n,
            )
            % values
        )
    return (
        ngettext(
            "%(better)s answers %(n)s more question in 100 than %(worse)s; that could be chance.",
            "%(better)s answers %(n)s more questions in 100 than %(worse)s; that could be chance.",
            n,
        )
        % values
    )


def summarise(bot: Bot, modes: list[str], rows: list[dict], priorities: dict) -> tuple[dict, dict]:
    by_mode = {m: [r for r in rows if r["mode"] == m] for m in modes}
    results = {m: mode_metrics(by_mode[m]) for m in modes}
    for m in modes:
        results[m].update(costs(bot, m, by_mode[m]))
        results[m]["freshness_seconds"] = freshness_seconds(bot, m)
    comparisons = []
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            c = compare_modes(by_mode[a], by_mode[b])
            comparisons.append(
                {"a": a, "b": b, **c, "words": in_plain_words(_name(a), _name(b), c)}
            )
    results["_comparisons"] = comparisons
    return results, recommend(results, modes, priorities)


MODE_NAMES = {
    "rag": gettext_lazy("RAG"),
    "finetuned": gettext_lazy("Fine-tuned"),
    "both": gettext_lazy("Fine-tuned + RAG"),
}
LABELLED_ORIGINS = {"upload": "uploaded", "conversation": "from a conversation"}
# Where a compared question came from (question_set's "origin"), in the owner's words.
ORIGINS = {
    "held-out phrasing": gettext_lazy("held-out phrasing"),
    "unrelated": gettext_lazy("unrelated"),
    "uploaded": gettext_lazy("uploaded"),
    "from a conversation": gettext_lazy("from a conversation"),
}


def _name(mode: str) -> str:
    return str(MODE_NAMES.get(mode, mode))


def costs(bot: Bot, mode: str, rows: list[dict]) -> dict:
    """Cost per 1,000 answers (zero for local models; the provider's prices for the text it
    wrote otherwise) and the one-off training time and cost of the mode's model."""
    paid = bot.provider == Bot.Provider.OPENAI and mode == Bot.Mode.RAG
    run = None
    if mode != Bot.Mode.RAG:
        run = deployed_run(bot, mode)
        paid = run is not None and run.backend == "openai"
    per_answer = 0.0
    if paid and rows:
        written = sum(r["written_chars"] for r in rows) / len(rows)
        # The prompt is about the context plus the question: ~1,500 characters when it writes.
        prompt = 1500 if written else 0
        per_answer = (
            prompt / CHARS_PER_TOKEN * settings.OPENAI_PRICE_INPUT_PER_MTOK
            + written / CHARS_PER_TOKEN * settings.OPENAI_PRICE_OUTPUT_PER_MTOK
        ) / 1_000_000
    training_seconds = None
    if run is not None and run.started_at and run.finished_at:
        training_seconds = round((run.finished_at - run.started_at).total_seconds(), 1)
    return {
        "cost_per_1000": round(per_answer * 1000, 4),
        "training_seconds": training_seconds,
        "training_cost": getattr(run, "estimated_cost", None) if run else 0.0,
    }


def freshness_seconds(bot: Bot, mode: str) -> float | None:
    """After an FAQ answer is edited, how long until this mode gives the new text, measured from
    this bot's own history: RAG needs a re-ingestion of the edited source (the last FAQ
    ingestion's queue wait plus run time); a fine-tuned model needs a new run (the mode's last run's
    time). None until the bot has done one."""
    if mode == Bot.Mode.RAG:
        source = (
            Source.objects.filter(bot=bot, status=Source.Status.READY, finished_at__isnull=False)
            .exclude(started_at__isnull=True)
            .order_by("-finished_at")
            .first()
        )
        if source is None:
            return None
        return round((source.finished_at - source.started_at).total_seconds(), 1)
    run = (
        ChatTuning.objects.filter(
            bot=bot, mode=mode, started_at__isnull=False, finished_at__isnull=False
        )
        .exclude(status__in=[ChatTuning.Status.FAILED, ChatTuning.Status.CANCELLED])
        .order_by("-finished_at")
        .first()
    )
    if run is None:
        return None
    return round((run.finished_at - run.started_at).total_seconds(), 1)


def recommend(results: dict, modes: list[str], priorities: dict) -> dict:
    """The mode to use, with its reasons. Accuracy leads; a difference that could be chance does
    not decide, and then speed, cost and freshness (weighted as the owner said) do."""
    if not modes:
        return {}
    weights = {k: priorities.get(k, v) for k, v in PRIORITIES.items()}
    scores, reasons = {}, {m: [] for m in modes}
    best_acc = max((results[m]["delivered_acc"] or 0) for m in modes)
    fastest = min((results[m]["total_p95_ms"] or 0) for m in modes) or 1.0
    for m in modes:
        r = results[m]
        acc = r["delivered_acc"] or 0
        real_gap = _real_gap(results, m)
        score = weights["accuracy"] * (acc - best_acc if real_gap else 0.0) * 10
        score += weights["accuracy"] * ((r["refusal_recall"] or 0) - 1) * 2
        score -= weights["speed"] * np.log2(max(r["total_p95_ms"] or 1.0, 1.0) / fastest)
        score -= weights["cost"] * (r["cost_per_1000"] or 0)
        fresh = r["freshness_seconds"]
        if m != Bot.Mode.RAG:
            score -= weights["changes"] * (1.0 + np.log10(max(fresh or 600.0, 1.0) / 60))
        scores[m] = float(score)
        reasons[m] = _reasons(m, r, real_gap, fresh)
    chosen = max(modes, key=lambda m: (scores[m], m == Bot.Mode.RAG))
    return {"mode": chosen, "name": _name(chosen), "reasons": reasons[chosen], "scores": scores}


def _real_gap(results: dict, mode: str) -> bool:
    """Whether another mode answers more questions right than `mode`, beyond chance: an accuracy
    gap counts only where the paired comparison says it is real."""
    return any(
        c["real"]
        and ((c["a"] == mode and c["difference"] < 0) or (c["b"] == mode and c["difference"] > 0))
        for c in results.get("_comparisons", [])
    )


def recommendation_in_words(results: dict, recommendation: dict) -> dict:
    """A stored recommendation's name and reasons in the reader's language (the worker stored
    them in its own)."""
    mode = (recommendation or {}).get("mode")
    if not mode or mode not in results:
        return {}
    r = results[mode]
    return {
        "mode": mode,
        "name": _name(mode),
        "reasons": _reasons(mode, r, _real_gap(results, mode), r.get("freshness_seconds")),
    }


def _percent(rate: float) -> str:
    return f"{round(rate * 100)}%"


def _reasons(mode: str, r: dict, real_gap: bool, fresh) -> list[str]:
    out = []
    if r["delivered_acc"] is not None:
        low, high = r["delivered_ci"]
        values = {
            "rate": _percent(r["delivered_acc"]),
            "low": _percent(low),
            "high": _percent(high),
        }
        if real_gap:
            out.append(
                _(
                    "Answers %(rate)s of your questions right (95 %% interval %(low)s-%(high)s); "
                    "another mode does better, and that is not chance."
                )
                % values
            )
        else:
            out.append(
                _("Answers %(rate)s of your questions right (95 %% interval %(low)s-%(high)s).")
                % values
            )
    if r["refusal_recall"] is not None:
        out.append(
            _("Declines %(rate)s of unrelated questions.") % {"rate": _percent(r["refusal_recall"])}
        )
    if r["total_p95_ms"] is not None:
        out.append(
            _("95 %% of answers complete within %(time)s.")
            % {"time": _duration_ms(r["total_p95_ms"])}
        )
    if not r["cost_per_1000"]:
        out.append(_("Costs nothing per answer (local models)."))
    else:
        out.append(
            _("Costs about $%(cost)s per 1,000 answers.")
            % {"cost": number_format(r["cost_per_1000"], 2)}
        )
    if fresh is not None:
        if mode == Bot.Mode.RAG:
            text = _("An edited answer shows after a re-ingestion: about %(time)s here.")
        else:
            text = _("An edited answer shows after a new tuning run: about %(time)s here.")
        out.append(text % {"time": _duration(fresh)})
    return out


def _duration_ms(ms: float) -> str:
    """An answer time: in milliseconds under a second ("0,0 s" said nothing), else seconds."""
    if ms < 1000:
        return _("%(n)s ms") % {"n": f"{ms:.0f}"}
    return _("%(n)s s") % {"n": number_format(ms / 1000, 1)}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return _("%(n)s s") % {"n": f"{seconds:.0f}"}
    if seconds < 5400:
        return _("%(n)s minutes") % {"n": f"{seconds / 60:.0f}"}
    return _("%(n)s hours") % {"n": number_format(seconds / 3600, 1)}


def mode_switch(*, bot: Bot, mode: str) -> Bot:
    """One click: the bot answers customers in `mode` from now on."""
    if mode not in MODES:
        raise ValidationError(_("Unknown mode."))
    why = available_modes(bot).get(mode)
    if why:
        raise ValidationError(why)
    with transaction.atomic():
        return bot_update(bot=bot, mode=mode)


def evaluations_recover_stuck(*, stale_seconds: int | None = None) -> dict:
    """Beat: a comparison whose worker died is re-queued, or failed after 3 attempts."""
    stale = stale_seconds if stale_seconds is not None else settings.EVALUATION_STALE_SECONDS
    return JOBS.recover_stuck(
        stale=timedelta(seconds=stale),
        max_attempts=3,
        failure="The comparison was interrupted 3 times (the worker stopped). Start it again.",
        enqueue=_enqueue,
    )


@shared_task(name="chat.tasks.recover_stuck_evaluations")
def recover_stuck_evaluations() -> dict:
    return evaluations_recover_stuck()
