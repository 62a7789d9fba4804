"""Embedder: the one door in. text → prompt → tokens → backbone → hidden states → pooling → vectors.

Everything else (CLI, evaluation, server, training, Ray) calls this class; only it knows the whole pipeline.
The tensor code lives below it: the forward loop over batches (``forward.py``), pooling (``pooling.py``), the
model's pass (``backbone.py``), the shared
prefix (``prefix_cache.py``), output formats (``output.py``) and the LM-head lexical weights (``sparse.py``);
what a model name means is ``resolve.py``'s business.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse
import torch
from tqdm.auto import tqdm

from llembed import pooling as pooling_ops
from llembed.backbone import Backbone
from llembed.backends import load_backbone
from llembed.batching import GROUP_TEXTS
from llembed.chunked import ChunkedTexts, TextChunks, first_chunks, pool_chunks
from llembed.chunking import chunking_of
from llembed.errors import InputError, RecipeError
from llembed.forward import DEFAULT_MAX_BATCH_TOKENS, ForwardLoop, PoolSpec
from llembed.output import as_float, cosine_matrix, format_vectors
from llembed.prompts import PromptTemplate, Strategy, resolve_strategy, templates_for
from llembed.recipe import FIELD_ROLES, Recipe
from llembed.resolve import Resolved, resolve
from llembed.sparse import lexical_weights, lm_logits, to_csr, to_token_dicts
from llembed.thinking import Thinker, make_thinker
from llembed.tokenization import PromptTokenizer

Side = Literal["text", "query", "document"]
SIDES: tuple[str, ...] = ("text", "query", "document")
DECODER_DEFAULTS = {"prompt": "prompteol", "pooling": "last", "normalize": True}
ENCODER_DEFAULTS = {"prompt": "none", "pooling": "mean", "normalize": True}
CHUNKED_GROUP_TEXTS = 256  # long texts chunked and averaged together: bounds the chunks held at once
__all__ = ["DEFAULT_MAX_BATCH_TOKENS", "Embedder", "PoolSpec", "validate_texts"]  # PoolSpec: llembed.forward's


class Embedder:
    """An LLM (or encoder) turned into an embedding model by a :class:`Recipe`.

    The recipe is fixed for the embedder's life (:attr:`recipe` is read-only); :meth:`replace` gives another
    embedder on the same loaded backbone.
    """

    def __init__(self, backbone: Backbone, recipe: Recipe | None = None, defaults: Mapping[str, Any] | None = None):
        recipe, strategy = _complete(backbone, recipe or Recipe(), defaults or {})
        self.backbone = backbone
        self.strategy: Strategy = strategy
        self.loop = ForwardLoop(backbone, recipe, strategy)
        """The forward passes of this recipe (:mod:`llembed.forward`)."""

    @property
    def recipe(self) -> Recipe:
        """The complete recipe (defaults filled in); change it with :meth:`replace`."""
        return self.loop.recipe

    @property
    def layer_ids(self) -> list[int]:
        """The recipe's layers, resolved against this backbone."""
        return self.loop.layer_ids

    @property
    def padding_side(self) -> str:
        return self.loop.padding_side

    @property
    def prompt_tokenizer(self) -> PromptTokenizer:
        return self.loop.prompt_tokenizer

    @property
    def last_stats(self) -> dict[str, float]:
        """Texts, prompted tokens, empty and truncated texts, seconds of the last :meth:`pool` call."""
        return self.loop.last_stats

    @last_stats.setter
    def last_stats(self, value: dict[str, float]) -> None:
        self.loop.last_stats = value

    @property
    def max_batch_tokens(self) -> int | None:
        """Padded tokens per forward pass at most (``batch_size`` caps the rows); ``None``: rows only."""
        return self.loop.max_batch_tokens

    @max_batch_tokens.setter
    def max_batch_tokens(self, value: int | None) -> None:
        self.loop.max_batch_tokens = value

    @property
    def prefix_cache(self) -> bool:
        """Compute a prompt's shared prefix once (:meth:`ForwardLoop.shared_prefix`); off only for comparisons."""
        return self.loop.prefix_cache

    @prefix_cache.setter
    def prefix_cache(self, value: bool) -> None:
        self.loop.prefix_cache = value

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        device: str | None = None,
        threads: int | None = None,
        compile: bool = False,
        *,
        recipe: Recipe | str | os.PathLike | None = None,
        **recipe_fields: Any,
    ) -> Embedder:
        """Load ``model`` (``None`` → the bundled default, SmolLM2-135M-Instruct) with the given recipe fields.

        ``model`` is anything :func:`llembed.resolve.resolve` understands: an alias, a folder, a ``.gguf`` file,
        a cached hub id, a ``llembed train`` run or a recipe file. ``recipe`` (a :class:`Recipe` or its file) is
        the base the fields override. ``threads`` sets torch's intra-op threads; ``compile`` runs final-layer
        passes through ``torch.compile`` (minutes of compiling; measure first, see :meth:`Backbone.compile`).
        """
        return cls.load(resolve(model, recipe, **recipe_fields), device=device, threads=threads, compile=compile)

    @classmethod
    def from_recipe(
        cls,
        recipe: Recipe | str | os.PathLike,
        device: str | None = None,
        threads: int | None = None,
        compile: bool = False,
        **overrides: Any,
    ) -> Embedder:
        """Load the embedder a recipe (or recipe file) describes; ``overrides`` change its fields."""
        return cls.from_pretrained(None, device, threads, compile, recipe=recipe, **overrides)

    @classmethod
    def load(
        cls, resolved: Resolved, device: str | None = None, threads: int | None = None, compile: bool = False
    ) -> Embedder:
        """Load a resolved model (see :func:`llembed.resolve.resolve`)."""
        recipe = resolved.recipe
        backbone = load_backbone(resolved.source, recipe, device, threads)
        if compile:
            backbone.compile()
        return cls(backbone, recipe, resolved.defaults)

    def replace(self, **changes: Any) -> Embedder:
        """The same loaded backbone under a changed recipe (prompt, pooling, max_length, …): nothing reloads."""
        reload = set(FIELD_ROLES["weights"]) & set(changes)
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
            f"bidirectional={r.bidirectional}, dim={self.dimension}, dtype={self.backbone.dtype_name})"
        )

    # ------------------------------------------------------------------ dense
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        normalize: bool | None = None,
        task: str | None = None,
        show_progress_bar: bool | None = None,
        side: Side = "text",
    ) -> np.ndarray:
        """Embed texts → ``(n, d)`` array (``(d,)`` for a single string), in the recipe's precision."""
        single = isinstance(texts, str)
        pooled = self.pool([texts] if single else texts, [self.spec], side, task, batch_size, show_progress_bar)
        vectors = self.format(pooled[self.spec], normalize)
        return vectors[0] if single else vectors

    @property
    def spec(self) -> PoolSpec:
        """The recipe's pooling and layers."""
        return self.loop.spec

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

    def encode_stream(self, texts: Iterable[str], chunk_size: int = GROUP_TEXTS, **kwargs: Any) -> Iterator[np.ndarray]:
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
        output: Literal["csr", "dict"] = "csr",
        batch_size: int = 32,
        side: Side = "text",
        task: str | None = None,
        show_progress_bar: bool | None = None,
    ) -> scipy.sparse.csr_matrix | list[dict[str, float]]:
        """PromptReps lexical vectors ``log(1 + relu(LM-head logits))`` at the pooled position, top-k pruned.

        ``output="csr"``: a (n, vocab) scipy CSR matrix; ``output="dict"``: one ``{token: weight}`` per text.
        """
        if output not in ("csr", "dict"):
            raise InputError(f"output must be 'csr' or 'dict', not {output!r}")
        pooled = self.pool(texts, self.lexical_specs(), side, task, batch_size, show_progress_bar)
        matrix = self.sparse(pooled, top_k)
        if output == "csr":
            return matrix
        return to_token_dicts(matrix, self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer)))))

    def specs(self, sparse: bool = False) -> list[PoolSpec]:
        """What :meth:`pool` must read for the dense vector (:attr:`spec`) and, with ``sparse``, for :meth:`sparse`."""
        return list(dict.fromkeys([self.spec, *(self.lexical_specs() if sparse else [])]))

    def lexical_specs(self) -> list[PoolSpec]:
        """The specs :meth:`sparse` reads: one per pooled layer (each layer has its own logit lens)."""
        return [PoolSpec(self.recipe.pooling, (layer,)) for layer in self.layer_ids]

    def sparse(self, pooled: Mapping[PoolSpec, torch.Tensor], top_k: int | None = None) -> scipy.sparse.csr_matrix:
        """Pooled states of :meth:`lexical_specs` → lexical CSR matrix; no new forward pass."""
        specs = self.lexical_specs()
        if len(pooled[specs[0]]) == 0:
            return to_csr(torch.zeros((0, 1)), torch.zeros((0, 1), dtype=torch.long), self.lm_vocab_size)
        logits = self.lm_logits({spec.layers[0]: pooled[spec] for spec in specs})
        values, ids = lexical_weights(logits, top_k or self.recipe.sparse_top_k, len(self.tokenizer))
        return to_csr(values, ids, self.lm_vocab_size)

    @property
    def lm_vocab_size(self) -> int:
        return self.backbone.lm_head().weight.shape[0]

    def lm_logits(self, pooled_by_layer: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """LM-head logits of per-layer pooled states (logit lens below the final layer, then averaged)."""
        return lm_logits(self.backbone, pooled_by_layer)

    # ------------------------------------------------------------------ the pipeline
    def pool(
        self,
        texts: Sequence[str],
        specs: Sequence[PoolSpec],
        side: Side = "text",
        task: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        strict: bool = True,
    ) -> dict[PoolSpec, torch.Tensor]:
        """Un-normalised float32 vectors for every ``spec``, all read off the same forward passes.

        Several prompt views (MetaEOL) are averaged per text, as the paper does. ``strict=False`` is for real
        corpora, as mteb scores them: an empty text is embedded as the model sees it (its prompt, or a lone EOS
        token) and an over-long one is cut at ``max_length``; ``last_stats`` counts both. Under a recipe's
        ``chunking`` a text's vector is the mean of its chunks' (see :mod:`llembed.chunked`).
        """
        for spec in specs:
            if (
                pooling_ops.get_pooling(spec.pooling).appends_eos
                != pooling_ops.get_pooling(self.recipe.pooling).appends_eos
            ):
                raise RecipeError(f"pooling {spec.pooling!r} tokenizes differently: build an embedder with it")
        texts, templates = self._prepare(texts, side, task, batch_size, allow_empty=not strict)
        if not texts:
            return {spec: torch.zeros((0, self.backbone.hidden_size)) for spec in specs}
        started = time.perf_counter()
        chunking = chunking_of(self.recipe.chunking, side)
        if chunking == "first":  # the first chunk of each text, in one plain pass
            texts = first_chunks(self.loop, texts, templates, task)
        if chunking in ("none", "first"):
            total = len(texts) * len(templates)
            disabled = _progress_disabled(show_progress_bar, total, batch_size)
            with tqdm(total=total, desc="embedding", unit="text", disable=disabled) as bar:
                pooled = self.loop.pool_texts(texts, specs, templates, task, batch_size, None if strict else True, bar)
        else:
            late = chunking == "late"
            pooled = self._pool_chunked_means(texts, specs, templates, task, batch_size, show_progress_bar, late)
        self.last_stats["seconds"] = time.perf_counter() - started
        return pooled

    def encode_chunks(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        normalize: bool | None = None,
        side: Side = "document",
        task: str | None = None,
        show_progress_bar: bool | None = None,
    ) -> list[TextChunks]:
        """Each text's chunks (``chunk_tokens`` tokens, ``chunk_overlap`` shared) with their character spans and
        vectors, for retrieval over passages of long documents (RAG).

        Under ``chunking: late`` a chunk's vector is read off the whole text's states (it has seen its context);
        otherwise each chunk is embedded on its own. A text shorter than a chunk is one chunk.
        """
        chunked = self.pool_chunks(texts, [self.spec], side, task, batch_size, show_progress_bar)
        vectors = self.format(chunked.pooled[self.spec], normalize)
        return chunked.split(vectors, len(texts))

    def pool_chunks(
        self,
        texts: Sequence[str],
        specs: Sequence[PoolSpec],
        side: Side = "document",
        task: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
    ) -> ChunkedTexts:
        """Un-normalised float32 chunk vectors for every spec, with each chunk's text and span (see
        :meth:`encode_chunks`); empty texts are one chunk, embedded as :meth:`pool` with ``strict=False`` does."""
        texts, templates = self._prepare(texts, side, task, batch_size, allow_empty=True)
        started = time.perf_counter()
        late = chunking_of(self.recipe.chunking, side) == "late"
        chunked = pool_chunks(self.loop, texts, specs, templates, task, batch_size, show_progress_bar, late)
        self.last_stats |= {"chunks": len(chunked.owners), "seconds": time.perf_counter() - started}
        return chunked

    def _pool_chunked_means(self, texts, specs, templates, task, batch_size, show_progress_bar, late: bool):
        """Each text's mean chunk vector, a group of texts at a time: memory holds one group's chunks, however
        many texts (and chunks) come in."""
        pooled = {spec: torch.zeros((len(texts), self.backbone.hidden_size)) for spec in specs}
        self.last_stats["chunks"] = 0
        # a few long documents are minutes of work: the bar shows when there are many texts or much text
        work = max(len(texts), sum(len(text) for text in texts) // 2000)
        disabled = _progress_disabled(show_progress_bar, work, batch_size)
        one_group = len(texts) <= CHUNKED_GROUP_TEXTS  # then the bar counts its chunks (or windows)
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=disabled or one_group) as bar:
            for start in range(0, len(texts), CHUNKED_GROUP_TEXTS):
                group = texts[start : start + CHUNKED_GROUP_TEXTS]
                inner = not disabled and one_group
                chunked = pool_chunks(self.loop, group, specs, templates, task, batch_size, inner, late)
                for spec, means in chunked.text_means(len(group)).items():
                    pooled[spec][start : start + len(group)] = means
                self.last_stats["chunks"] += len(chunked.owners)
                bar.update(len(group))
        return pooled

    @functools.cached_property
    def thinker(self) -> Thinker | None:
        """The recipe's ``think`` generator (``None`` without one), built on first use."""
        return make_thinker(self.recipe, self.backbone) if self.recipe.think else None

    def _think(self, texts: list[str], side: Side, task: str | None) -> list[str]:
        """Queries followed by their generated rationale under a ``think`` recipe; other texts as they are."""
        if side != "query" or self.thinker is None:
            return texts
        expanded = self.thinker.expand(texts, task or self.recipe.task)
        self.last_stats |= self.thinker.last_stats
        return expanded

    def _prepare(
        self, texts: Sequence[str], side: Side, task: str | None, batch_size: int, allow_empty: bool
    ) -> tuple[list[str], tuple[PromptTemplate, ...]]:
        """What every pooling call starts with: checked texts (queries followed by their rationale under
        ``think``), the side's templates, and ``last_stats`` reset."""
        texts = validate_texts(texts, allow_empty=allow_empty)
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, not {batch_size}")
        templates = templates_for(self.strategy, side, task or (self.recipe.task if side == "query" else None))
        empty = sum(1 for text in texts if not text.strip())
        self.last_stats = {"texts": len(texts), "views": len(templates), "tokens": 0, "seconds": 0.0}
        self.last_stats |= {"empty": empty, "truncated": 0}
        return (self._think(texts, side, task) if texts else texts), templates

    def forward(self, texts: Sequence[str], side: Side = "text", task: str | None = None) -> torch.Tensor:
        """Pooled float32 vectors of one batch *with* autograd (training): the recipe's prompt, layer and
        pooling, un-normalised, no prefix cache (its keys/values would have to carry gradients too)."""
        texts = validate_texts(texts)
        templates = templates_for(self.strategy, side, task or (self.recipe.task if side == "query" else None))
        total = None
        for template in templates:
            batch, states = self.loop.states_with_grad(texts, template, task)
            vectors = self.loop.read(states, batch, template, self.spec)
            total = vectors if total is None else total + vectors
        return total / len(templates)

    def forward_tokens(
        self, texts: Sequence[str], side: Side = "text", task: str | None = None, width: int | None = None
    ) -> torch.Tensor:
        """Each text token's float32 state *with* autograd (late-interaction training): ``(len(texts), width,
        hidden)``, a row's text tokens first in order and zero rows after them (prompt tokens and padding left
        out; a zero row is how the loss tells padding). ``width`` defaults to ``max_length``; longer texts are
        cut to it. The states are those :func:`llembed.multivector.embed_multivector`'s token unit reads."""
        texts = validate_texts(texts)
        templates = templates_for(self.strategy, side, task or (self.recipe.task if side == "query" else None))
        if len(templates) > 1:
            raise RecipeError(f"prompt {self.recipe.prompt!r} has {len(templates)} views: token vectors take one")
        width = width or self.recipe.max_length
        batch, states = self.loop.states_with_grad(texts, templates[0], task)
        hidden = pooling_ops.average_layers(states, self.layer_ids).float()
        keep = (batch.text_mask & batch.attention_mask.bool()).to(hidden.device)
        # a stable sort brings each row's text tokens to the front in their order; the rest become zero rows
        order = torch.sort(keep.int(), dim=1, descending=True, stable=True).indices
        gathered = hidden.gather(1, order.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        gathered = gathered * keep.gather(1, order).unsqueeze(-1)
        if gathered.shape[1] < width:
            gathered = torch.nn.functional.pad(gathered, (0, 0, 0, width - gathered.shape[1]))
        return gathered[:, :width]

    # ------------------------------------------------------------------ similarity & calibration
    def to_float(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors of the recipe's precision as float32 (packed binary unpacked to ±1)."""
        return as_float(np.atleast_2d(vectors), self.recipe.precision)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity matrix ``(len(a), len(b))``; packed binary vectors are compared as ±1 vectors."""
        return cosine_matrix(self.to_float(a), self.to_float(b))

    def calibrate(self, texts: Sequence[str], **kwargs: Any) -> Embedder:
        """An embedder whose int8/uint8 ranges are fixed from ``texts``, so a text's code no longer depends on
        its batch (the ranges go into its recipe). ``kwargs`` as for :meth:`pool` (``side``, ``batch_size``)."""
        pooled = self.pool(list(texts), [self.spec], **kwargs)[self.spec]
        vectors = format_vectors(
            pooled, normalize=self.recipe.normalize, truncate_dim=self.recipe.truncate_dim, precision="float32"
        )
        ranges = np.stack([vectors.min(axis=0), vectors.max(axis=0)]).tolist()
        return self.replace(quantization_ranges=ranges)


def validate_texts(texts: Any, allow_empty: bool = False) -> list[str]:
    """A list of strings (non-empty unless ``allow_empty``), or a clear error naming the first bad item."""
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
        if not allow_empty and not text.strip():
            raise InputError(f"text {index} is empty: an empty text has no meaning to embed")
    return texts


def _complete(backbone: Backbone, recipe: Recipe, model_defaults: Mapping[str, Any]) -> tuple[Recipe, Strategy]:
    """Fill the recipe's ``None`` fields: the model folder's own defaults, then the decoder / encoder defaults,
    then the strategy's (Token Prepending's blocks), then the model's length limit. Returns the strategy too."""
    fill = dict(DECODER_DEFAULTS if backbone.is_decoder else ENCODER_DEFAULTS) | dict(model_defaults)
    changes = {key: value for key, value in fill.items() if getattr(recipe, key) is None}
    recipe = recipe.replace(**changes) if changes else recipe
    strategy = resolve_strategy(recipe.prompt, recipe.icl_examples)
    changes = {k: v for k, v in strategy.recipe_defaults(backbone.num_layers).items() if getattr(recipe, k) is None}
    if recipe.max_length is None:
        changes["max_length"] = backbone.max_positions
    recipe = recipe.replace(**changes) if changes else recipe
    if recipe.max_length > backbone.max_positions:
        raise RecipeError(f"max_length={recipe.max_length} exceeds the model's {backbone.max_positions} positions")
    if pooling_ops.get_pooling(recipe.pooling).decoder_only and not backbone.is_decoder:
        raise RecipeError(f"pooling {recipe.pooling!r} is for decoders; encoders have 'first' (CLS)")
    return recipe, strategy


def _progress_disabled(show_progress_bar: bool | None, total: int, batch_size: int) -> bool:
    if show_progress_bar is None:
        return total <= 4 * batch_size
    return not show_progress_bar
