"""The shipped unrelated questions, one file per bot language (data/unrelated_questions.txt
for English, data/unrelated_questions.<code>.txt for the others, each written by hand in its
language), read two ways.

- every question (training.calibration_samples): the out-of-scope sample, trimmed per bot of the
  ones that score like the bot's own questions;
- must_decline(): the ones a support bot of any business should decline (small talk, world
  knowledge), without the file's marked section of other businesses' customer questions, which
  are in scope for some bots ("what is your phone number"): refusal examples for fine-tuning
  (training.datasets) and the mode comparison's must-decline set (chat.evaluation).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
PATH = DATA / "unrelated_questions.txt"
SECTION_START = "# --- Other businesses"
SECTION_END = "# --- end of other businesses"


def path(language: str = "en") -> Path:
    """The file for a bot language; English for a language that has none."""
    candidate = DATA / f"unrelated_questions.{language}.txt"
    return candidate if language != "en" and candidate.exists() else PATH


def every(language: str = "en") -> list[str]:
    """Every question in the language's file (comment lines skipped)."""
    lines = path(language).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def carriers(language: str = "en") -> list[str]:
    """How customers wrap a question in words of their own, in the language (data/carriers/)."""
    file = DATA / "carriers" / f"{language}.txt"
    if not file.exists():
        file = DATA / "carriers" / "en.txt"
    lines = file.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if "{}" in line and not line.startswith("#")]


def must_decline(language: str = "en") -> list[str]:
    """The language's questions without its marked section of other businesses' questions."""
    pool, skipping = [], False
    for line in path(language).read_text("utf-8").splitlines():
        text = line.strip()
        if text.startswith(SECTION_START):
            skipping = True
        elif text.startswith(SECTION_END):
            skipping = False
        elif text and not text.startswith("#") and not skipping:
            pool.append(text)
    return pool
