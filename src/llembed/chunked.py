"""Chunked pooling of long texts (a recipe's ``chunking``): every chunk's vector, and each text's mean of them.

``mean``: every chunk is a text of its own, prompted and embedded alone; it sees nothing outside itself.
``late`` (late chunking, Günther et al. 2024): the whole text runs through the model once — in windows of
``max_length`` when it is longer (:func:`llembed.chunking.plan_windows`) — and each chunk pools its own tokens
from those contextual states. Under causal attention a chunk's states have seen the text before it (as far
as its window reaches) and nothing after it; with ``bidirectional`` they see the whole window both ways.

A text's first and last chunk take the prompt around the text the way a plain pass pools it, so a text that
is one chunk gets exactly its plain vector under either mode.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from llembed import pooling as pooling_ops
from llembed.batching import GROUP_TEXTS
from llembed.chunking import (
    DEFAULT_CHUNK_TOKENS,
    SHORT_CHUNK_TOKENS,
    ChunkPlan,
    Window,
    choose_chunking,
    plan_chunks,
    plan_windows,
)
from llembed.errors import RecipeError
from llembed.forward import ForwardLoop, PoolSpec
from llembed.prompts import PromptTemplate
from llembed.recipe import Recipe

WINDOW_MARGIN = 4  # a window's text re-tokenized on its own may come out a token or two longer
POOL_ROWS_TOKENS = 1 << 16  # chunk rows × columns pooled at once: bounds the copies of a long window's states


@dataclass
class TextChunks:
    """One text's chunks: character ``[start, end)`` spans in the text and their vectors, in text order."""

    spans: list[tuple[int, int]]
    vectors: np.ndarray

    def texts(self, text: str) -> list[str]:
        """The chunks' own text, cut from the text they came from."""
        return [text[start:end] for start, end in self.spans]


@dataclass
class ChunkedTexts:
    """Pooled chunk vectors (un-normalised float32) in text order, each with its text's index and its span."""

    pooled: dict[PoolSpec, torch.Tensor]
    owners: list[int]
    spans: list[tuple[int, int]]

    def split(self, rows: np.ndarray, count: int) -> list[TextChunks]:
        """Per-chunk ``rows`` (e.g. formatted vectors) grouped into each of the ``count`` texts' chunks."""
        bounds = np.searchsorted(np.asarray(self.owners), np.arange(count + 1))
        return [TextChunks(self.spans[a:b], rows[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def text_means(self, count: int) -> dict[PoolSpec, torch.Tensor]:
        """Each text's vector: the mean of its chunks' vectors."""
        owners = torch.tensor(self.owners, dtype=torch.long)
        counts = torch.bincount(owners, minlength=count).clamp(min=1).unsqueeze(1).float()
        return {
            spec: torch.zeros((count, vectors.shape[1])).index_add_(0, owners, vectors) / counts
            for spec, vectors in self.pooled.items()
        }


def chunk_sizes(loop: ForwardLoop, templates: Sequence[PromptTemplate], task: str | None) -> tuple[int, int]:
    """``(chunk_tokens, window)``: the recipe's chunk size, and the text tokens one pass holds with the prompt."""
    recipe = loop.recipe
    rooms = []
    for template in templates:
        overhead, copies = loop.prompt_tokenizer.prompt_overhead(template, task)
        rooms.append((recipe.max_length - overhead) // copies - WINDOW_MARGIN)
    window = min(rooms)
    if window <= 0:
        raise RecipeError(f"the prompt leaves no room for text within max_length={recipe.max_length}")
    default = SHORT_CHUNK_TOKENS if recipe.chunking in ("first", "auto") else DEFAULT_CHUNK_TOKENS
    chunk = recipe.chunk_tokens or min(default, window)
    if chunk > window:
        raise RecipeError(
            f"chunk_tokens={chunk} is larger than the model's window: max_length={recipe.max_length} leaves "
            f"{window} tokens for the text beside its prompt"
        )
    if recipe.chunk_overlap >= chunk:
        raise RecipeError(f"chunk_overlap={recipe.chunk_overlap} must be smaller than chunk_tokens={chunk}")
    return chunk, window


RESOLVE_SAMPLE = 2000
"""Documents whose lengths decide ``chunking: auto`` (a random sample of a larger collection, fixed seed)."""


class Rechunkable(Protocol):
    """What choosing ``auto``'s chunking reads of an :class:`llembed.Embedder` (a protocol, so this module stays
    below the embedder that uses it)."""

    @property
    def recipe(self) -> Recipe: ...

    @property
    def tokenizer(self) -> Any: ...

    def replace(self, **changes: Any) -> Any: ...


E = TypeVar("E", bound=Rechunkable)


def resolve_chunking(embedder: E, documents: Sequence[str]) -> E:
    """An embedder whose ``chunking: auto`` is chosen for this collection of ``documents``
    (:func:`llembed.chunking.choose_chunking`: ``first``, ``none`` or ``mean`` by their median length), chunks of
    ``chunk_tokens`` or 256 (``none``: read whole, cut at ``max_length``); any other recipe comes back as it is."""
    recipe = embedder.recipe
    if recipe.chunking != "auto":
        return embedder
    rng = np.random.default_rng(0)
    picked = list(documents)
    if len(picked) > RESOLVE_SAMPLE:
        picked = [picked[i] for i in sorted(rng.choice(len(picked), RESOLVE_SAMPLE, replace=False))]
    lengths = [len(ids) for ids in embedder.tokenizer(picked, add_special_tokens=False, verbose=False)["input_ids"]]
    return with_chunking(embedder, choose_chunking(lengths, recipe.chunk_tokens or SHORT_CHUNK_TOKENS))


def with_chunking(embedder: E, chunking: str) -> E:
    """The embedder with ``auto``'s choice made: ``none`` reads texts whole, cut at ``max_length``; ``first`` and
    ``mean`` take chunks of the recipe's ``chunk_tokens`` or 256."""
    if chunking == "none":
        return embedder.replace(chunking="none", chunk_tokens=None, truncation=True)
    return embedder.replace(chunking=chunking, chunk_tokens=embedder.recipe.chunk_tokens or SHORT_CHUNK_TOKENS)


def first_chunks(loop: ForwardLoop, texts: Sequence[str], templates: Sequence[PromptTemplate], task: str | None):
    """Each text cut after its first chunk's last token (FirstP); a text of one chunk as it is."""
    chunk, _ = chunk_sizes(loop, templates, task)
    encoded = loop.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [
        text if len(offsets) <= chunk else text[: offsets[chunk - 1][1]]
        for text, offsets in zip(texts, encoded["offset_mapping"], strict=True)
    ]


def pool_chunks(
    loop: ForwardLoop,
    texts: Sequence[str],
    specs: Sequence[PoolSpec],
    templates: Sequence[PromptTemplate],
    task: str | None,
    batch_size: int,
    show_progress_bar: bool | None,
    late: bool,
) -> ChunkedTexts:
    """Every text's chunk vectors for every spec (views averaged), independent (``late=False``) or late."""
    chunk, window = chunk_sizes(loop, templates, task)
    overlap = loop.recipe.chunk_overlap
    encoded = loop.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [[tuple(pair) for pair in row] for row in encoded["offset_mapping"]]
    plans = [plan_chunks(row, len(text), chunk, overlap) for row, text in zip(offsets, texts, strict=True)]
    owners = [index for index, plan in enumerate(plans) for _ in plan.char_spans]
    spans = [span if len(plans[i].char_spans) > 1 else (0, len(texts[i])) for i, span in _chunks(plans)]
    if not late:
        pieces = [texts[i][a:b] if len(plans[i].char_spans) > 1 else texts[i] for i, (a, b) in _chunks(plans)]
        total = len(pieces) * len(templates)
        with _bar(total, batch_size, show_progress_bar, "chunks") as bar:
            pooled = loop.pool_texts(pieces, specs, templates, task, batch_size, True, bar)
        return ChunkedTexts(pooled, owners, spans)
    windows = [(i, w) for i, plan in enumerate(plans) for w in plan_windows(plan, offsets[i], len(texts[i]), window)]
    first_chunk = np.cumsum([0] + [len(plan.char_spans) for plan in plans]).tolist()
    sums = {spec: torch.zeros((len(owners), loop.backbone.hidden_size)) for spec in specs}
    with _bar(len(windows) * len(templates), batch_size, show_progress_bar, "windows") as bar:
        for template in templates:
            _late_pass(loop, texts, plans, windows, first_chunk, specs, template, task, batch_size, sums, bar)
    return ChunkedTexts({spec: value / len(templates) for spec, value in sums.items()}, owners, spans)


def _chunks(plans: Sequence[ChunkPlan]):
    return ((index, span) for index, plan in enumerate(plans) for span in plan.char_spans)


def _bar(total: int, batch_size: int, show: bool | None, unit: str) -> tqdm:
    disabled = total <= 4 * batch_size if show is None else not show
    return tqdm(total=total, desc="embedding", unit=unit, disable=disabled)


def _late_pass(
    loop: ForwardLoop,
    texts: Sequence[str],
    plans: Sequence[ChunkPlan],
    windows: Sequence[tuple[int, Window]],
    first_chunk: Sequence[int],
    specs: Sequence[PoolSpec],
    template: PromptTemplate,
    task: str | None,
    batch_size: int,
    sums: dict[PoolSpec, torch.Tensor],
    bar: tqdm,
) -> None:
    """Run every window under one template; add each chunk's pooled vector to ``sums``."""
    recipe = loop.recipe
    whole_rows = not pooling_ops.get_pooling(recipe.pooling).uses_pool_mask
    # the text's outer chunks pool the prompt around it exactly as a plain pass would
    take_prompt = whole_rows or not (recipe.exclude_prompt or template.pool_occurrence == "last")
    layer_ids = sorted({layer for spec in specs for layer in spec.layers})
    for start in range(0, len(windows), GROUP_TEXTS):
        group = windows[start : start + GROUP_TEXTS]
        window_texts = [_window_text(texts[i], w, plans[i]) for i, w in group]
        items = loop.prompt_tokenizer.tokenize_texts(window_texts, template, task, True, offsets=True)
        loop.last_stats["tokens"] += sum(len(item.ids) for item in items)
        loop.last_stats["truncated"] += sum(item.truncated for item in items)
        ranges = []  # per window: (global chunk index, first token, end token) in the window's own tokens
        for (index, w), text, item in zip(group, window_texts, items, strict=True):
            text_at = template.render(text, task).pooled_spans[-1][0] - w.char_span[0]
            last = len(plans[index].char_spans) - 1
            found = []
            assert item.offsets is not None
            starts, ends = [s for s, _ in item.offsets], [e for _, e in item.offsets]
            for chunk in w.chunks:
                a, b = plans[index].char_spans[chunk]
                first, end = _token_range(starts, ends, text_at + a, text_at + b)
                first = 0 if (take_prompt and chunk == 0) else first
                end = len(item.ids) if (take_prompt and chunk == last) else end
                found.append((first_chunk[index] + chunk, first, end))
            ranges.append(found)
        prefix = loop.shared_prefix(items, template, task, layer_ids)
        skip = 0 if prefix is None else prefix.length
        for rows, batch in loop.batches(items, batch_size, skip):
            hooks = loop.block_hooks(template, batch, skip)
            states = loop.backbone.hidden_states(batch, layer_ids, recipe.bidirectional, hooks, prefix)
            lengths = [len(items[r].ids) for r in rows.tolist()]
            chunk_ids, row_ids, masks = _chunk_masks(batch, lengths, ranges, rows, skip, loop.padding_side)
            for spec in specs:
                hidden = pooling_ops.average_layers(states, spec.layers)
                sums[spec][chunk_ids] += _pool_masks(spec.pooling, hidden, batch, row_ids, masks, whole_rows).cpu()
            bar.update(len(rows))


def _window_text(text: str, window: Window, plan: ChunkPlan) -> str:
    whole = window.token_span == (0, plan.num_tokens)
    return text if whole else text[window.char_span[0] : window.char_span[1]]


def _token_range(starts: list[int], ends: list[int], start: int, end: int) -> tuple[int, int]:
    """The tokens whose characters overlap ``[start, end)`` (offsets rise along the prompt); none: the whole row."""
    first = bisect_right(ends, start)
    stop = bisect_left(starts, end)
    if end <= start or first >= stop:
        return 0, len(starts)
    return first, stop


def _chunk_masks(batch, lengths: list[int], ranges, rows: torch.Tensor, skip: int, padding_side: str):
    """Each chunk's columns in the padded batch, placed as :func:`llembed.tokenization.collate` placed its
    tokens (left padding sits between a cached prefix and the rest)."""
    width = batch.input_ids.shape[1]
    chunk_ids, row_ids, masks = [], [], []
    for row, (window, length) in enumerate(zip(rows.tolist(), lengths, strict=True)):
        for chunk, first, end in ranges[window]:
            columns = torch.arange(first, end)
            if padding_side == "left":
                columns[columns >= skip] += width - length
            mask = torch.zeros(width, dtype=torch.bool)
            mask[columns] = True
            chunk_ids.append(chunk)
            row_ids.append(row)
            masks.append(mask)
    return torch.tensor(chunk_ids), torch.tensor(row_ids), torch.stack(masks)


def _pool_masks(name: str, hidden, batch, row_ids: torch.Tensor, masks: torch.Tensor, whole_rows: bool):
    """Pool each chunk's columns of its row, as :func:`llembed.pooling.pool` pools a row by its pool mask."""
    attention = batch.attention_mask.to(hidden.device)
    masks = masks.to(hidden.device) & attention[row_ids].bool()
    if len(masks) and bool((masks.sum(dim=1) == 1).all()):  # chunks of one token (multi-vector): its state
        return hidden[row_ids.to(hidden.device), masks.int().argmax(dim=1)].float()
    step = max(1, POOL_ROWS_TOKENS // hidden.shape[1])
    out = []
    for start in range(0, len(row_ids), step):
        rows, mask = row_ids[start : start + step], masks[start : start + step]
        if whole_rows:  # last / first token: the chunk's own last / first token
            out.append(pooling_ops.pool(name, hidden[rows], mask.long()))
        else:
            out.append(pooling_ops.pool(name, hidden[rows], attention[rows], mask))
    return torch.cat(out)
