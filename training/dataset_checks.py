"""What a chat fine-tuning set is made of (Example, with its origin) and the checks it must pass
before a run starts (validate): errors block a launch, warnings are shown. training.datasets builds
the examples from a bot's knowledge."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

ERROR, WARNING = "error", "warning"

ORIGINS = {
    "faq": gettext_lazy("FAQ entry"),
    "refusal": gettext_lazy("refusal (unrelated question)"),
    "conversation": gettext_lazy("conversation marked good"),
    "document": gettext_lazy("document (reviewed pair)"),
}


@dataclass
class Example:
    messages: list[dict]
    # faq, refusal, conversation, document; both mode: context, context_refusal,
    # context_conversation, context_document
    kind: str
    faq_id: int | None = None
    tokens: int = 0
    origin: str = "faq"  # a key of ORIGINS
    origin_id: int | None = None  # the approved Message's or accepted DocumentPair's pk

    @property
    def origin_label(self) -> str:
        return ORIGINS.get(self.origin, self.origin)

    @property
    def question(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")

    @property
    def target(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""

    def as_jsonl(self) -> str:
        return json.dumps({"messages": self.messages}, ensure_ascii=False)


@dataclass
class Issue:
    level: str  # "error" blocks a launch; "warning" does not
    code: str
    message: str
    examples: list[int] = field(default_factory=list)  # 1-based example numbers


def normal_question(question: str) -> str:
    """A question compared without case or spacing differences."""
    return " ".join(question.lower().split())


# --- Validation -----------------------------------------------------------------------------------


def max_tokens(backend: str) -> int:
    return settings.CHAT_TUNING_MAX_TOKENS if backend == "local" else 65536


def validate(examples: list[Example], *, entries: int, backend: str = "local") -> list[Issue]:
    """Everything wrong with a training set, each issue naming its examples (1-based). Errors
    block a launch; warnings are shown."""
    return [
        *_size_issues(examples, entries),
        *_empty_issues(examples),
        *_duplicate_issues(examples),
        *_faq_conflict_issues(examples),
        *_length_issues(examples, backend),
    ]


def _size_issues(examples: list[Example], entries: int) -> list[Issue]:
    issues: list[Issue] = []
    if entries == 0 and not any(e.origin not in ("faq", "refusal") for e in examples):
        issues.append(
            Issue(
                ERROR,
                "no_knowledge",
                _(
                    "This bot has no FAQ entries yet. Add questions and answers on the Knowledge "
                    "tab; a chat model is tuned on them."
                ),
            )
        )
    if len(examples) < settings.CHAT_TUNING_MIN_EXAMPLES:
        issues.append(
            Issue(
                ERROR,
                "too_few",
                ngettext(
                    "%(n)s example: fine-tuning needs at least %(min)s. Add FAQ entries, or other "
                    "phrasings of their questions.",
                    "%(n)s examples: fine-tuning needs at least %(min)s. Add FAQ entries, or other "
                    "phrasings of their questions.",
                    len(examples),
                )
                % {"n": len(examples), "min": settings.CHAT_TUNING_MIN_EXAMPLES},
            )
        )
    return issues


def _empty_issues(examples: list[Example]) -> list[Issue]:
    issues: list[Issue] = []
    empty = [
        i
        for i, e in enumerate(examples, 1)
        if not e.question.strip() or not e.target.strip() or any(not m["role"] for m in e.messages)
    ]
    if empty:
        issues.append(
            Issue(ERROR, "empty", _("Empty question or answer: fill it in on the FAQ."), empty)
        )
    return issues


def _duplicate_issues(examples: list[Example]) -> list[Issue]:
    """Duplicates (a warning) and one question with different answers (an error)."""
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    duplicates = []
    answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, e in enumerate(examples, 1):
        key = e.as_jsonl()
        if key in seen:
            duplicates.append(i)
        else:
            seen[key] = i
        context = e.messages[0]["content"] if e.kind.startswith("context") else ""
        answers[normal_question(e.question) + "\0" + context][e.target.strip()].append(i)
    if duplicates:
        issues.append(
            Issue(
                WARNING,
                "duplicates",
                ngettext(
                    "%(n)s duplicate example: the same question and answer appear twice (they "
                    "are trained on twice).",
                    "%(n)s duplicate examples: the same question and answer appear twice (they "
                    "are trained on twice).",
                    len(duplicates),
                )
                % {"n": len(duplicates)},
                duplicates,
            )
        )
    conflicting = sorted(
        i
        for targets in answers.values()
        if len(targets) > 1
        for ids in targets.values()
        for i in ids
    )
    if conflicting:
        issues.append(
            Issue(
                ERROR,
                "conflicting",
                _(
                    "The same question has different answers in different FAQ entries: keep the "
                    "question in one entry."
                ),
                conflicting,
            )
        )
    return issues


def _faq_conflict_issues(examples: list[Example]) -> list[Issue]:
    issues: list[Issue] = []
    # An approved answer (or another non-FAQ example) that answers an FAQ question differently:
    # compared on the question alone, as both mode's contexts differ between the two.
    faq_targets: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, e in enumerate(examples, 1):
        if e.origin == "faq":
            faq_targets[normal_question(e.question)][e.target.strip()].append(i)
    against_faq: set[int] = set()
    for i, e in enumerate(examples, 1):
        targets = (
            faq_targets.get(normal_question(e.question))
            if e.origin not in ("faq", "refusal")
            else None
        )
        if targets and e.target.strip() not in targets:
            against_faq.add(i)
            against_faq.update(j for ids in targets.values() for j in ids)
    if against_faq:
        issues.append(
            Issue(
                ERROR,
                "conflicts_faq",
                _(
                    "An answer marked good for training (or an accepted document pair) answers an "
                    "FAQ question differently from the FAQ: unmark it on its conversation (or "
                    "reject the pair), or change the FAQ answer."
                ),
                sorted(against_faq),
            )
        )
    return issues


def _length_issues(examples: list[Example], backend: str) -> list[Issue]:
    issues: list[Issue] = []
    limit = max_tokens(backend)
    long = [i for i, e in enumerate(examples, 1) if e.tokens > limit]
    if long:
        issues.append(
            Issue(
                ERROR,
                "too_long",
                ngettext(
                    "%(n)s example is longer than %(limit)s tokens of the model: shorten that "
                    "answer (or split the entry).",
                    "%(n)s examples are longer than %(limit)s tokens of the model: shorten those "
                    "answers (or split the entry).",
                    len(long),
                )
                % {"n": len(long), "limit": limit},
                long,
            )
        )
    return issues
