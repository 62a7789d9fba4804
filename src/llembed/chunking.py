"""Long texts: where a text's chunks are, and which windows late chunking runs them in. Pure planning, no model.

A chunk is ``chunk_tokens`` consecutive tokens of the text alone (no prompt), consecutive chunks sharing
``chunk_overlap`` tokens; it is kept as a character span so any tokenization of a window that holds it finds
its tokens again. :data:`CHUNKINGS` is the one registry of what a recipe's ``chunking`` may be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

ChunkingName = Literal["none", "mean", "late", "first", "auto"]
CHUNKINGS: dict[str, str] = {
    "none": "one pass per text: over-long texts are rejected, or cut with truncation",
    "mean": "split over-long texts into token windows, embed each with its prompt on its own, average",
    "late": "run the whole text (in windows of max_length), pool each chunk's tokens from the contextual states,"
    " average",
    "first": "documents and other texts read as their first chunk (FirstP), queries as `mean`; chunks of 256 "
    "tokens by default",
    "auto": "per collection (index build, eval): `first` when the median document fits one chunk, `none` (read "
    "whole, cut at the window) up to 4 chunks, `mean` beyond; on its own, `none`",
}
DEFAULT_CHUNK_TOKENS = 512
SHORT_CHUNK_TOKENS = 256
"""``first`` and ``auto``'s default chunk: what ``examples/diagnose_long.py`` measured
(``examples/results/long-documents``)."""


def chunking_of(chunking: str, side: str) -> str:
    """What texts of ``side`` get under a recipe's ``chunking``: ``first`` reads queries as the mean of their
    chunks and everything else as its first chunk; an unresolved ``auto`` is ``none``."""
    if chunking == "first":
        return "mean" if side == "query" else "first"
    return "none" if chunking == "auto" else chunking


MEAN_FROM_CHUNKS = 4
"""``auto`` reads a collection's documents as chunk means when their median length exceeds this many chunks."""


def choose_chunking(document_tokens: Sequence[int], chunk_tokens: int = SHORT_CHUNK_TOKENS) -> str:
    """``auto``'s choice for a collection, from its documents' token counts (text alone): ``first`` when the
    median document fits one chunk (the long tail is read by its start; queries as chunk means), ``none`` (each
    document read whole, cut at the window) when it is longer but within :data:`MEAN_FROM_CHUNKS` chunks, and
    ``mean`` beyond (a first chunk is then a small part of a document).

    Measured with smollm2-135m-tuned (``examples/results/long-documents``, nDCG@10): AILA statutes (median ~200
    tokens, long case descriptions as queries): ``first`` 26.55 end to end against 22.86 with both sides cut at
    256 and 20.24 read whole; NFCorpus (median ~185): first chunks are truncation at 256, 21.07 against 20.58
    read whole; SciFact's abstracts (median ~300; 50 queries, 502 documents): read whole 66.29 against 58.92
    cut at 256; AILA case documents (median ~4,500): chunk means 21.10 against 14.56 cut at 256.
    """
    if not document_tokens:
        return "first"
    median = float(np.median(document_tokens))
    if median > MEAN_FROM_CHUNKS * chunk_tokens:
        return "mean"
    return "none" if median > chunk_tokens else "first"


@dataclass(frozen=True)
class ChunkPlan:
    """One text's chunks: token ranges of the text alone and the character spans they cover."""

    token_spans: tuple[tuple[int, int], ...]
    char_spans: tuple[tuple[int, int], ...]
    num_tokens: int


@dataclass(frozen=True)
class Window:
    """A stretch of the text run in one forward pass, and the chunks pooled from it."""

    token_span: tuple[int, int]
    char_span: tuple[int, int]
    chunks: tuple[int, ...]


def chunk_token_spans(num_tokens: int, chunk_tokens: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges covering ``num_tokens``: full chunks, the last one possibly shorter.

    A text no longer than one chunk is one chunk; an empty text is one empty chunk (it still gets a vector).
    """
    if chunk_tokens <= 0 or not 0 <= overlap < chunk_tokens:
        raise ValueError(f"need 0 <= overlap < chunk_tokens, got {overlap} and {chunk_tokens}")
    if num_tokens <= chunk_tokens:
        return [(0, num_tokens)]
    stride = chunk_tokens - overlap
    spans = []
    start = 0
    while True:
        end = min(start + chunk_tokens, num_tokens)
        spans.append((start, end))
        if end == num_tokens:
            return spans
        start += stride


def plan_chunks(offsets: Sequence[tuple[int, int]], text_length: int, chunk_tokens: int, overlap: int) -> ChunkPlan:
    """Chunks of a text from its tokens' character offsets (the tokenizer's, without special tokens)."""
    token_spans = chunk_token_spans(len(offsets), chunk_tokens, overlap)
    if not offsets:
        return ChunkPlan(tuple(token_spans), ((0, text_length),), 0)
    char_spans = tuple((offsets[start][0], offsets[end - 1][1]) for start, end in token_spans)
    return ChunkPlan(tuple(token_spans), char_spans, len(offsets))


def plan_windows(plan: ChunkPlan, offsets: Sequence[tuple[int, int]], text_length: int, window: int) -> list[Window]:
    """Windows of at most ``window`` text tokens that hold every chunk whole, for late chunking.

    A text that fits is one window: the whole text, as a plain pass would run it. Otherwise each window starts
    at the first chunk the previous one could not hold whole, carrying some of the text before it as context
    (half the window's spare room, at most two chunks' worth), so a causal model's chunk always sees some of
    what precedes it; each chunk is pooled from the first window that holds it whole. Compute stays within
    twice the text's tokens.
    """
    if plan.num_tokens <= window:
        return [Window((0, plan.num_tokens), (0, text_length), tuple(range(len(plan.token_spans))))]
    longest = max(end - start for start, end in plan.token_spans)
    if longest > window:
        raise ValueError(f"a chunk of {longest} tokens does not fit a window of {window}")
    context = min((window - longest) // 2, 2 * longest)
    windows: list[Window] = []
    chunk = 0
    while chunk < len(plan.token_spans):
        first_token = plan.token_spans[chunk][0]
        start = max(0, first_token - context) if windows else 0
        end = min(start + window, plan.num_tokens)
        held = []
        while chunk < len(plan.token_spans) and plan.token_spans[chunk][1] <= end:
            held.append(chunk)
            chunk += 1
        char_span = (offsets[start][0], offsets[end - 1][1])
        windows.append(Window((start, end), char_span, tuple(held)))
    return windows
