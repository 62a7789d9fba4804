"""A prompt strategy: its templates (one per view), and optionally hooks into the forward pass.

Most strategies are templates only. A strategy that also acts inside the model (Token Prepending) overrides
:meth:`Strategy.block_hooks` and :meth:`Strategy.recipe_defaults`; the backbone runs whatever hooks it is
given, so such a strategy stays in one file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from llembed.backbone import BlockHook
from llembed.prompt_template import PromptTemplate
from llembed.tokenization import TokenBatch


class RecipeView(Protocol):
    """The fields of a :class:`llembed.recipe.Recipe` a strategy's hooks read. A protocol, because the recipe
    checks its prompt against this package: prompts sit below the recipe, never the other way round."""

    @property
    def tp_layers(self) -> list[int] | None: ...


@dataclass(frozen=True)
class Strategy:
    """A named prompt strategy: one template per view (MetaEOL has several; their vectors are averaged)."""

    name: str
    summary: str
    source: str
    query_templates: tuple[PromptTemplate, ...]
    document_templates: tuple[PromptTemplate, ...] | None = None
    """``None``: documents get the query templates (symmetric strategies)."""
    needs_task: bool = False
    task_optional: bool = False
    """With ``needs_task``: a query without a task takes the document templates (embedded as a symmetric text, as
    such a strategy is trained) instead of failing."""
    placeholder: bool = False
    """The strategy owns the ``{pst}`` placeholder: custom templates holding one use this strategy's hooks."""

    def recipe_defaults(self, num_layers: int) -> dict[str, Any]:
        """Recipe fields this strategy fills in when the recipe leaves them ``None``."""
        return {}

    def block_hooks(
        self, recipe: RecipeView, template: PromptTemplate, batch: TokenBatch, skip: int, num_layers: int
    ) -> list[BlockHook]:
        """Pre-hooks on transformer blocks for one batch (``skip``: leading columns served by a cached prefix)."""
        return []

    def with_templates(self, name: str, templates: tuple[PromptTemplate, ...]) -> Strategy:
        return dataclasses.replace(self, name=name, query_templates=templates, document_templates=None)


def single(template: str, **kwargs: Any) -> tuple[PromptTemplate, ...]:
    return (PromptTemplate(template, **kwargs),)
