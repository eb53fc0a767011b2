"""What training reads from the apps that come after it (chat): the bot's own traffic.

Training cannot import chat, which builds on it, so chat registers its readers here in its
AppConfig.ready, and training calls them without knowing where the rows live.
"""

from __future__ import annotations

from collections.abc import Callable

# bot -> [(question, the FaqEntry pk it should get, or None: it should be declined)]
ObservedSource = Callable[[object], list[tuple[str, int | None]]]
# bot -> [(an id of the answer, the customer's question before it, the answer)], oldest first
ApprovedSource = Callable[[object], list[tuple[int, str, str]]]

_observed_sources: list[ObservedSource] = []
_approved_sources: list[ApprovedSource] = []


def observed_source(source: ObservedSource) -> ObservedSource:
    """Register the questions of a bot's traffic whose right outcome the owner said (labels);
    calibration weighs them against its synthetic estimate."""
    if source not in _observed_sources:
        _observed_sources.append(source)
    return source


def approved_source(source: ApprovedSource) -> ApprovedSource:
    """Register the bot answers the owner marked good for training; the chat fine-tuning set
    adds them, each with the customer's question before it."""
    if source not in _approved_sources:
        _approved_sources.append(source)
    return source


def observed_questions(bot) -> list[tuple[str, int | None]]:
    return [item for source in _observed_sources for item in source(bot)]


def approved_answers(bot) -> list[tuple[int, str, str]]:
    return [item for source in _approved_sources for item in source(bot)]
