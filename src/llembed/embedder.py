"""Embedder: the one door in. text → prompt → tokens → backbone → hidden states → pooling → vectors.

Everything else (CLI, evaluation, server, training, Ray) calls this class; only it knows the whole pipeline.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch
from tqdm.auto import tqdm

from llembed import pooling as pooling_ops
from llembed.backbone import Backbone, PrefixState
from llembed.batching import token_budget_batches
from llembed.errors import InputError, RecipeError
from llembed.model_sources import locate
from llembed.output import cosine_matrix, format_vectors
from llembed.prompts import PromptTemplate, Strategy, resolve_strategy, templates_for
from llembed.recipe import Recipe, resolve_layers
from llembed.sparse import lexical_weights, to_csr, to_token_dicts
from llembed.st_compat import sentence_transformers_defaults
from llembed.tokenization import PromptTokenizer, TokenBatch, TokenizedText, collate, shared_prefix_length

logger = logging.getLogger(__name__)

DECODER_DEFAULTS = {"prompt": "prompteol", "pooling": "last"}
CHUNK_TEXTS = 4096  # texts tokenized and length-sorted together; bounds memory on long inputs
DEFAULT_MAX_BATCH_TOKENS = 4096  # keeps activations of long texts bounded; short texts batch wider
MIN_PREFIX_TOKENS = 2  # shorter shared prefixes aren't worth a cache
MIN_COMPILED_PREFIX_TOKENS = 64  # with torch.compile: below this, run the prefix in the compiled pass
MAX_CACHED_PREFIXES = 32  # MetaEOL needs 8 at once


@dataclass(frozen=True)
class PoolSpec:
    """One way to read a vector off a forward pass: a pooling over an average of layers."""

    pooling: str
    layers: tuple[int, ...]


class Embedder:
    """An LLM (or encoder) turned into an embedding model by a :class:`Recipe`."""

    def __init__(self, backbone: Backbone, recipe: Recipe | None = None, defaults: dict[str, Any] | None = None):
        recipe = recipe or Recipe()
        fill = dict(DECODER_DEFAULTS if backbone.is_decoder else {"prompt": "none", "pooling": "mean"})
        fill.update(defaults or {})
        for key, value in fill.items():
            if getattr(recipe, key) is None:
                recipe = recipe.replace(**{key: value})
        if recipe.max_length is None:
            recipe = recipe.replace(max_length=backbone.max_positions)
        if recipe.max_length > backbone.max_positions:
            raise RecipeError(f"max_length={recipe.max_length} exceeds the model's {backbone.max_positions} positions")
        self.backbone = backbone
        self.strategy: Strategy = resolve_strategy(recipe.prompt, recipe.icl_examples)
        self.layer_ids = resolve_layers(recipe.layer, backbone.num_layers)
        if self.strategy.name == "token_prepending" and recipe.tp_layers is None:
            # the paper's Llama-2-7B setting replaces in blocks 1..7 of 32: the first quarter of the stack
            recipe = recipe.replace(tp_layers=[1, max(2, backbone.num_layers // 4)])
        if recipe.pooling == "eos" and not backbone.is_decoder:
            raise RecipeError("pooling 'eos' is for decoders; encoders have 'first' (CLS)")
        self.recipe = recipe
        self.padding_side = recipe.padding_side or backbone.tokenizer.padding_side or "right"
        self._prompt_tokenizer = PromptTokenizer(
            backbone.tokenizer,
            max_length=recipe.max_length,
            truncation=recipe.truncation,
            append_eos=recipe.pooling == "eos",
            placeholder_id=_placeholder_id(backbone.tokenizer),
        )
        self.last_stats: dict[str, float] = {}
        """Texts, prompted tokens and seconds of the last :meth:`pool` call (for efficiency reports)."""
        self.max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS
        """Padded tokens per forward pass at most (``batch_size`` caps the rows); ``None``: rows only."""
        self.prefix_cache = True
        """Compute a prompt's shared prefix once per call (see ``_shared_prefix``); off only for comparisons."""
        self._prefix_states: dict[tuple, PrefixState] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        device: str | None = None,
        threads: int | None = None,
        compile: bool = False,
        **recipe_fields: Any,
    ) -> Embedder:
        """Load ``model`` (``None`` → the bundled default, SmolLM2-135M-Instruct) with the given recipe fields.

        ``threads`` sets torch's intra-op threads (default: torch's, one per core); ``compile`` runs plain
        passes through ``torch.compile`` (minutes of compiling; measure first, see :meth:`Backbone.compile`).
        A ``llembed train`` output folder loads as its tuned recipe.
        """
        if model is not None and is_trained_output(Path(model)):
            return cls.from_recipe(
                Path(model) / "recipe.yaml", device=device, threads=threads, compile=compile, **recipe_fields
            )
        recipe = Recipe(model=None if model is None else str(model), **recipe_fields)
        return cls.from_recipe(recipe, device=device, threads=threads, compile=compile)

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe | str | os.PathLike,
        device: str | None = None,
        threads: int | None = None,
        compile: bool = False,
        **overrides: Any,
    ) -> Embedder:
        if threads is not None:
            if threads <= 0:
                raise InputError(f"threads must be positive, not {threads}")
            torch.set_num_threads(threads)
        if not isinstance(recipe, Recipe):
            recipe = Recipe.load(recipe)
        if overrides:
            recipe = recipe.replace(**overrides)
        source = locate(recipe.model)
        backbone = Backbone.load(source, dtype=recipe.dtype, device=device)
        if recipe.adapter is not None:
            from llembed.training.adapters import load_adapter

            backbone.model = load_adapter(backbone.model, recipe.adapter).eval()
        if compile:
            backbone.compile()
        defaults = {} if backbone.is_decoder else sentence_transformers_defaults(source.path)
        return cls(backbone, recipe.replace(model=recipe.model or source.name), defaults)

    def replace(self, **changes: Any) -> Embedder:
        """The same loaded backbone under a changed recipe (prompt, pooling, max_length, …): nothing reloads."""
        reload = {"model", "adapter", "dtype"} & set(changes)
        if reload:
            raise RecipeError(f"{', '.join(sorted(reload))} change the weights: load a new Embedder instead")
        other = Embedder(self.backbone, self.recipe.replace(**changes))
        other.max_batch_tokens, other.prefix_cache = self.max_batch_tokens, self.prefix_cache
        return other

    # ------------------------------------------------------------------ properties
    @property
    def tokenizer(self):
        """The Hugging Face tokenizer in use."""
        return self.backbone.tokenizer

    @property
    def dimension(self) -> int:
        return self.recipe.truncate_dim or self.backbone.hidden_size

    def __repr__(self) -> str:
        r = self.recipe
        return (
            f"Embedder(model={r.model!r}, prompt={r.prompt!r}, pooling={r.pooling!r}, layer={r.layer!r}, "
            f"bidirectional={r.bidirectional}, dim={self.dimension}, dtype={self.backbone.dtype})"
        )

    # ------------------------------------------------------------------ dense
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        normalize: bool | None = None,
        task: str | None = None,
        show_progress_bar: bool | None = None,
        side: str = "text",
    ) -> np.ndarray:
        """Embed texts → ``(n, d)`` array (``(d,)`` for a single string), in the recipe's precision."""
        single = isinstance(texts, str)
        pooled = self.pool([texts] if single else texts, [self.spec], side, task, batch_size, show_progress_bar)
        vectors = self.format(pooled[self.spec], normalize)
        return vectors[0] if single else vectors

    @property
    def spec(self) -> PoolSpec:
        """The recipe's pooling and layers."""
        return PoolSpec(self.recipe.pooling, tuple(self.layer_ids))

    def format(self, pooled: torch.Tensor, normalize: bool | None = None) -> np.ndarray:
        """Pooled float vectors → the recipe's output (Matryoshka cut, normalisation, precision)."""
        ranges = self.recipe.quantization_ranges
        return format_vectors(
            pooled,
            normalize=self.recipe.normalize if normalize is None else normalize,
            truncate_dim=self.recipe.truncate_dim,
            precision=self.recipe.precision,
            ranges=None if ranges is None else np.asarray(ranges),
        )

    def encode_stream(self, texts: Iterable[str], chunk_size: int = CHUNK_TEXTS, **kwargs: Any) -> Iterator[np.ndarray]:
        """Embed an iterator of texts chunk by chunk: memory stays flat however many texts come in.

        Yields one ``(≤ chunk_size, d)`` array per chunk, in input order; ``kwargs`` as for :meth:`encode`.
        """
        if chunk_size <= 0:
            raise InputError(f"chunk_size must be positive, not {chunk_size}")
        if isinstance(texts, str):
            raise InputError("encode_stream takes an iterable of texts, not a single string")
        iterator = iter(texts)
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield self.encode(chunk, **kwargs)

    def encode_queries(self, texts: str | Sequence[str], task: str | None = None, **kwargs: Any) -> np.ndarray:
        """Embed queries: instruction strategies put ``task`` (or the recipe's) into the prompt."""
        return self.encode(texts, task=task or self.recipe.task, side="query", **kwargs)

    def encode_documents(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray:
        """Embed documents: plain text under instruction strategies, the strategy's template otherwise."""
        return self.encode(texts, side="document", **kwargs)

    # ------------------------------------------------------------------ sparse
    def encode_sparse(
        self,
        texts: Sequence[str],
        top_k: int | None = None,
        output: str = "csr",
        batch_size: int = 32,
        side: str = "text",
        task: str | None = None,
        show_progress_bar: bool | None = None,
    ) -> scipy.sparse.csr_matrix | list[dict[str, float]]:
        """PromptReps lexical vectors ``log(1 + relu(LM-head logits))`` at the pooled position, top-k pruned.

        ``output="csr"``: a (n, vocab) scipy CSR matrix; ``output="dict"``: one ``{token: weight}`` per text.
        """
        if output not in ("csr", "dict"):
            raise InputError(f"output must be 'csr' or 'dict', not {output!r}")
        pooled = self.pool(texts, [self.spec], side, task, batch_size, show_progress_bar)
        matrix = self.sparse(pooled[self.spec], top_k)
        if output == "csr":
            return matrix
        return to_token_dicts(matrix, self.tokenizer.convert_ids_to_tokens(list(range(self.lm_vocab_size))))

    def sparse(self, pooled: torch.Tensor, top_k: int | None = None, layers: Sequence[int] | None = None):
        """Pooled states (of ``layers``, the recipe's by default) → lexical CSR matrix; no new forward pass."""
        if len(pooled) == 0:
            return to_csr(torch.zeros((0, 1)), torch.zeros((0, 1), dtype=torch.long), self.lm_vocab_size)
        values, ids = lexical_weights(
            self.lm_logits(pooled, layers or self.layer_ids), top_k or self.recipe.sparse_top_k
        )
        return to_csr(values, ids, self.lm_vocab_size)

    @property
    def lm_vocab_size(self) -> int:
        return self.backbone.lm_head().weight.shape[0]

    @torch.inference_mode()
    def lm_logits(self, pooled: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """LM-head logits of pooled states; states below the final layer get the final norm first (logit lens)."""
        head = self.backbone.lm_head()
        states = pooled.to(self.backbone.device, self.backbone.dtype)
        if max(layers) < self.backbone.num_layers:
            norm = self.backbone.final_norm()
            if norm is not None:
                states = norm(states)
        return head(states).float().cpu()

    # ------------------------------------------------------------------ the pipeline
    def pool(
        self,
        texts: Sequence[str],
        specs: Sequence[PoolSpec],
        side: str = "text",
        task: str | None = None,
        batch_size: int = 32,
        progress: bool | None = None,
    ) -> dict[PoolSpec, torch.Tensor]:
        """Un-normalised float32 vectors for every ``spec``, all read off the same forward passes.

        Several prompt views (MetaEOL) are averaged per text, as the paper does.
        """
        texts = validate_texts(texts)
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, not {batch_size}")
        for spec in specs:
            if spec.pooling == "eos" and self.recipe.pooling != "eos":
                raise RecipeError("pooling 'eos' changes tokenization: build the embedder with pooling='eos'")
        templates = templates_for(self.strategy, side, task or (self.recipe.task if side == "query" else None))
        width = self.backbone.hidden_size
        if not texts:
            return {spec: torch.zeros((0, width)) for spec in specs}
        layer_ids = sorted({layer for spec in specs for layer in spec.layers})
        total = len(texts) * len(templates)
        bar = tqdm(total=total, desc="embedding", unit="text", disable=_progress_disabled(progress, total, batch_size))
        sums = {spec: torch.zeros((len(texts), width)) for spec in specs}
        self.last_stats = {"texts": len(texts), "views": len(templates), "tokens": 0, "seconds": 0.0}
        started = time.perf_counter()
        with bar:
            for template in templates:
                for start in range(0, len(texts), CHUNK_TEXTS):
                    chunk = texts[start : start + CHUNK_TEXTS]
                    items = self._prompt_tokenizer.tokenize_texts(chunk, template, task)
                    self.last_stats["tokens"] += sum(len(item.ids) for item in items)
                    prefix = self._shared_prefix(items, template, task, layer_ids)
                    skip = 0 if prefix is None else prefix.length
                    for rows, batch in self._batches(items, batch_size, skip):
                        states = self.backbone.hidden_states(
                            batch, layer_ids, self.recipe.bidirectional, _tp(self.recipe, template), prefix
                        )
                        for spec in specs:
                            sums[spec][start + rows] += self._read(states, batch, template, spec).cpu()
                        bar.update(len(rows))
        self.last_stats["seconds"] = time.perf_counter() - started
        return {spec: value / len(templates) for spec, value in sums.items()}

    def forward(self, texts: Sequence[str], side: str = "text", task: str | None = None) -> torch.Tensor:
        """Pooled float32 vectors of one batch *with* autograd (training): the recipe's prompt, layer and
        pooling, un-normalised, no prefix cache (its keys/values would have to carry gradients too)."""
        texts = validate_texts(texts)
        templates = templates_for(self.strategy, side, task or (self.recipe.task if side == "query" else None))
        total = None
        for template in templates:
            items = self._prompt_tokenizer.tokenize_texts(texts, template, task)
            batch = collate(items, self.tokenizer.pad_token_id, self.padding_side)
            states = self.backbone.states(batch, self.layer_ids, self.recipe.bidirectional, _tp(self.recipe, template))
            vectors = self._read(states, batch, template, self.spec)
            total = vectors if total is None else total + vectors
        return total / len(templates)

    def _read(
        self, states: dict[int, torch.Tensor], batch: TokenBatch, template: PromptTemplate, spec: PoolSpec
    ) -> torch.Tensor:
        """One spec's float32 vectors from a batch's hidden states (on the model's device).

        The text's own tokens are pooled when prompts are excluded, and always for templates that repeat the
        text (echo pools the second copy)."""
        hidden = _average_layers(states, spec.layers)
        use_text = self.recipe.exclude_prompt or template.pool_occurrence == "last"
        return pooling_ops.pool(
            spec.pooling,
            hidden,
            batch.attention_mask.to(hidden.device),
            batch.text_mask.to(hidden.device) if use_text else None,
        )

    def _batches(
        self, items: list[TokenizedText], batch_size: int, prefix_length: int = 0
    ) -> Iterable[tuple[torch.Tensor, TokenBatch]]:
        """Longest first within a token budget (:attr:`max_batch_tokens`, counting only the columns that run);
        yields original row indices with each batch."""
        pad_id = self.tokenizer.pad_token_id
        lengths = [len(item.ids) - prefix_length for item in items]
        for rows in token_budget_batches(lengths, batch_size, self.max_batch_tokens):
            yield torch.tensor(rows), collate([items[i] for i in rows], pad_id, self.padding_side, prefix_length)

    def _shared_prefix(
        self, items: list[TokenizedText], template: PromptTemplate, task: str | None, layer_ids: list[int]
    ) -> PrefixState | None:
        """The template's shared leading tokens, run once and reused by every batch (equal results, less work).

        Not with bidirectional attention (prefix tokens would have to see the text), nor for encoders, nor with
        left padding on sliding-window models (pads between prefix and text would count towards the window).
        """
        if not (self.prefix_cache and self.backbone.is_decoder) or self.recipe.bidirectional:
            return None
        if self.padding_side == "left" and self.backbone.has_sliding_window:
            return None
        prefix_ids = self._prompt_tokenizer.prefix_ids(template, task)
        length = shared_prefix_length(items, prefix_ids)
        # a compiled model runs cache-free passes only; a short prefix costs less than leaving it
        if length < (MIN_COMPILED_PREFIX_TOKENS if self.backbone.compiled is not None else MIN_PREFIX_TOKENS):
            return None
        key = (tuple(prefix_ids[:length]), tuple(layer_ids))
        if key not in self._prefix_states:
            if len(self._prefix_states) >= MAX_CACHED_PREFIXES:
                self._prefix_states.pop(next(iter(self._prefix_states)))
            self._prefix_states[key] = self.backbone.encode_prefix(prefix_ids[:length], layer_ids)
        return self._prefix_states[key]

    # ------------------------------------------------------------------ similarity & calibration
    def to_float(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors of the recipe's precision as float32 (packed binary unpacked to ±1)."""
        return _as_float(np.atleast_2d(vectors), self.recipe.precision)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix ``(len(a), len(b))``; packed binary vectors are compared as ±1 vectors."""
        return cosine_matrix(self.to_float(a), self.to_float(b))

    def calibrate(self, texts: Sequence[str], **kwargs: Any) -> Recipe:
        """Fix int8/uint8 ranges from ``texts`` in the recipe, so each text's code no longer depends on its batch."""
        float_recipe = self.recipe.replace(precision="float32")
        saved, self.recipe = self.recipe, float_recipe
        try:
            vectors = self.encode(list(texts), **kwargs)
        finally:
            self.recipe = saved
        ranges = np.stack([vectors.min(axis=0), vectors.max(axis=0)]).tolist()
        self.recipe = self.recipe.replace(quantization_ranges=ranges)
        return self.recipe

    def save_sentence_transformers(self, path: str | Path) -> Path:
        """Export as a sentence-transformers folder (where ST can express the recipe)."""
        from llembed.st_compat import export_sentence_transformers

        return export_sentence_transformers(self, Path(path))


def validate_texts(texts: Any) -> list[str]:
    """A list of non-empty strings, or a clear error naming the first bad item."""
    if isinstance(texts, str):
        texts = [texts]
    if texts is None:
        raise InputError("texts is None: pass a list of strings")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        texts = list(texts)
    except TypeError as exc:
        raise InputError(f"texts must be a list of strings, not {type(texts).__name__}") from exc
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {index} is {type(text).__name__}, not str: {text!r:.60}")
        if not text.strip():
            raise InputError(f"text {index} is empty: an empty text has no meaning to embed")
    return texts


def is_trained_output(path: Path) -> bool:
    """A ``llembed train`` output folder: a recipe beside an adapter or model, no config.json of its own."""
    return path.is_dir() and (path / "recipe.yaml").is_file() and not (path / "config.json").is_file()


def _placeholder_id(tokenizer) -> int:
    """Token Prepending's placeholder: its input embedding only matters below the first replaced block."""
    for candidate in (tokenizer.unk_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if candidate is not None:
            return candidate
    return 0


def _tp(recipe: Recipe, template: PromptTemplate) -> tuple[int, int] | None:
    if recipe.tp_layers is None or "{pst}" not in template.template:
        return None
    return (recipe.tp_layers[0], recipe.tp_layers[1])


def _average_layers(states: dict[int, torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    if len(layers) == 1:
        return states[layers[0]]
    return torch.stack([states[layer].float() for layer in layers]).mean(dim=0)


def _progress_disabled(progress: bool | None, total: int, batch_size: int) -> bool:
    if progress is None:
        return total <= 4 * batch_size
    return not progress


def _as_float(array: np.ndarray, precision: str) -> np.ndarray:
    if precision in ("binary", "ubinary") and array.dtype in (np.uint8, np.int8):
        packed = (array.astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else array
        bits = np.unpackbits(packed, axis=1)
        return bits.astype(np.float32) * 2 - 1
    return array.astype(np.float32)
