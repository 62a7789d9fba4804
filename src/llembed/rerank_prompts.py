"""Reranking prompts: one registry, :data:`RERANK_PROMPTS`, of the ways a causal LM judges a (query, document)
pair. An ``answer`` prompt asks a yes/no question; the score is read off the logits of the two answer words at the
prompt's last token. A ``likelihood`` prompt puts the document first and scores how much it raises the model's
probability of the query (query likelihood, UPR: Sachan et al., 2022), per query token.

A prompt renders to three token pieces: the *head* (instruction and query — the same for all of a query's
documents, so it is run once and its keys/values reused), the document, and the *tail* (the question and,
for chat models, the assistant turn's opening). The pieces are tokenized apart, so the head's tokens are the
same whatever document follows. A custom template is a string holding ``{query}`` before ``{document}``
(optionally ``{task}``); it is used as written, without a chat template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from llembed.errors import InputError, RecipeError

DEFAULT_TASK = "Given a search query, judge whether the document is relevant to it"
_FIELD = re.compile(r"\{(query|document|task)\}")
_QUERY, _DOCUMENT = "\x00llembed-query\x00", "\x00llembed-document\x00"


@dataclass(frozen=True)
class RerankPrompt:
    name: str
    summary: str
    user: str
    """The question, holding ``{query}`` before ``{document}`` (and optionally ``{task}``)."""
    labels: tuple[str, str]
    """The answer words (relevant, not relevant); the score is ``logit(labels[0]) - logit(labels[1])``."""
    system: str | None = None
    chat: bool = False
    """Wrap the question in the tokenizer's chat template (the answer comes as the assistant's first token)."""
    scoring: str = "answer"
    """``answer``: the yes/no logit difference; ``likelihood``: the query's log-probability after the document."""


RERANK_PROMPTS: dict[str, RerankPrompt] = {
    prompt.name: prompt
    for prompt in (
        RerankPrompt(
            "chat",
            "instruct models: a system rule, then instruction, query and document as the user turn (Qwen3-Reranker)",
            "<Instruct>: {task}\n<Query>: {query}\n<Document>: {document}",
            ("yes", "no"),
            system='Judge whether the Document meets the requirements of the Query and the Instruct. Answer only "yes" '
            'or "no".',
            chat=True,
        ),
        RerankPrompt(
            "plain",
            "base models: instruction, query, document and the question as plain text, answered after 'Answer:'",
            "{task}\nQuery: {query}\nDocument: {document}\nIs the document relevant to the query? Answer yes or "
            "no.\nAnswer:",
            (" yes", " no"),
        ),
        RerankPrompt(
            "ab",
            "FlagEmbedding's LLM rerankers: 'A: query, B: passage', answered Yes or No",
            "A: {query}\nB: {document}\nGiven a query A and a passage B, determine whether the passage contains an "
            "answer to the query by providing a prediction of either 'Yes' or 'No'.\n",
            ("Yes", "No"),
        ),
        RerankPrompt(
            "likelihood",
            "any model: the document, then a request to write a query for it; the score is the mean log-probability "
            "the document adds to each query token (UPR's query likelihood)",
            "Passage: {document}\nPlease write a query based on this passage.\nQuery: {query}",
            ("", ""),
            scoring="likelihood",
        ),
    )
}
"""Named reranking prompts (``rerank_prompt`` in a recipe); ``None`` picks ``chat`` for models with a chat
template and ``plain`` for the others."""


def check_rerank_prompt(prompt: str) -> None:
    """A recipe's ``rerank_prompt``: a registry name, or a template with ``{query}`` before ``{document}``."""
    if prompt in RERANK_PROMPTS:
        return
    fields = _FIELD.findall(prompt)
    if "{query}" not in prompt or "{document}" not in prompt:
        raise RecipeError(
            f"unknown rerank_prompt {prompt!r}: choose one of {', '.join(RERANK_PROMPTS)}, or pass a template "
            "holding {query} and {document}"
        )
    if fields.index("document") < fields.index("query"):
        raise RecipeError("rerank_prompt must put {query} before {document}: the query is the shared, cached part")


@dataclass(frozen=True)
class RenderedPrompt:
    """One query's prompt around any document: ``head_ids + document ids + tail_ids``; for a ``likelihood``
    prompt the query comes last, as ``query_ids`` after the tail (and the head holds no query)."""

    head_ids: list[int]
    tail_ids: list[int]
    label_ids: tuple[int, int] | None
    query_ids: list[int] = field(default_factory=list)


def resolve_rerank_prompt(prompt: str | None, labels: list[str] | None, tokenizer) -> RerankPrompt:
    """The prompt a recipe names (``None``: ``chat`` when the tokenizer has a chat template, else ``plain``)."""
    if prompt is None:
        prompt = "chat" if getattr(tokenizer, "chat_template", None) else "plain"
    if prompt in RERANK_PROMPTS:
        found = RERANK_PROMPTS[prompt]
    else:
        check_rerank_prompt(prompt)
        found = RerankPrompt("custom", "user template", prompt, (" yes", " no"))
    if found.chat and not getattr(tokenizer, "chat_template", None):
        raise RecipeError(f"rerank_prompt {found.name!r} needs a chat template, which this tokenizer lacks: use plain")
    if labels is not None:
        if found.scoring != "answer":
            raise RecipeError(f"rerank_labels apply to yes/no prompts; {found.name!r} scores the query's likelihood")
        found = replace(found, labels=(labels[0], labels[1]))
    return found


def render(prompt: RerankPrompt, query: str, task: str, tokenizer, special_prefix: list[int]) -> RenderedPrompt:
    """Token ids of the prompt's head (with ``query`` and ``task``) and tail, and of its two answer words."""
    if prompt.scoring == "likelihood":
        return _render_likelihood(prompt, query, task, tokenizer, special_prefix)
    values = {"query": _QUERY, "document": _DOCUMENT, "task": task}
    user = _FIELD.sub(lambda match: values[match.group(1)], prompt.user)
    if prompt.chat:
        messages = [{"role": "user", "content": user}]
        if prompt.system:
            messages.insert(0, {"role": "system", "content": prompt.system})
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        special: list[int] = []  # the chat template writes its own special tokens
    else:
        text = user
        special = list(special_prefix)
    head, _, tail = text.partition(_DOCUMENT)
    head = head.replace(_QUERY, query)
    encode = tokenizer(
        [head, tail] if tail else [head], add_special_tokens=False
    )["input_ids"]  # fmt: skip
    return RenderedPrompt(special + encode[0], encode[1] if tail else [], label_ids(prompt.labels, tokenizer))


def label_ids(labels: tuple[str, str], tokenizer) -> tuple[int, int]:
    """The token ids of the two answer words (each must be one token, and the two must differ)."""
    ids = []
    for label in labels:
        tokens = tokenizer(label, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise InputError(f"the answer {label!r} is {len(tokens)} tokens for this tokenizer; it must be one")
        ids.append(tokens[0])
    if ids[0] == ids[1]:
        raise InputError(f"the answers {labels[0]!r} and {labels[1]!r} are the same token")
    return ids[0], ids[1]


def _render_likelihood(prompt: RerankPrompt, query: str, task: str, tokenizer, special_prefix: list[int]):
    """Head (before the document), tail (between document and query) and the query's own tokens; the space before
    ``{query}`` goes with the query, as a tokenizer would join them in running text."""
    text = prompt.user.replace("{task}", task)
    head, _, rest = text.partition("{document}")
    middle, _, after = rest.partition("{query}")
    if after:
        raise RecipeError(f"a likelihood prompt must end with {{query}}, not {after!r}")
    stripped = middle.rstrip(" ")
    encode = tokenizer([head, stripped, middle[len(stripped) :] + query], add_special_tokens=False)["input_ids"]
    if not encode[2]:
        raise InputError("the query has no tokens: an empty query cannot be scored")
    return RenderedPrompt(list(special_prefix) + encode[0], encode[1], None, encode[2])
