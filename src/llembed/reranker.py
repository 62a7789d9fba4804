"""Reranker: any causal LM as a pointwise reranker. A prompt asks whether a document is relevant to a query;
the score is ``logit(yes) - logit(no)`` of the answer at the prompt's last token (FlagEmbedding's and
Qwen3-Reranker's recipe), ``sigmoid`` of it the probability of "yes" between the two. A ``likelihood`` prompt
instead scores how much the document raises the model's log-probability of the query, per query token.

The instruction and query are the prompt's head, the same for every document of one query: it is run once and
its keys/values are reused by every batch of documents (``prefix_cache``; equal scores, less work). ``layer``
below the final one exits early: that layer's state goes through the final norm and the LM head (logit lens).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from llembed.backbone import Backbone
from llembed.backends import load_backbone
from llembed.batching import token_budget_batches
from llembed.embedder import DEFAULT_MAX_BATCH_TOKENS, Embedder, validate_texts
from llembed.errors import InputError, RecipeError
from llembed.prefix_cache import PrefixState
from llembed.recipe import FIELD_ROLES, Recipe, resolve_layers
from llembed.rerank_calibration import calibrated
from llembed.rerank_prompts import DEFAULT_TASK, RenderedPrompt, label_ids, render, resolve_rerank_prompt
from llembed.resolve import Resolved, resolve
from llembed.sparse import lens_logits, lm_logits
from llembed.tokenization import PromptTokenizer, TokenizedText, collate

LOGIT_ELEMENTS = 1 << 25
"""Full-vocabulary logits computed at once by a likelihood prompt (128 MiB of float32)."""


class Reranker:
    """A causal LM scoring (query, document) pairs by its yes/no answer. Built from a :class:`Recipe`: ``model``,
    ``adapter``, ``dtype``, ``layer``, ``max_length``, ``truncation``, ``task`` (the instruction),
    ``rerank_prompt`` and ``rerank_labels`` apply; the embedding fields do not."""

    def __init__(self, backbone: Backbone, recipe: Recipe | None = None) -> None:
        if not backbone.is_decoder:
            raise RecipeError(f"{backbone.name} is an encoder: reranking reads a causal LM's answer logits")
        recipe = recipe or Recipe()
        if recipe.max_length is None:
            recipe = recipe.replace(max_length=backbone.max_positions)
        if recipe.max_length > backbone.max_positions:
            raise RecipeError(f"max_length={recipe.max_length} exceeds the model's {backbone.max_positions} positions")
        self.backbone = backbone
        self.recipe = recipe
        self.prompt = resolve_rerank_prompt(recipe.rerank_prompt, recipe.rerank_labels, backbone.tokenizer)
        self.likelihood = self.prompt.scoring == "likelihood"
        """Score by the query's likelihood after the document, not by a yes/no answer."""
        self.label_ids = None if self.likelihood else label_ids(self.prompt.labels, backbone.tokenizer)
        """The token ids of the two answer words (relevant, not relevant); ``None`` for a likelihood prompt."""
        self.layer_ids = resolve_layers(recipe.layer, backbone.num_layers)
        self.padding_side = recipe.padding_side or backbone.tokenizer.padding_side or "right"
        self._special_prefix = PromptTokenizer(backbone.tokenizer, recipe.max_length).prefix_ids_special
        self.max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS
        """Padded tokens per forward pass at most, not counting the cached head."""
        self.prefix_cache = True
        """Run a query's head once for all its documents; off only for comparisons."""
        self.last_stats: dict[str, float] = {}
        """Documents, prompt tokens, tokens computed (without the cached heads), truncated documents, seconds."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        device: str | None = None,
        threads: int | None = None,
        *,
        recipe: Recipe | str | os.PathLike | None = None,
        **recipe_fields: Any,
    ) -> Reranker:
        """Load ``model`` (``None``: the bundled default) as a reranker; ``model`` is anything
        :func:`llembed.resolve` understands, LoRA adapters and trained runs included."""
        return cls.load(resolve(model, recipe, **recipe_fields), device=device, threads=threads)

    @classmethod
    def load(cls, resolved: Resolved, device: str | None = None, threads: int | None = None) -> Reranker:
        # a reranker's passes end in the LM head and reuse the prompt's prefix: torch runs them whatever the backend
        return cls(load_backbone(resolved.source, resolved.recipe, device, threads, graphs=False), resolved.recipe)

    @classmethod
    def of(cls, embedder: Embedder, **recipe_fields: Any) -> Reranker:
        """A reranker on an embedder's loaded model (nothing reloads); it keeps the model, adapter and dtype, and
        takes the reranking defaults (final layer, documents cut to fit) for the rest unless given."""
        kept = {key: getattr(embedder.recipe, key) for key in FIELD_ROLES["weights"]}
        return cls(embedder.backbone, Recipe(**(kept | {"truncation": True} | recipe_fields)))

    @property
    def tokenizer(self):
        return self.backbone.tokenizer

    @property
    def task(self) -> str:
        """The instruction put in every prompt (the recipe's ``task``, else a general relevance one)."""
        return self.recipe.task or DEFAULT_TASK

    def __repr__(self) -> str:
        return f"Reranker(model={self.recipe.model!r}, prompt={self.prompt.name!r}, layer={self.recipe.layer!r})"

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        query: str,
        documents: Sequence[str],
        task: str | None = None,
        batch_size: int = 32,
        normalize: bool = False,
        show_progress_bar: bool | None = None,
    ) -> list[float]:
        """One score per document, in document order: ``logit(yes) - logit(no)``, or with ``normalize`` the
        probability of relevance (:meth:`probabilities`). ``task`` replaces the instruction."""
        ids = self.document_ids(documents)
        return self.score_tokenized(query, ids, task, batch_size, normalize, show_progress_bar)

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        return_documents: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """``{"index", "score"[, "document"]}`` of the best ``top_n`` documents (all by default), best first;
        ``kwargs`` as for :meth:`score`."""
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n <= 0):
            raise InputError(f"top_n must be a positive integer, not {top_n!r}")
        scores = self.score(query, documents, **kwargs)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_n]
        return [
            {"index": i, "score": scores[i], **({"document": documents[i]} if return_documents else {})} for i in order
        ]

    def score_pairs(self, pairs: Sequence[tuple[str, str]], **kwargs: Any) -> list[float]:
        """Scores of (query, document) pairs in pair order (sentence-transformers' ``CrossEncoder.predict``);
        pairs of one query share its cached head."""
        grouped: dict[str, list[int]] = {}
        for index, pair in enumerate(pairs):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InputError(f"pair {index} must be (query, document), not {pair!r:.60}")
            grouped.setdefault(pair[0], []).append(index)
        scores = [0.0] * len(pairs)
        for query, indices in grouped.items():
            for index, value in zip(indices, self.score(query, [pairs[i][1] for i in indices], **kwargs), strict=True):
                scores[index] = value
        return scores

    def document_ids(self, documents: Sequence[str]) -> list[list[int]]:
        """The documents' token ids (what :meth:`score_tokenized` takes; a server counts them once)."""
        documents = validate_texts(documents)
        if not documents:
            raise InputError("documents is empty: pass at least one document to score")
        return self.tokenizer(documents, add_special_tokens=False)["input_ids"]

    def score_tokenized(
        self,
        query: str,
        document_ids: Sequence[Sequence[int]],
        task: str | None = None,
        batch_size: int = 32,
        normalize: bool = False,
        show_progress_bar: bool | None = None,
    ) -> list[float]:
        """:meth:`score` of already tokenized documents."""
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"query must be a non-empty string, not {query!r:.60}")
        if batch_size <= 0:
            raise InputError(f"batch_size must be positive, not {batch_size}")
        started = time.perf_counter()
        rendered = render(self.prompt, query, task or self.task, self.tokenizer, self._special_prefix)
        self.last_stats = {"documents": len(document_ids), "tokens": 0, "computed_tokens": 0, "truncated": 0}
        items = [self._prompt_ids(rendered, list(ids), i) for i, ids in enumerate(document_ids)]
        if self.likelihood:
            scores = self._likelihood_scores(rendered, items, batch_size, show_progress_bar)
            self.last_stats["seconds"] = time.perf_counter() - started
            return self.probabilities(scores.tolist()) if normalize else scores.tolist()
        prefix = self._head_state(rendered) if self.prefix_cache else None
        skip = 0 if prefix is None else prefix.length
        scores = torch.zeros(len(items))
        pad_id = self.tokenizer.pad_token_id
        lengths = [len(item) - skip for item in items]
        disabled = (len(items) <= 4 * batch_size) if show_progress_bar is None else not show_progress_bar
        with tqdm(total=len(items), desc="reranking", unit="doc", disable=disabled) as bar:
            for rows in token_budget_batches(lengths, batch_size, self.max_batch_tokens):
                batch = collate([TokenizedText(items[i], [False] * len(items[i])) for i in rows], pad_id,
                                self.padding_side, skip)  # fmt: skip
                states = self.backbone.hidden_states(batch, self.layer_ids, prefix=prefix)
                last = batch.last_index.to(self.backbone.device)
                picked = {layer: states[layer][torch.arange(len(rows)), last] for layer in self.layer_ids}
                logits = self._softcap(lm_logits(self.backbone, picked, rendered.label_ids))
                scores[torch.tensor(rows)] = logits[:, 0] - logits[:, 1]
                self.last_stats["computed_tokens"] += sum(lengths[i] for i in rows)
                bar.update(len(rows))
        self.last_stats["tokens"] = sum(len(item) for item in items)
        self.last_stats["seconds"] = time.perf_counter() - started
        return self.probabilities(scores.tolist()) if normalize else scores.tolist()

    def probabilities(self, scores: Sequence[float]) -> list[float]:
        """Raw scores → probabilities of relevance, comparable across queries: ``sigmoid(scale · score + bias)``
        with the recipe's ``rerank_calibration``, else the sigmoid of the yes/no logit difference itself."""
        return calibrated(scores, self.recipe.rerank_calibration)

    def forward(self, queries: Sequence[str], documents: Sequence[Sequence[str]], task: str | None = None):
        """Scores ``(len(queries), n)`` of each query's ``n`` documents *with* autograd (training): one batch, no
        cached head (its keys/values would have to carry gradients too), documents cut to fit ``max_length``."""
        rows: list[list[int]] = []
        self.last_stats = {"documents": sum(len(group) for group in documents), "truncated": 0}
        if self.likelihood:
            scores = []
            for query, group in zip(queries, documents, strict=True):
                rendered = render(self.prompt, query, task or self.task, self.tokenizer, self._special_prefix)
                items = [self._prompt_ids(rendered, ids, i, cut=True) for i, ids in enumerate(self.document_ids(group))]
                baseline = self._query_log_likelihood([self._prompt_ids(rendered, [], -1)], rendered.query_ids)
                scores.append(self._query_log_likelihood(items, rendered.query_ids, grad=True) - baseline)
            return torch.stack(scores)
        for query, group in zip(queries, documents, strict=True):
            rendered = render(self.prompt, query, task or self.task, self.tokenizer, self._special_prefix)
            rows += [self._prompt_ids(rendered, ids, i, cut=True) for i, ids in enumerate(self.document_ids(group))]
        batch = collate([TokenizedText(ids, [False] * len(ids)) for ids in rows], self.tokenizer.pad_token_id,
                        self.padding_side)  # fmt: skip
        states = self.backbone.hidden_states(batch, self.layer_ids, grad=True)
        last = batch.last_index.to(self.backbone.device)
        picked = {layer: states[layer][torch.arange(len(rows)), last] for layer in self.layer_ids}
        logits = self._softcap(lens_logits(self.backbone, picked, self.label_ids).float())
        return (logits[:, 0] - logits[:, 1]).view(len(queries), -1)

    # ------------------------------------------------------------------ helpers
    def _prompt_ids(self, rendered: RenderedPrompt, document: list[int], index: int, cut: bool = False) -> list[int]:
        """head + document + tail, the document cut to fit ``max_length`` under ``truncation`` or ``cut`` (else an
        error)."""
        if not document and index >= 0:  # index -1: a likelihood prompt's document-free baseline
            raise InputError(f"document {index} has no tokens: an empty document cannot be judged")
        around = len(rendered.head_ids) + len(rendered.tail_ids) + len(rendered.query_ids)
        room = self.recipe.max_length - around
        if room <= 0:
            raise InputError(
                f"the query and prompt take {around} tokens, leaving no room for a document under "
                f"max_length={self.recipe.max_length}"
            )
        if len(document) > room:
            if not (self.recipe.truncation or cut):
                raise InputError(
                    f"document {index} is {len(document)} tokens; with the query and prompt only {room} fit under "
                    f"max_length={self.recipe.max_length}: shorten it, raise max_length, or pass truncation=True"
                )
            document = document[:room]
            self.last_stats["truncated"] += 1
        return rendered.head_ids + document + rendered.tail_ids + rendered.query_ids

    def _likelihood_scores(
        self, rendered: RenderedPrompt, items: list[list[int]], batch_size: int, show_progress_bar: bool | None
    ) -> torch.Tensor:
        """Per document: the query's mean log-probability per token after it, less the same without a document
        (its pointwise mutual information with the query, so scores compare across queries). The document comes
        first, so no head is cached: every token is computed."""
        query = rendered.query_ids
        baseline = self._query_log_likelihood([self._prompt_ids(rendered, [], -1)], query)
        scores = torch.zeros(len(items))
        lengths = [len(item) for item in items]
        disabled = (len(items) <= 4 * batch_size) if show_progress_bar is None else not show_progress_bar
        with tqdm(total=len(items), desc="reranking", unit="doc", disable=disabled) as bar:
            for rows in token_budget_batches(lengths, batch_size, self.max_batch_tokens):
                scores[torch.tensor(rows)] = self._query_log_likelihood([items[i] for i in rows], query).cpu()
                bar.update(len(rows))
        self.last_stats["tokens"] = self.last_stats["computed_tokens"] = sum(lengths)
        return scores - baseline.cpu()

    def _query_log_likelihood(self, rows: list[list[int]], query: list[int], grad: bool = False) -> torch.Tensor:
        """Mean log-probability of ``query`` (the last tokens of every row), one per row, in float32."""
        batch = collate([TokenizedText(ids, [False] * len(ids)) for ids in rows], self.tokenizer.pad_token_id,
                        self.padding_side)  # fmt: skip
        states = self.backbone.hidden_states(batch, self.layer_ids, grad=grad)
        device, count = self.backbone.device, len(query)
        # the state before each query token predicts it: positions last - count … last - 1
        positions = batch.last_index.to(device)[:, None] + torch.arange(-count, 0, device=device)[None, :]
        which = torch.arange(len(rows), device=device)[:, None]
        targets = torch.tensor(query, device=device)
        vocabulary = self.backbone.lm_head().weight.shape[0]
        per_chunk = max(1, LOGIT_ELEMENTS // (count * vocabulary))  # rows whose full-vocabulary logits fit at once
        means = []
        for start in range(0, len(rows), per_chunk):
            part = slice(start, start + per_chunk)
            picked = {layer: states[layer][which[part], positions[part]].flatten(0, 1) for layer in self.layer_ids}
            logits = self._softcap(lens_logits(self.backbone, picked).float())
            log_probs = torch.log_softmax(logits, dim=-1).view(-1, count, vocabulary)
            means.append(log_probs.gather(2, targets.expand(log_probs.shape[0], count)[..., None]).mean(dim=(1, 2)))
        return torch.cat(means)

    def _head_state(self, rendered: RenderedPrompt) -> PrefixState:
        ids, layers = rendered.head_ids, self.layer_ids
        return self.backbone.prefix_cache.get(ids, layers, lambda: self.backbone.encode_prefix(ids, layers))

    def _softcap(self, logits: torch.Tensor) -> torch.Tensor:
        """Gemma-2-style final logit soft-capping, as the model's own logits have it."""
        cap = getattr(self.backbone.model.config, "final_logit_softcapping", None)
        return logits if not cap else torch.tanh(logits / cap) * cap
