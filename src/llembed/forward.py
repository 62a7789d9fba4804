"""The forward loop: prompted token batches → the backbone's hidden states → pooled vectors.

One :class:`ForwardLoop` per :class:`llembed.Embedder` holds what every pass needs (the backbone, the complete
recipe and its prompt strategy, the tokenizer of prompted texts, the batch budget and the shared-prefix cache);
the embedder and chunked pooling (:mod:`llembed.chunked`) both run their passes through it, so neither reaches
into the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from llembed import pooling as pooling_ops
from llembed.backbone import Backbone
from llembed.batching import GROUP_TEXTS, token_budget_batches
from llembed.prefix_cache import PrefixState
from llembed.prompts import PromptTemplate, Strategy, templates_for
from llembed.recipe import Recipe, resolve_layers
from llembed.tokenization import PromptTokenizer, TokenBatch, TokenizedText, collate, shared_prefix_length

DEFAULT_MAX_BATCH_TOKENS = 4096  # keeps activations of long texts bounded; short texts batch wider
MIN_PREFIX_TOKENS = 2  # shorter shared prefixes aren't worth a cache
MIN_COMPILED_PREFIX_TOKENS = 64  # with torch.compile: below this, run the prefix in the compiled pass


@dataclass(frozen=True)
class PoolSpec:
    """One way to read a vector off a forward pass: a pooling over an average of layers."""

    pooling: str
    layers: tuple[int, ...]


class ForwardLoop:
    """Passes of one complete recipe over one loaded backbone.

    ``last_stats`` counts what the current call embedded (texts, tokens, truncated texts, …): the caller resets it
    and the passes add to it.
    """

    def __init__(self, backbone: Backbone, recipe: Recipe, strategy: Strategy):
        self.backbone = backbone
        self.recipe = recipe
        self.strategy = strategy
        self.layer_ids = resolve_layers(recipe.layer, backbone.num_layers)
        self.padding_side = recipe.padding_side or backbone.tokenizer.padding_side or "right"
        self.prompt_tokenizer = PromptTokenizer(
            backbone.tokenizer,
            max_length=recipe.max_length,
            truncation=recipe.truncation,
            append_eos=pooling_ops.get_pooling(recipe.pooling).appends_eos,
        )
        self.last_stats: dict[str, float] = {}
        self.max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS
        self.prefix_cache = True
        calibrate_with = getattr(backbone, "calibrate_with", None)  # a graph backend calibrates int8 on our prompt
        if calibrate_with is not None:
            template = templates_for(strategy, "document", None)[0]
            calibrate_with(lambda texts: self.calibration_batches(texts, template), template.template)

    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def spec(self) -> PoolSpec:
        """The recipe's pooling and layers."""
        return PoolSpec(self.recipe.pooling, tuple(self.layer_ids))

    def pool_texts(
        self,
        texts: Sequence[str],
        specs: Sequence[PoolSpec],
        templates: Sequence[PromptTemplate],
        task: str | None,
        batch_size: int,
        truncation: bool | None,
        bar: tqdm,
    ) -> dict[PoolSpec, torch.Tensor]:
        """One pass per text and template (the views averaged); adds to ``last_stats``' tokens and truncated."""
        plain_means = getattr(self.backbone, "plain_means", None)  # a static model's table, read in one go
        if plain_means is not None and [t.template for t in templates] == ["{text}"] and _mean_of_layer0(specs):
            means, tokens = plain_means(texts)
            self.last_stats["tokens"] += tokens
            bar.update(len(texts))
            return {spec: means for spec in specs}
        width = self.backbone.hidden_size
        layer_ids = sorted({layer for spec in specs for layer in spec.layers})
        sums = {spec: torch.zeros((len(texts), width)) for spec in specs}
        truncated: set[int] = set()
        for template in templates:
            for start in range(0, len(texts), GROUP_TEXTS):
                chunk = texts[start : start + GROUP_TEXTS]
                items = self.prompt_tokenizer.tokenize_texts(chunk, template, task, truncation)
                truncated.update(start + i for i, item in enumerate(items) if item.truncated)
                self.last_stats["tokens"] += sum(len(item.ids) for item in items)
                prefix = self.shared_prefix(items, template, task, layer_ids)
                skip = 0 if prefix is None else prefix.length
                for rows, batch in self.batches(items, batch_size, skip):
                    hooks = self.block_hooks(template, batch, skip)
                    states = self.backbone.hidden_states(batch, layer_ids, self.recipe.bidirectional, hooks, prefix)
                    for spec in specs:
                        sums[spec][start + rows] += self.read(states, batch, template, spec).cpu()
                    bar.update(len(rows))
        self.last_stats["truncated"] += len(truncated)
        return {spec: value / len(templates) for spec, value in sums.items()}

    def states_with_grad(
        self, texts: list[str], template: PromptTemplate, task: str | None
    ) -> tuple[TokenBatch, dict[int, torch.Tensor]]:
        """One batch of texts under ``template`` through the model with autograd: its tokens and the recipe's
        layers' hidden states (no prefix cache: its keys/values would have to carry gradients too)."""
        items = self.prompt_tokenizer.tokenize_texts(texts, template, task)
        batch = collate(items, self.tokenizer.pad_token_id, self.padding_side)
        hooks = self.block_hooks(template, batch, 0)
        return batch, self.backbone.hidden_states(batch, self.layer_ids, self.recipe.bidirectional, hooks, grad=True)

    def calibration_batches(self, texts: Sequence[str], template: PromptTemplate) -> list[TokenBatch]:
        """Sentences prompted as this loop prompts them, in batches of 16 (a graph backend's int8 calibration)."""
        items = self.prompt_tokenizer.tokenize_texts(texts, template, None, True)
        pad_id = self.tokenizer.pad_token_id
        return [collate(items[i : i + 16], pad_id, self.padding_side) for i in range(0, len(items), 16)]

    def block_hooks(self, template: PromptTemplate, batch: TokenBatch, skip: int) -> list:
        """The strategy's per-block hooks for this batch (Token Prepending), none for most prompts."""
        return self.strategy.block_hooks(self.recipe, template, batch, skip, self.backbone.num_layers)

    def read(
        self, states: dict[int, torch.Tensor], batch: TokenBatch, template: PromptTemplate, spec: PoolSpec
    ) -> torch.Tensor:
        """One spec's float32 vectors from a batch's hidden states (on the model's device).

        The text's own tokens are pooled when prompts are excluded, and always for templates that repeat the
        text (echo pools the second copy); a row whose text has no token (an empty text) pools its prompt."""
        hidden = pooling_ops.average_layers(states, spec.layers)
        attention = batch.attention_mask.to(hidden.device)
        pool_mask = None
        if self.recipe.exclude_prompt or template.pool_occurrence == "last":
            text = batch.text_mask.to(hidden.device)
            pool_mask = torch.where(text.any(dim=1, keepdim=True), text, attention.bool())
        return pooling_ops.pool(spec.pooling, hidden, attention, pool_mask)

    def batches(
        self, items: list[TokenizedText], batch_size: int, prefix_length: int = 0
    ) -> Iterable[tuple[torch.Tensor, TokenBatch]]:
        """Longest first within a token budget (:attr:`max_batch_tokens`, counting only the columns that run);
        yields original row indices with each batch."""
        pad_id = self.tokenizer.pad_token_id
        lengths = [len(item.ids) - prefix_length for item in items]
        for rows in token_budget_batches(lengths, batch_size, self.max_batch_tokens):
            yield torch.tensor(rows), collate([items[i] for i in rows], pad_id, self.padding_side, prefix_length)

    def shared_prefix(
        self, items: list[TokenizedText], template: PromptTemplate, task: str | None, layer_ids: list[int]
    ) -> PrefixState | None:
        """The template's shared leading tokens, run once and reused by every batch (equal results, less work).

        Not with bidirectional attention (prefix tokens would have to see the text), nor for encoders or graph
        backends, nor with left padding on sliding-window models (pads between prefix and text would count
        towards the window).
        """
        if not (self.prefix_cache and self.backbone.is_decoder) or self.recipe.bidirectional:
            return None
        if self.backbone.prefix_cache is None:  # a compiled graph takes no keys/values from outside
            return None
        if self.padding_side == "left" and self.backbone.has_sliding_window:
            return None
        prefix_ids = self.prompt_tokenizer.prefix_ids(template, task)
        length = shared_prefix_length(items, prefix_ids)
        # a compiled model runs cache-free passes only; a short prefix costs less than leaving it
        if length < (MIN_COMPILED_PREFIX_TOKENS if self.backbone.compiled is not None else MIN_PREFIX_TOKENS):
            return None
        ids = prefix_ids[:length]
        return self.backbone.prefix_cache.get(ids, layer_ids, lambda: self.backbone.encode_prefix(ids, layer_ids))


def _mean_of_layer0(specs: Sequence[PoolSpec]) -> bool:
    return all(spec.pooling == "mean" and spec.layers == (0,) for spec in specs)
