"""Split document sections into retrievable chunks: by structure first (paragraphs), then by
sentences, with a size limit and an overlap so a fact cut at a boundary is still found whole."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .parsed import Section

MAX_CHARS = 1200  # ~250 tokens: inside MiniLM's 256-token window, so nothing is truncated
OVERLAP_CHARS = 200

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Piece:
    title: str
    text: str


def chunk_sections(
    sections: list[Section], *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS
) -> list[Piece]:
    pieces: list[Piece] = []
    for section in sections:
        for text in chunk_text(section.text, max_chars=max_chars, overlap=overlap):
            pieces.append(Piece(title=section.title[:500], text=text))
    return pieces


def chunk_text(text: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    units = [u for p in re.split(r"\n\s*\n", text) for u in _fit(p.strip(), max_chars) if u]
    chunks: list[str] = []
    current = ""
    for unit in units:
        if not current:
            current = unit
        elif len(current) + 2 + len(unit) <= max_chars:
            current = f"{current}\n\n{unit}"
        else:
            chunks.append(current)
            tail = _tail(current, overlap)
            current = f"{tail} {unit}" if tail and len(tail) + 1 + len(unit) <= max_chars else unit
    if current:
        chunks.append(current)
    return chunks


def _fit(paragraph: str, max_chars: int) -> list[str]:
    """A paragraph as units no longer than max_chars: whole, else sentences, else hard cuts."""
    if len(paragraph) <= max_chars:
        return [paragraph]
    units: list[str] = []
    for sentence in SENTENCE_END.split(paragraph):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            units.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            units.append(sentence)
    # Re-pack sentences so a long paragraph gives few, full units.
    packed: list[str] = []
    for unit in units:
        if packed and len(packed[-1]) + 1 + len(unit) <= max_chars:
            packed[-1] = f"{packed[-1]} {unit}"
        else:
            packed.append(unit)
    return packed


def _tail(text: str, overlap: int) -> str:
    """The last `overlap` characters of a chunk, starting at a word boundary."""
    if overlap <= 0 or len(text) <= overlap:
        return "" if overlap <= 0 else text
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1 :] if 0 <= space < len(tail) - 1 else tail
