"""Question/answer pairs drawn from a bot's documents, for the chat fine-tuning set.

Proposals are made without a chat model, deterministically, from each document chunk (a Chunk
without an FAQ entry): the chunk's heading becomes the question by its shape (a question is
kept; "How to X" and an instruction become "How do I …?"; a plural or policy-like noun phrase
becomes "What are/is your …?"; anything else "What should I know about …?") and the answer is
the chunk's sentences that share the most words with the heading, at most ANSWER_SENTENCES, in
the document's order. The owner reviews them on the Fine-tuning tab: accept (edited or not) or
reject; only accepted pairs are trained on (training.datasets, origin "document").
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from bots.models import Bot
from knowledge.models import Chunk

from .models import DocumentPair

# A proposed answer is FAQ-sized: short enough for a chat reply and for the owner to check.
ANSWER_SENTENCES = 3
ANSWER_CHARS = 500
QUESTION_MAX_CHARS = DocumentPair._meta.get_field("question").max_length
MAX_PROPOSALS = 200  # per bot and regeneration: more is more than an owner reviews

QUESTION_WORDS = {
    "how", "what", "when", "where", "why", "who", "which", "can", "could", "do", "does", "is",
    "are", "should", "will", "may", "must",
}  # fmt: skip
# Headings that start with one of these read as an instruction: "Reset your password".
INSTRUCTION_VERBS = {
    "add", "book", "buy", "cancel", "change", "check", "choose", "configure", "connect",
    "contact", "create", "delete", "download", "enable", "disable", "find", "get", "install",
    "log", "login", "make", "manage", "order", "pay", "register", "remove", "renew", "reset",
    "return", "set", "sign", "start", "stop", "track", "update", "upgrade", "use",
}  # fmt: skip
# Nouns a customer asks "what is your …" about.
SINGULAR_POLICY_NOUNS = {"policy", "pricing", "warranty", "guarantee", "address", "schedule"}
STOPWORDS = {
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "your", "our", "my",
    "you", "we", "i", "is", "are", "be", "do", "does", "how", "what", "when", "where", "why",
    "can", "it", "this", "that", "at", "by", "from", "about", "as", "if", "not",
}  # fmt: skip
PAGE_SUFFIX = re.compile(r",\s*page \d+$", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
WORD = re.compile(r"[a-z0-9]+")


def _lower_first(phrase: str) -> str:
    """Lower-case the first word unless it is an acronym or a name with inner capitals."""
    first, _sep, rest = phrase.partition(" ")
    if first[1:] == first[1:].lower():
        first = first.lower()
    return f"{first} {rest}".strip()


def _my(phrase: str) -> str:
    """An instruction in the customer's words: "reset your password" -> "reset my password"."""
    return re.sub(r"\byour\b", "my", phrase, flags=re.IGNORECASE)


def heading_question(heading: str) -> str:
    """The question a heading asks, by its shape; "" for a heading that asks nothing."""
    heading = PAGE_SUFFIX.sub("", " ".join(heading.split())).strip(" #:.-")
    if not heading or len(heading) > 150:
        return ""
    if heading.endswith("?"):
        return heading
    words = heading.split()
    first, last = words[0].lower(), words[-1].lower()
    if heading.lower().startswith("how to "):
        return f"How do I {_my(heading[7:])}?"
    if first in QUESTION_WORDS:
        return heading[0].upper() + heading[1:] + "?"
    phrase = _lower_first(heading)
    # "Change your address" is an instruction, "Return policy" a noun phrase.
    if first in INSTRUCTION_VERBS and (len(words) > 2 or last not in SINGULAR_POLICY_NOUNS):
        return f"How do I {_my(phrase)}?"
    if last in SINGULAR_POLICY_NOUNS and len(words) <= 3:
        return f"What is your {phrase}?"
    if len(words) <= 4 and last.endswith("s") and not last.endswith(("ss", "us", "is")):
        return f"What are your {phrase}?"
    return f"What should I know about {phrase}?"


def _words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS}


def extract_answer(text: str, question: str) -> str:
    """The chunk's sentences sharing the most words with the question (ties: earlier first), at
    most ANSWER_SENTENCES and about ANSWER_CHARS, in the order they appear."""
    sentences = [BULLET.sub("", s).strip() for s in SENTENCE_END.split(text)]
    sentences = [s for s in sentences if len(s) > 2 and not s.startswith(("Q:", "A:"))]
    if not sentences:
        return ""
    wanted = _words(question)
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(_words(sentences[i]) & wanted), i))
    chosen: list[int] = []
    length = 0
    for i in ranked:
        if len(chosen) == ANSWER_SENTENCES or (
            chosen and length + len(sentences[i]) > ANSWER_CHARS
        ):
            break
        chosen.append(i)
        length += len(sentences[i]) + 1
    return " ".join(sentences[i] for i in sorted(chosen))[: ANSWER_CHARS * 2]


def propose(heading: str, text: str) -> tuple[str, str] | None:
    """(question, answer) for one chunk, or None when its heading asks nothing."""
    question = heading_question(heading)
    answer = extract_answer(text, question) if question else ""
    return (question, answer) if question and answer else None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


# --- Services -------------------------------------------------------------------------------------


def document_pairs_propose(*, bot: Bot) -> int:
    """Replace the bot's proposed (unreviewed) pairs with fresh ones from its document chunks.
    Accepted and rejected pairs stay; a chunk or question already reviewed is not proposed
    again. Returns how many were proposed."""
    with transaction.atomic():
        DocumentPair.objects.filter(bot=bot, status=DocumentPair.Status.PROPOSED).delete()
        reviewed = list(DocumentPair.objects.filter(bot=bot).values_list("chunk_id", "question"))
        seen_chunks = {chunk_id for chunk_id, _ in reviewed if chunk_id}
        seen = {_normal(q) for _, q in reviewed}
        # Chunks of one text under two embedding models (a model switch in progress) are one.
        seen_texts: set[tuple[str, str]] = set()
        pairs = []
        chunks = (
            Chunk.objects.filter(bot=bot, faq__isnull=True)
            .order_by("source_id", "position", "pk")
            .only("pk", "title", "text")
        )
        for chunk in chunks.iterator(chunk_size=500):
            if chunk.pk in seen_chunks or (chunk.title, chunk.text) in seen_texts:
                continue
            seen_texts.add((chunk.title, chunk.text))
            proposal = propose(chunk.title, chunk.text)
            if proposal is None or _normal(proposal[0]) in seen:
                continue
            seen.add(_normal(proposal[0]))
            pairs.append(
                DocumentPair(
                    bot=bot,
                    chunk=chunk,
                    question=proposal[0][:500],
                    answer=proposal[1],
                    heading=chunk.title[:500],
                )
            )
            if len(pairs) == MAX_PROPOSALS:
                break
        DocumentPair.objects.bulk_create(pairs)
    return len(pairs)


def document_pair_review(
    *, pair: DocumentPair, accept: bool, question: str | None = None, answer: str | None = None
) -> DocumentPair:
    """Accept (with the owner's edits of question and answer, when given) or reject a pair.
    Raises ValidationError for an accepted pair with an empty question or answer, and for a
    question over QUESTION_MAX_CHARS (it was cut short without a word)."""
    if question is not None:
        question = " ".join(question.split())
        if len(question) > QUESTION_MAX_CHARS:
            raise ValidationError(
                _("The question is %(n)s characters long; the limit is %(limit)s.")
                % {"n": len(question), "limit": QUESTION_MAX_CHARS}
            )
        pair.question = question
    if answer is not None:
        pair.answer = answer.strip()
    if accept and (not pair.question or not pair.answer):
        raise ValidationError(_("A pair needs a question and an answer to be accepted."))
    pair.status = DocumentPair.Status.ACCEPTED if accept else DocumentPair.Status.REJECTED
    pair.save(update_fields=["question", "answer", "status", "updated_at"])
    return pair
