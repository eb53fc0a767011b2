"""The shipped unrelated questions (data/unrelated_questions.txt), read two ways.

- every question (training.calibration): the out-of-scope sample, trimmed per bot of the ones
  that score like the bot's own questions;
- must_decline(): the ones a support bot of any business should decline (small talk, world
  knowledge), without the file's marked section of other businesses' customer questions, which
  are in scope for some bots ("what is your phone number"): refusal examples for fine-tuning
  (training.datasets) and the mode comparison's must-decline set (chat.evaluation).
"""

from __future__ import annotations

from pathlib import Path

PATH = Path(__file__).resolve().parent / "data" / "unrelated_questions.txt"
SECTION_START = "# --- Other businesses"
SECTION_END = "# --- end of other businesses"


def every() -> list[str]:
    """Every question in the file (comment lines skipped)."""
    lines = PATH.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def must_decline() -> list[str]:
    pool, skipping = [], False
    for line in PATH.read_text("utf-8").splitlines():
        text = line.strip()
        if text.startswith(SECTION_START):
            skipping = True
        elif text.startswith(SECTION_END):
            skipping = False
        elif text and not text.startswith("#") and not skipping:
            pool.append(text)
    return pool
