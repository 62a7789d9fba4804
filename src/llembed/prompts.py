"""Prompt strategies: a template per strategy, and where the user's text sits inside the rendered prompt.

A template is a string with ``{text}``, optionally ``{task}`` (instruction prompts) and ``{pst}`` (the
placeholder token of Token Prepending). Rendering records the character spans of the user's text so the
tokenizer can tell exactly which tokens are the text and which are the prompt.
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


PLAIN = PromptTemplate("{text}")
PROMPTEOL = 'This sentence : "{text}" means in one word:"'
PCOTEOL = 'After thinking step by step , this sentence : "{text}" means in one word:"'
KE = (
    "The essence of a sentence is often captured by its main subjects and actions, while descriptive terms "
    'provide additional but less central details. With this in mind , this sentence : "{text}" means in one word:"'
)
INSTRUCTION = "Instruct: {task}\nQuery: {text}"
ECHO = "Rewrite the sentence: {text}, rewritten sentence: {text}"
TOKEN_PREPENDING = 'This sentence :{pst} "{text}" means in one word:"'
DEFAULT_ICL_EXAMPLES = (("A jockey riding a horse.", "Equestrian"),)

# MetaEOL (Lei et al., 2024, "Meta-Task Prompting Elicits Embeddings from Large Language Models", ACL):
# eight meta-task prompts; the sentence embedding is the average of the eight last-token embeddings.
METAEOL = (
    "In this task, you're presented with a text excerpt. Your task is to categorize the excerpt into a broad "
    "category such as 'Education', 'Technology', 'Health', 'Business', 'Environment', 'Politics', or 'Culture'. "
    "These categories help in organizing content for better accessibility and targeting. For this task, this "
    'sentence : "{text}" should be classified under one general category in one word:"',
    "In this task, you're given a statement and you need to determine whether it's presenting an 'Opinion' or a "
    "'Fact'. This distinction is vital for information verification, educational purposes, and content analysis. "
    'For this task, this sentence : "{text}" discriminates between opinion and fact in one word:"',
    "In this task, you're given a review from an online platform. Your task is to generate a rating for the "
    "product based on the review on a scale of 1-5, where 1 means 'extremely negative' and 5 means 'extremely "
    'positive\'. For this task, this sentence : "{text}" reflects the sentiment in one word:"',
    "In this task, you're reading a personal diary entry. Your task is to identify the predominant emotion "
    'expressed, such as joy, sadness, anger, fear, or love. For this task, this sentence : "{text}" conveys '
    'the emotion in one word:"',
    "In this task, you're presented with two sentences. Your task is to assess whether the sentences convey the "
    "same meaning. Use 'identical', 'similar', 'different', or 'unrelated' to describe the relationship. To "
    'enhance the performance of this task, this sentence : "{text}" means in one word:"',
    "In this task, you're given a sentence and a phrase. Your task is to determine if the phrase can be a "
    "contextual synonym within the given sentence. Options include 'yes', 'no', or 'partially'. To enhance the "
    'performance of this task, this sentence : "{text}" means in one word:"',
    "In this task, you're examining a news article. Your task is to extract the most critical fact from the "
    'article. For this task, this sentence : "{text}" encapsulates the key fact in one word:"',
    "In this task, you're reviewing a scientific abstract. Your task is to identify the main entities (e.g., "
    'proteins, diseases) and their relations (e.g., causes, treats). For this task, this sentence : "{text}" '
    'highlights the primary entity or relation in one word:"',
)


def icl_template(examples: list[list[str]] | tuple[tuple[str, str], ...] | None = None) -> str:
    """PromptEOL preceded by demonstrations ``This sentence : "s" means in one word:"w".`` (Jiang et al., 2023)."""
    examples = DEFAULT_ICL_EXAMPLES if examples is None else examples
    demos = []
    for example in examples:
        if len(example) != 2:
            raise RecipeError(f"an ICL example is [sentence, word], got {example!r}")
        sentence, word = example
        demos.append(f'This sentence : "{sentence}" means in one word:"{word}".')
    return "".join(demos) + PROMPTEOL


def _single(template: str, **kwargs: str) -> tuple[PromptTemplate, ...]:
    return (PromptTemplate(template, **kwargs),)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("none", "the text as it is", "—", (PLAIN,)),
        Strategy(
            "instruction",
            "queries get 'Instruct: {task}\\nQuery: {text}', documents stay plain",
            "Wang et al., 2024, E5-Mistral (arXiv:2401.00368); Qwen3-Embedding (arXiv:2506.05176)",
            _single(INSTRUCTION),
            (PLAIN,),
            needs_task=True,
        ),
        Strategy(
            "prompteol",
            'This sentence : "{text}" means in one word:" — summarise into the next token',
            "Jiang et al., 2023, Scaling Sentence Embeddings with LLMs (arXiv:2307.16645)",
            _single(PROMPTEOL),
        ),
        Strategy(
            "pcoteol",
            "PromptEOL after 'After thinking step by step ,' (pretended chain of thought)",
            "Zhang et al., 2024, Simple Techniques for Enhancing Sentence Embeddings (arXiv:2404.03921)",
            _single(PCOTEOL),
        ),
        Strategy(
            "ke",
            "PromptEOL after a hint that subjects and actions carry the meaning (knowledge enhancement)",
            "Zhang et al., 2024, Simple Techniques for Enhancing Sentence Embeddings (arXiv:2404.03921)",
            _single(KE),
        ),
        Strategy(
            "metaeol",
            "8 meta-task PromptEOL variants (topic, fact, sentiment, emotion, ...); vectors averaged",
            "Lei et al., 2024, Meta-Task Prompting Elicits Embeddings from LLMs (arXiv:2402.18458)",
            tuple(PromptTemplate(t) for t in METAEOL),
        ),
        Strategy(
            "echo",
            "the text twice ('Rewrite the sentence: x, rewritten sentence: x'); pool the second copy",
            "Springer et al., 2024, Repetition Improves Language Model Embeddings (arXiv:2402.15449)",
            _single(ECHO, pool_occurrence="last"),
        ),
        Strategy(
            "icl",
            "in-context demonstrations ('... means in one word:\"Equestrian\".') before PromptEOL",
            "Jiang et al., 2023, Scaling Sentence Embeddings with LLMs (arXiv:2307.16645)",
            _single(icl_template()),
        ),
        Strategy(
            "token_prepending",
            "PromptEOL with a placeholder token before the text that receives the last token's state in early layers",
            "Fu et al., 2024, Token Prepending: A Training-Free Approach for Sentence Embeddings (arXiv:2412.11556)",
            _single(TOKEN_PREPENDING),
        ),
    )
}


def resolve_strategy(prompt: str | None, icl_examples: list[list[str]] | None = None) -> Strategy:
    """A strategy by name, or a custom one from a template string containing ``{text}``."""
    name = prompt or "none"
    if name == "icl" and icl_examples is not None:
        return Strategy("icl", STRATEGIES["icl"].summary, STRATEGIES["icl"].source, _single(icl_template(icl_examples)))
    if name in STRATEGIES:
        return STRATEGIES[name]
    if "{text}" in name:
        return Strategy("custom", "user template", "user", (PromptTemplate(name),), needs_task="{task}" in name)
    raise RecipeError(
        f"unknown prompt {name!r}: choose one of {', '.join(STRATEGIES)}, or pass a template containing {{text}}"
    )


def templates_for(strategy: Strategy, side: str, task: str | None) -> tuple[PromptTemplate, ...]:
    """The templates for ``side`` ("query", "document" or "text"). Plain ``encode`` is the query side when a
    task is known and the document side otherwise, so an instruction strategy without a task embeds plain text."""
    if side == "document" or (side == "text" and strategy.needs_task and task is None):
        return strategy.document_templates or strategy.query_templates
    if strategy.needs_task and task is None:
        raise InputError(f"prompt {strategy.name!r} needs a task description for queries: pass task=...")
    return strategy.query_templates
