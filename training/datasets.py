"""A bot's chat fine-tuning set: examples built from its knowledge, validated
(training.dataset_checks), the estimate of a run, and the JSONL export in the chat fine-tuning
format OpenAI's API accepts.

Examples (each a system / user / assistant conversation):
- "faq": every training phrasing of every FAQ entry (its question and alternates) answered with
  the entry's curated answer, the bot's persona (Bot.instructions) as system prompt;
- "refusal": the shipped unrelated questions of the bot's language (training.unrelated)
  answered with the bot's fallback message, so the tuned model learns to decline. Questions the
  bot's own retrieval would answer (score >= its answer threshold) are left out: for a shop,
  "can I return my order" is no refusal;
- "conversation": every bot answer the owner marked good for training on a conversation's page
  (Message.training_approved), the customer's question before it as the user turn;
- "document": question/answer pairs drawn from the bot's documents that the owner accepted on
  the Fine-tuning tab (training.documents, DocumentPair);
- for a run of the **both** mode, the same with retrieved context: the question, the chunks
  knowledge.selectors.search returns for it (the gold entry always among them, the others are
  distractors) in the system prompt, the curated answer as target (retrieval-augmented
  fine-tuning: the model learns to copy the right passage). Refusals carry their distractors;
  approved conversation answers carry what retrieval returns for their question, document
  pairs their own chunk among the distractors.

Every example records its origin (faq, refusal, conversation, document), shown in the preview.
An approved answer or accepted pair that contradicts an FAQ answer to the same question is an
error, like two FAQ entries that do; one whose question is a held-out phrasing is left out (it
would leak the evaluation).

One phrasing of every entry with three or more is held out
(training.calibration_samples.holdout_split, the same one retrieval tuning holds out): those
questions never reach a tuning run and are recorded on the run for evaluation.

prompt_messages() is the one prompt format of a tuned model: training writes it here, and
chat.answering asks the deployed model with it, so what it learned is what it is asked.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy

import providers
from bots.models import Bot
from knowledge import selectors
from knowledge.models import Chunk, FaqEntry

from .calibration_samples import holdout_split, load_unrelated
from .dataset_checks import ERROR, Example, Issue, normal_question, validate
from .models import DocumentPair
from .sources import approved_answers

CONTEXT_CHUNKS = 3  # as chat.answering.pipeline.CONTEXT_CHUNKS: what a both-mode answer is given
REFUSAL_SHARE = 0.2  # refusal examples per FAQ example (at least MIN_REFUSALS)
MIN_REFUSALS = 4  # so that even a tiny FAQ's model sees declining more than once or twice
PREVIEW = 8  # examples shown before a launch: a few of every kind, still one screen to read
FINETUNED, BOTH = "finetuned", "both"

KINDS = {
    "faq": gettext_lazy("FAQ"),
    "refusal": gettext_lazy("refusals"),
    "conversation": gettext_lazy("from conversations"),
    "document": gettext_lazy("from documents"),
    "context": gettext_lazy("FAQ with context"),
    "context_refusal": gettext_lazy("refusals with context"),
    "context_conversation": gettext_lazy("from conversations with context"),
    "context_document": gettext_lazy("from documents with context"),
}


@dataclass
class TrainingSet:
    mode: str
    examples: list[Example]
    held_out: list[dict]
    issues: list[Issue]
    entries: int = 0

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == ERROR]

    @property
    def launchable(self) -> bool:
        return not self.errors

    def jsonl(self) -> str:
        return "".join(e.as_jsonl() + "\n" for e in self.examples)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for e in self.examples:
            out[e.kind] += 1
        return dict(out)

    def preview(self, n: int = PREVIEW) -> list[Example]:
        """A few examples of every kind (taken in turn, so a small kind is never crowded out),
        for the owner to read before launching."""
        by_kind: dict[str, list[Example]] = defaultdict(list)
        for e in self.examples:
            by_kind[e.kind].append(e)
        out: list[Example] = []
        for row in range(max((len(g) for g in by_kind.values()), default=0)):
            out += [group[row] for group in by_kind.values() if row < len(group)]
            if len(out) >= n:
                break
        return out[:n]

    def as_dict(self) -> dict:
        return {"mode": self.mode, "issues": [asdict(i) for i in self.issues]}


# --- The prompt a tuned model is trained on and asked with ------------------------------------


def system_prompt(
    bot: Bot, context: Sequence[tuple[str, str]] | None = None, *, cite: bool = False
) -> str:
    persona = (bot.instructions or "").strip()
    if context is None:
        return persona
    knowledge = "\n\n".join(f"[{i}] {title}\n{text}" for i, (title, text) in enumerate(context, 1))
    citing = " Cite the entries you used like [1]." if cite else ""
    return (
        f"{persona}\n\nAnswer the customer's question using only the numbered knowledge below."
        f"{citing} If the knowledge does not contain the answer, reply exactly: "
        f"{bot.fallback_message}\n\nKnowledge:\n{knowledge}"
    ).strip()


def prompt_messages(
    bot: Bot,
    question: str,
    *,
    context: Sequence[tuple[str, str]] | None = None,
    history=(),
    cite: bool = False,
) -> list[providers.ChatMessage]:
    """The one prompt format: the messages a tuned model is trained on and asked with, and a base
    chat model writing from retrieved knowledge (`cite`: asked to cite it like [1]). Persona
    (with the numbered context, if any), the last turns of the conversation, the question."""
    messages: list[providers.ChatMessage] = []
    system = system_prompt(bot, context, cite=cite)
    if system:
        messages.append({"role": "system", "content": system})
    messages += [{"role": m["role"], "content": m["content"]} for m in history][-6:]
    messages.append({"role": "user", "content": question})
    return messages


def hit_context(hits) -> list[tuple[str, str]]:
    """(title, text) of knowledge.selectors hits, as prompt_messages takes them."""
    return [(h.question or h.title, h.text) for h in hits]


# --- Building -------------------------------------------------------------------------------------


def _stable_rng(bot: Bot, salt: str) -> random.Random:
    return random.Random(int(hashlib.sha1(f"{bot.pk}:{salt}".encode()).hexdigest()[:8], 16))


def _entries(bot: Bot) -> list:
    return list(FaqEntry.objects.filter(bot=bot).order_by("pk"))


def _accepted_pairs(bot: Bot) -> list:
    return list(
        DocumentPair.objects.filter(bot=bot, status=DocumentPair.Status.ACCEPTED)
        .select_related("chunk")
        .order_by("pk")
    )


def _refusal_questions(bot: Bot, n: int) -> list[str]:
    """`n` unrelated questions this bot's retrieval would not answer (deterministic per bot)."""
    pool = load_unrelated(bot.language)
    _stable_rng(bot, "refusals").shuffle(pool)
    candidates = pool[: n * 2]
    if not candidates:
        return []
    vectors = selectors.embed_queries(bot, candidates)
    out = []
    for question, vector in zip(candidates, vectors, strict=True):
        hits = selectors.search(bot=bot, query=question, limit=1, vector=vector)
        if not hits or hits[0].score < bot.answer_threshold:
            out.append(question)
        if len(out) == n:
            break
    return out


def _contexts(bot: Bot, questions: list[str], gold: list) -> list[list[tuple[str, str]]]:
    """The top CONTEXT_CHUNKS chunks retrieval gives each question, the gold (an FaqEntry or a
    document Chunk; None for a refusal) always among them at a seeded position."""
    vectors = selectors.embed_queries(bot, questions) if questions else []
    rng = _stable_rng(bot, "contexts")
    out = []
    for question, vector, entry in zip(questions, vectors, gold, strict=True):
        hits = selectors.search(bot=bot, query=question, limit=CONTEXT_CHUNKS + 1, vector=vector)
        if isinstance(entry, Chunk):
            hits = [h for h in hits if h.chunk_id != entry.pk][: CONTEXT_CHUNKS - 1]
            context = hit_context(hits)
            context.insert(rng.randint(0, len(context)), (entry.title, entry.text))
        elif entry is not None:
            hits = [h for h in hits if h.faq_id != entry.pk][: CONTEXT_CHUNKS - 1]
            context = hit_context(hits)
            context.insert(
                rng.randint(0, len(context)),
                (entry.question, f"Q: {entry.question}\nA: {entry.answer}"),
            )
        else:
            context = hit_context(hits[:CONTEXT_CHUNKS])
        out.append(context)
    return out


def build(bot: Bot, *, mode: str = FINETUNED, backend: str = "local") -> TrainingSet:
    """The bot's training set for a run of `mode`, validated (see validate()). Reads the FAQ and,
    for refusals and both mode, runs the bot's retrieval (embeds the questions)."""
    entries = _entries(bot)
    groups = [[e.question, *(e.alternate_questions or [])] for e in entries]
    train_groups, held = holdout_split(groups)
    held_out = [
        {"faq_id": entries[gi].pk, "question": groups[gi][pi], "answer": entries[gi].answer}
        for gi, pi in held
    ]
    pairs = [(entry, q) for entry, group in zip(entries, train_groups, strict=True) for q in group]
    held_questions = {normal_question(h["question"]) for h in held_out}
    approved = [a for a in approved_answers(bot) if normal_question(a[1]) not in held_questions]
    documents = [
        d for d in _accepted_pairs(bot) if normal_question(d.question) not in held_questions
    ]
    extra = len(approved) + len(documents)
    refusals = (
        _refusal_questions(bot, max(MIN_REFUSALS, math.ceil(REFUSAL_SHARE * (len(pairs) + extra))))
        if pairs or extra
        else []
    )
    examples = (_both_examples if mode == BOTH else _plain_examples)(
        bot, pairs, refusals, approved, documents
    )
    count_tokens(examples, backend)
    issues = validate(examples, entries=len(entries), backend=backend)
    return TrainingSet(mode, examples, held_out, issues, entries=len(entries))


def _both_examples(bot, pairs, refusals, approved, documents) -> list[Example]:
    """Both mode: every example carries the context retrieval gives its question."""
    examples: list[Example] = []
    questions = [q for _, q in pairs] + refusals
    golds = [e for e, _ in pairs] + [None] * len(refusals)
    for question, entry, context in zip(
        questions, golds, _contexts(bot, questions, golds), strict=True
    ):
        target = entry.answer if entry else bot.fallback_message
        examples.append(
            Example(
                prompt_messages(bot, question, context=context)
                + [{"role": "assistant", "content": target}],
                "context" if entry else "context_refusal",
                entry.pk if entry else None,
                origin="faq" if entry else "refusal",
            )
        )
    # An approved answer gets what retrieval returns for its question (no gold to insert:
    # the answer was written from that retrieval).
    approved_questions = [q for _, q, _ in approved]
    contexts = _contexts(bot, approved_questions, [None] * len(approved))
    for (pk, question, answer), context in zip(approved, contexts, strict=True):
        examples.append(
            Example(
                prompt_messages(bot, question, context=context)
                + [{"role": "assistant", "content": answer}],
                "context_conversation",
                origin="conversation",
                origin_id=pk,
            )
        )
    contexts = _contexts(bot, [d.question for d in documents], [d.chunk for d in documents])
    for pair, context in zip(documents, contexts, strict=True):
        examples.append(
            Example(
                prompt_messages(bot, pair.question, context=context)
                + [{"role": "assistant", "content": pair.answer}],
                "context_document",
                origin="document",
                origin_id=pair.pk,
            )
        )
    return examples


def _plain_examples(bot, pairs, refusals, approved, documents) -> list[Example]:
    """Fine-tuned mode: the question alone, as a customer asks it."""
    examples: list[Example] = []
    for entry, question in pairs:
        examples.append(
            Example(
                prompt_messages(bot, question) + [{"role": "assistant", "content": entry.answer}],
                "faq",
                entry.pk,
            )
        )
    for question in refusals:
        examples.append(
            Example(
                prompt_messages(bot, question)
                + [{"role": "assistant", "content": bot.fallback_message}],
                "refusal",
                origin="refusal",
            )
        )
    for pk, question, answer in approved:
        examples.append(
            Example(
                prompt_messages(bot, question) + [{"role": "assistant", "content": answer}],
                "conversation",
                origin="conversation",
                origin_id=pk,
            )
        )
    for pair in documents:
        examples.append(
            Example(
                prompt_messages(bot, pair.question)
                + [{"role": "assistant", "content": pair.answer}],
                "document",
                origin="document",
                origin_id=pair.pk,
            )
        )
    return examples


def count_tokens(examples: list[Example], backend: str) -> None:
    """Each example's length in the target model's tokens: the local model's own tokenizer and
    chat template; for an OpenAI model (no tokenizer here) about 4 characters a token."""
    if backend == "local":
        tokenizer = providers.local_chat_tokenizer()
        for e in examples:
            e.tokens = len(tokenizer.apply_chat_template(e.messages, tokenize=True)["input_ids"])
    else:
        for e in examples:
            e.tokens = sum(4 + math.ceil(len(m["content"]) / 4) for m in e.messages) + 3


# --- Estimate -------------------------------------------------------------------------------------


def estimate(
    training_set: TrainingSet, *, backend: str, epochs: int, batch_size: int, measured=None
) -> dict:
    """Examples, tokens x epochs, steps, time on this machine and the provider's cost.

    `measured` is (seconds per step, mean tokens per example) of the last local run that
    finished here; the time scales it by this set's mean length. Without one, the figure
    measured on a 2-core machine (settings.CHAT_TUNING_SECONDS_PER_STEP at 40 tokens an
    example) stands in."""
    n = len(training_set.examples)
    tokens = sum(e.tokens for e in training_set.examples)
    steps = math.ceil(n / max(1, batch_size)) * epochs if n else 0
    out = {
        "examples": n,
        "tokens": tokens,
        "epochs": epochs,
        "trained_tokens": tokens * epochs,
        "steps": steps,
        "kinds": training_set.counts(),
    }
    if backend == "local":
        per_step, per_example = measured or (settings.CHAT_TUNING_SECONDS_PER_STEP, 40.0)
        mean = tokens / n if n else 0
        seconds = steps * per_step * max(0.25, mean / max(1.0, per_example))
        out.update(seconds=round(seconds), measured=bool(measured), cost_usd=0.0)
    else:
        out.update(
            seconds=None,
            cost_usd=round(tokens * epochs / 1e6 * settings.OPENAI_FINE_TUNING_PRICE_PER_MTOK, 4),
            tokens_approximate=True,
        )
    return out
