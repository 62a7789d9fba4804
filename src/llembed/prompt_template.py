"""A prompt template, and where the user's text sits inside the rendered prompt.

A template is a string with ``{text}``, optionally ``{task}`` (instruction prompts) and ``{pst}`` (a placeholder
token without characters, which a strategy's layer hooks may write into, as Token Prepending does). Rendering
records the character spans of the user's text so the tokenizer can tell exactly which tokens are the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llembed.errors import InputError, RecipeError

PLACEHOLDER = re.compile(r"\{(text|task|pst)\}")


@dataclass(frozen=True)
class Rendered:
    """A prompt filled with one text."""

    string: str
    pooled_spans: tuple[tuple[int, int], ...]
    """Character spans of the user text that enter mean / weighted_mean / max when prompts are excluded."""
    pst_at: int | None = None
    """Character position where the Token Prepending placeholder token goes (it has no characters)."""


@dataclass(frozen=True)
class PromptTemplate:
    template: str
    pool_occurrence: str = "all"
    """Which ``{text}`` copies are "the text" for pooling: ``all``, or ``last`` (echo embeddings)."""

    def __post_init__(self) -> None:
        if "{text}" not in self.template:
            raise RecipeError(f"prompt template must contain {{text}}: {self.template!r}")

    @property
    def has_placeholder(self) -> bool:
        """The template holds ``{pst}``: tokenization inserts a placeholder token there."""
        return "{pst}" in self.template

    def render(self, text: str, task: str | None = None) -> Rendered:
        parts: list[str] = []
        spans: list[tuple[int, int]] = []
        pst_at = None
        length = 0
        cursor = 0
        for match in PLACEHOLDER.finditer(self.template):
            literal = self.template[cursor : match.start()]
            parts.append(literal)
            length += len(literal)
            cursor = match.end()
            kind = match.group(1)
            if kind == "pst":
                pst_at = length
                continue
            if kind == "task":
                if task is None:
                    raise InputError(f"this prompt needs a task description (task=...): {self.template!r}")
                value = task
            else:
                value = text
                spans.append((length, length + len(value)))
            parts.append(value)
            length += len(value)
        parts.append(self.template[cursor:])
        if self.pool_occurrence == "last":
            spans = spans[-1:]
        return Rendered("".join(parts), tuple(spans), pst_at)
