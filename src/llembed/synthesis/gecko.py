"""The Gecko recipe (Lee et al., 2024, arXiv:2403.20327): from a user's own passages, an LLM writes a query per
passage (plain text, which even a 135M model manages; Gecko also has it write a task description, which
our training batches don't need); an embedder retrieves candidates for the query; the LLM ranks them, and the
best becomes the positive (which may not be the source passage) and a lower one the hard negative.

Ranking: a local generator scores each candidate by query likelihood, log p(query | passage), the LM-native
relevance signal; an endpoint (no prompt log-probabilities over chat completions) rates relevance 0–3 instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llembed.generation import GenerationSettings, LocalGenerator
from llembed.output import unit_rows
from llembed.synthesis.parsing import Drops, extract_json, normalized
from llembed.synthesis.store import SynthesisStore

QUERY_PROMPT = (
    "Passage: {passage}\n\n"
    "Write one search query, a short question of 5 to 15 words, that this passage answers. "
    "Reply with the query only."
)
LIKELIHOOD_CONTEXT = "Passage: {passage}\nA search query this passage answers:"
RATING_PROMPT = (
    "Query: {query}\nPassage: {passage}\n\nHow well does the passage answer the query? Answer with one number: "
    "0 (not at all), 1 (barely), 2 (partly), 3 (fully)."
)


# a label a small model puts before its query: "Query:", "Search query:", "A question to answer the passage:"
LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:(?:a|the|one|here is a|here's a)\s+)?(?:short\s+)?(?:search\s+)?(?:query|question)\b"
    r"[^:：?\n]{0,40}[:：]\s*(?:\*\*)?",
    re.IGNORECASE,
)


@dataclass
class GeckoOptions:
    candidates: int = 4
    """Passages retrieved per query (the source passage is always among them)."""
    negative_rank: int = 2
    """0-based rank (after LLM ranking) of the hard negative."""
    max_attempts: int = 2
    batch: int = 16
    max_passage_words: int = 150


def _clip(text: str, words: int) -> str:
    parts = text.split()
    return " ".join(parts[:words])


def _rate(generator, query: str, passages: Sequence[str]) -> list[float]:
    if isinstance(generator, LocalGenerator):
        contexts = [LIKELIHOOD_CONTEXT.format(passage=p) for p in passages]
        return generator.log_likelihood(contexts, [" " + query] * len(passages))
    replies = generator.chat(
        [[{"role": "user", "content": RATING_PROMPT.format(query=query, passage=p)}] for p in passages],
        GenerationSettings(max_new_tokens=4, temperature=0.0),
    )
    ratings = []
    for reply in replies:
        match = re.search(r"[0-3]", reply)
        ratings.append(float(match.group()) if match else 0.0)
    return ratings


def synthesize_gecko(
    generator, store: SynthesisStore, passages: dict[str, str], embedder, options: GeckoOptions, progress=None
) -> Drops:
    state = store.load_state()
    drops = Drops.from_dict(state.get("drops", {}))
    ids = list(passages)
    texts = [_clip(passages[i], options.max_passage_words) for i in ids]
    documents = unit_rows(embedder.to_float(embedder.encode_documents(texts)))
    seen = {normalized(r["query"]) for r in store.kept.records}
    pending = [(key, i) for key, i in ((f"gecko:{pid}", n) for n, pid in enumerate(ids)) if key not in store.done]
    attempts = dict.fromkeys((key for key, _ in pending), 0)
    settings = GenerationSettings(max_new_tokens=40, temperature=0.7)
    while pending:
        batch, pending = pending[: options.batch], pending[options.batch :]
        replies = generator.chat(
            [[{"role": "user", "content": QUERY_PROMPT.format(passage=texts[i])}] for _, i in batch], settings
        )
        for (key, source), reply in zip(batch, replies, strict=True):
            attempts[key] += 1
            query, reason = _check_query(_query_from_reply(reply), texts[source], seen)
            if query is None:
                drops.drop(reason)
                if attempts[key] < options.max_attempts:
                    pending.append((key, source))
                else:
                    store.drop(key, reason, reply)
                continue
            similarity = documents @ unit_rows(embedder.to_float(embedder.encode_queries([query])))[0]
            ranked = [int(j) for j in np.argsort(-similarity, kind="stable")[: options.candidates]]
            if source not in ranked:
                ranked = ranked[:-1] + [source]
            scores = _rate(generator, query, [texts[j] for j in ranked])
            order = [ranked[j] for j in np.argsort(-np.asarray(scores), kind="stable")]
            positive, negative = order[0], order[min(options.negative_rank, len(order) - 1)]
            if normalized(texts[positive]) == normalized(texts[negative]):
                drops.drop("positive equals negative")
                store.drop(key, "positive equals negative", reply)
                continue
            seen.add(normalized(query))
            store.keep(
                key,
                {
                    "query": query,
                    "positive": passages[ids[positive]],
                    "negatives": [passages[ids[negative]]],
                    "task": "gecko",
                },
                meta={
                    "source": ids[source],
                    "positive_id": ids[positive],
                    "negative_id": ids[negative],
                    "positive_is_source": positive == source,
                },
            )
            drops.kept += 1
            if progress:
                progress(1)
        store.save_state({"recipe": "gecko", "drops": drops.to_dict()})
    return drops


def _query_from_reply(reply: str) -> str | None:
    """The query in a reply: a JSON ``query`` field if there is one, else the first line, minus labels/quotes."""
    fields = extract_json(reply)
    if fields is not None and isinstance(fields.get("query"), str):
        return fields["query"]
    for line in reply.splitlines():
        line = LABEL.sub("", line)
        line = line.strip().strip('"').strip("'").strip()
        if line:
            return line
    return None


def _check_query(query: str | None, passage: str, seen: set[str]) -> tuple[str | None, str | None]:
    if query is None or not query.strip():
        return None, "empty reply"
    query = query.strip()
    words = len(query.split())
    if words < 3:
        return None, "too short"
    if words > 40:
        return None, "too long"
    if normalized(query) in normalized(passage):
        return None, "query copied from the passage"
    if normalized(query) in seen:
        return None, "duplicate"
    return query, None
