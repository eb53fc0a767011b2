"""The grounding check: a written answer reaches the customer only sentence by sentence, each one
checked against the context it was written from.

A sentence passes when
1. every fact in it appears in the context: numbers (prices, times, dates, quantities), e-mail
   addresses, URLs and phone numbers, compared in a normalised form ("€12.50" and "12.50",
   "9:00" and "09:00" match; "5" does not match "15"); and
2. it says something the context says: its cosine similarity to the closest context sentence,
   with the local MiniLM (always the same model, whatever the bot embeds with, so one calibrated
   threshold holds) is at least SUPPORT_THRESHOLD, and at least MIN_WORD_OVERLAP of its content
   words (crude 5-letter stems) occur in the context. Short connective sentences without content
   ("Sure!", "Hope this helps.") carry no claim and pass if they have no facts.

Calibrated with benchmarks/grounding_calibration.py on the demo shop's FAQ: 24 sentences reworded
by hand from the context (supported) against 32 the context does not back (invented policies
without numbers, and other entries' sentences). Measured 2026-12-01: at 0.62 and 0.3 overlap,
0.83 of supported sentences pass and 0.06 of unsupported ones (similarity alone: 0.83 / 0.09;
at 0.54, where 0.92 of supported pass, 0.25 of unsupported did too). The threshold errs strict
on purpose: a rejected sentence costs little (the customer gets the owner's own answer
instead), an accepted invention is what this check exists to stop.

What it cannot see: a sentence that reuses the context's words and numbers to say the opposite
("Rentals do not need a deposit" against "Rentals need a deposit") passes both tests. That is
why the local 135M model does not write answers at all by default (chat.answering).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from django.utils.translation import gettext as _

import providers

SUPPORT_THRESHOLD = 0.62
MIN_WORD_OVERLAP = 0.3
MIN_CONTENT_WORDS = 3  # fewer content words than this and no facts: a connective, not a claim

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\[\]]+", re.I)
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n{2,}|\n(?=\s*[-*•]\s)")
_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_WORD = re.compile(r"[A-Za-zÀ-ÿ]{3,}")
STOPWORDS = frozenset(
    """the and for are but not you your yours our ours with this that these those from have has had
    was were will would can could should may might must shall its it's they them their there here
    what when where which who whom why how all any each few more most other some such only own same
    than too very just also into onto about above below over under again then once both either
    neither because while until after before during out off upon per via yes sure glad help hope
    thanks thank please happy let know any anything something question questions answer""".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences (and list items) of `text`, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _norm_number(token: str) -> str:
    parts = re.split(r"[.,:]", token)
    # "9:00" == "09:00"; "12,50" == "12.50"; a thousands separator "1,000" == "1000".
    if len(parts) == 2 and len(parts[1]) == 3 and "," in token:
        return parts[0].lstrip("0") + parts[1]
    return ".".join(p.lstrip("0") or "0" for p in parts)


def facts(text: str) -> set[str]:
    """The checkable facts of `text`, normalised: e-mails, URLs, phone numbers, numbers."""
    found: set[str] = set()
    rest = text
    for pattern, kind in ((_EMAIL, "email"), (_URL, "url")):
        for match in pattern.findall(rest):
            found.add(f"{kind}:{match.lower().rstrip('.,;:!?')}")
        rest = pattern.sub(" ", rest)
    for match in _PHONE.findall(rest):
        digits = re.sub(r"\D", "", match)
        if len(digits) >= 7:
            found.add(f"phone:{digits[-9:]}")
    rest = _PHONE.sub(lambda m: " " if len(re.sub(r"\D", "", m.group())) >= 7 else m.group(), rest)
    for match in _NUMBER.findall(rest):
        found.add(f"number:{_norm_number(match)}")
    return found


def content_words(sentence: str) -> list[str]:
    return [w for w in _WORD.findall(sentence.lower()) if w not in STOPWORDS]


@dataclass
class Verdict:
    """The check of one written answer, shown on the Test page."""

    passed: bool = True
    checked: int = 0  # sentences checked (and shown, while passed)
    reason: str = ""  # why the first failing sentence failed
    sentence: str = ""  # that sentence
    scores: list[float] = field(default_factory=list)  # support score of each checked sentence

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "checked": self.checked,
            "reason": self.reason,
            "sentence": self.sentence,
            "scores": [round(s, 3) for s in self.scores],
        }


class SentenceChecker:
    """Checks the sentences of one answer against one context (the retrieved chunks' texts)."""

    def __init__(self, context_texts: list[str]):
        self.context_facts: set[str] = set().union(*(facts(t) for t in context_texts))
        self.context_sentences = [
            s for t in context_texts for s in split_sentences(t) if content_words(s)
        ]
        self.context_stems = {w[:5] for t in context_texts for w in content_words(t)}
        self._vectors: np.ndarray | None = None
        self.verdict = Verdict()

    def _context_vectors(self) -> np.ndarray:
        if self._vectors is None:
            embedded = _embed(self.context_sentences) if self.context_sentences else []
            self._vectors = np.asarray(embedded, dtype=np.float32).reshape(-1, 384)
        return self._vectors

    def check(self, sentence: str) -> bool:
        """Record and return whether `sentence` may be shown. After a failure, nothing passes."""
        if not self.verdict.passed:
            return False
        plain = _CITATION.sub("", sentence).strip()
        missing = sorted(f.split(":", 1)[1] for f in facts(plain) - self.context_facts)
        if missing:
            return self._fail(
                sentence,
                _("%(facts)s is not in the knowledge it cites") % {"facts": ", ".join(missing)},
            )
        words = content_words(plain)
        if len(words) < MIN_CONTENT_WORDS and not facts(plain):
            self.verdict.checked += 1
            return True
        stems = {w[:5] for w in words}
        overlap = len(stems & self.context_stems) / len(stems)
        if overlap < MIN_WORD_OVERLAP:
            return self._fail(
                sentence,
                _("most of its words are not in the knowledge (%(share)s are, needs %(needs)s)")
                % {"share": f"{overlap:.0%}", "needs": f"{MIN_WORD_OVERLAP:.0%}"},
            )
        context = self._context_vectors()
        score = float((context @ np.asarray(_embed([plain])[0])).max()) if len(context) else 0.0
        self.verdict.scores.append(score)
        if score < SUPPORT_THRESHOLD:
            return self._fail(
                sentence,
                _(
                    "no sentence of the knowledge says this (closest similarity %(score).2f, "
                    "needs %(needs).2f)"
                )
                % {"score": score, "needs": SUPPORT_THRESHOLD},
            )
        self.verdict.checked += 1
        return True

    def _fail(self, sentence: str, reason: str) -> bool:
        self.verdict.passed, self.verdict.reason, self.verdict.sentence = False, reason, sentence
        return False


def _embed(texts: list[str]) -> list[list[float]]:
    """Unit vectors from the local MiniLM (shipped in a PyPI package, always available)."""
    return providers.get_provider("local").embed(texts)


class SentenceBuffer:
    """Collects streamed tokens and hands out whole sentences as they complete."""

    def __init__(self) -> None:
        self.text = ""

    def feed(self, piece: str) -> list[str]:
        self.text += piece
        parts = _SENTENCE_END.split(self.text)
        if len(parts) < 2:
            return []
        complete, self.text = parts[:-1], parts[-1]
        return [p for p in complete if p.strip()]

    def rest(self) -> list[str]:
        rest, self.text = self.text, ""
        return [rest] if rest.strip() else []
