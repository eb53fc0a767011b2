"""What parsing a file gives: FAQ items, document sections and warnings, and the error the
owner reads when a file cannot be read (knowledge.parsing and the format readers produce them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError


class ParseError(ValidationError):
    """The file cannot be read; the message is shown in the dashboard as is."""


@dataclass
class FaqItem:
    question: str
    answer: str
    category: str = ""
    url: str = ""
    alternate_questions: list[str] = field(default_factory=list)
    external_id: str = ""


@dataclass
class Section:
    title: str
    text: str


@dataclass
class Parsed:
    faqs: list[FaqItem] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
