"""Prompt strategies: one registry, :data:`STRATEGIES`, filled from the modules of this package.

Every module here that defines a list ``STRATEGIES`` contributes its strategies (``catalog`` holds the
template-only ones of the literature; a strategy with layer hooks has a module of its own). Adding a strategy
is therefore one file, or one entry in ``catalog.py``; validation, ``llembed strategies`` and the CLI help all
read this registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from llembed.errors import InputError, RecipeError
from llembed.prompt_template import PromptTemplate, Rendered
from llembed.prompts.catalog import INSTRUCTION, METAEOL, PROMPTEOL, icl_template
from llembed.prompts.strategy import BlockHook, RecipeView, Strategy

_INFRASTRUCTURE = {"strategy", "template"}  # template: the old home of prompt_template


def _discover() -> dict[str, Strategy]:
    found: dict[str, Strategy] = {}
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _INFRASTRUCTURE)
    for module_name in ["catalog"] + [n for n in names if n != "catalog"]:
        module = importlib.import_module(f"{__name__}.{module_name}")
        for strategy in getattr(module, "STRATEGIES", []):
            if strategy.name in found:
                raise RuntimeError(f"prompt strategy {strategy.name!r} is defined twice ({module_name})")
            found[strategy.name] = strategy
    return found


STRATEGIES: dict[str, Strategy] = _discover()


def resolve_strategy(prompt: str | None, icl_examples: list[list[str]] | None = None) -> Strategy:
    """A strategy by name, or a custom one from a template string containing ``{text}``."""
    name = prompt or "none"
    if name == "icl" and icl_examples is not None:
        return STRATEGIES["icl"].with_templates("icl", (PromptTemplate(icl_template(icl_examples)),))
    if name in STRATEGIES:
        return STRATEGIES[name]
    if "{text}" in name:
        template = PromptTemplate(name)
        if template.has_placeholder:  # the strategy that owns {pst} gives the custom template its hooks
            owner = next(s for s in STRATEGIES.values() if s.placeholder)
            return owner.with_templates("custom", (template,))
        return Strategy("custom", "user template", "user", (template,), needs_task="{task}" in name)
    raise RecipeError(
        f"unknown prompt {name!r}: choose one of {', '.join(STRATEGIES)}, or pass a template containing {{text}}"
    )


def templates_for(strategy: Strategy, side: str, task: str | None) -> tuple[PromptTemplate, ...]:
    """The templates for ``side`` ("query", "document" or "text"). Plain ``encode`` is the query side when a
    task is known and the document side otherwise, so an instruction strategy without a task embeds plain text;
    a ``task_optional`` strategy's queries without a task take the document templates too."""
    untasked = strategy.needs_task and task is None
    if side == "document" or (untasked and (side == "text" or strategy.task_optional)):
        return strategy.document_templates or strategy.query_templates
    if untasked:
        raise InputError(f"prompt {strategy.name!r} needs a task description for queries: pass task=...")
    return strategy.query_templates


__all__ = [
    "INSTRUCTION",
    "METAEOL",
    "PROMPTEOL",
    "STRATEGIES",
    "BlockHook",
    "PromptTemplate",
    "RecipeView",
    "Rendered",
    "Strategy",
    "icl_template",
    "resolve_strategy",
    "templates_for",
]
