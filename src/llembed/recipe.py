"""Recipe: every choice of the embedding pipeline as one small, saveable value.

backbone → prompt → attention mode → layer → pooling → head (dense / sparse) → output format.
A recipe found in an ablation is saved as YAML/JSON and reused with ``Embedder.from_recipe``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from llembed.chunking import CHUNKINGS, ChunkingName
from llembed.errors import RecipeError
from llembed.io_utils import atomic_write_text
from llembed.pooling import POOLINGS, PoolingName

Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]
DType = Literal["auto", "float32", "bfloat16", "float16", "int8"]
BackendName = Literal["torch", "openvino", "auto"]
PaddingSide = Literal["left", "right"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DTYPES: tuple[str, ...] = get_args(DType)
BACKENDS: tuple[str, ...] = get_args(BackendName)
PADDING_SIDES: tuple[str, ...] = get_args(PaddingSide)

FIELD_ROLES: dict[str, tuple[str, ...]] = {
    # what is loaded: changing one means loading another model (``Embedder.replace`` refuses them)
    "weights": ("model", "adapter", "dtype", "backend"),
    # what the forward pass sees: the text around the input, attention, length limits, long texts, rationales
    "forward": (
        "prompt", "task", "icl_examples", "tp_layers", "bidirectional", "max_length", "padding_side", "truncation",
        "chunking", "chunk_tokens", "chunk_overlap", "think", "think_model", "think_prompt", "think_tokens",
    ),
    # which hidden states become the vector
    "pooling": ("pooling", "layer", "exclude_prompt"),
    # what is done to a pooled vector: the CLI's formatting flags, never a reason to embed again
    "output": ("normalize", "truncate_dim", "precision", "quantization_ranges", "sparse_top_k"),
    # only a Reranker reads these: they never change a vector, so no digest includes them
    "rerank": ("rerank_prompt", "rerank_labels", "rerank_calibration"),
    "extra": ("extra",),
}  # fmt: skip
"""Every :class:`Recipe` field's role, each field named once (a test holds that they cover the fields)."""

RERANK_FIELDS = FIELD_ROLES["rerank"]
"""Fields only a :class:`~llembed.Reranker` reads: they never change a vector, so no digest includes them."""

LayerSpec = int | list[int] | str
LAYER_HELP = "an index (-1 = final, 0 = embeddings), a list like [10, 20] or '10,20', or a slice like '-4:'"


@dataclass(frozen=True)
class Recipe:
    """How an LLM becomes an embedder. ``None`` fields take the backbone's own default when loaded.

    Every field has one name everywhere: Python keyword, CLI flag, YAML key and HTTP field.
    """

    model: str | None = None
    """Local model directory, ``.gguf`` file, alias (``smollm2-135m``, ``all-minilm-l6-v2``) or cached hub id."""
    adapter: str | None = None
    """A peft (LoRA) adapter folder applied to the model on load, e.g. from ``llembed train``."""
    prompt: str | None = None
    """A strategy name (see ``llembed strategies``) or a custom template containing ``{text}``."""
    task: str | None = None
    """Default task description for ``{task}`` in instruction templates (queries)."""
    pooling: PoolingName | None = None
    layer: LayerSpec = -1
    """Hidden-state index to pool from (0 = embeddings, -1 = final), a list of them, or a slice ``"-4:"``;
    several layers are averaged."""
    bidirectional: bool = False
    exclude_prompt: bool = False
    """Keep prompt/instruction tokens out of mean / weighted_mean / max pooling."""
    dtype: DType = "auto"
    backend: BackendName = "torch"
    """What runs the forward pass on the CPU: ``torch`` (the reference), ``openvino`` (a compiled graph, see
    :mod:`llembed.openvino_backend`) or ``auto`` (the fastest of them that holds the quality gate here)."""
    max_length: int | None = None
    padding_side: PaddingSide | None = None
    truncation: bool = False
    """Texts longer than ``max_length`` are cut (from the end of the user text) instead of rejected."""
    chunking: ChunkingName = "none"
    """Long texts: ``none`` (one pass; see ``truncation``), ``mean`` (embed token windows on their own and
    average) or ``late`` (late chunking: pool each window from the whole text's contextual states)."""
    chunk_tokens: int | None = None
    """Text tokens per chunk (``None``: 512, or what fits the model's window with the prompt)."""
    chunk_overlap: int = 0
    """Tokens consecutive chunks share."""
    think: str | None = None
    """Think, then embed: before a query is embedded, a generator writes a short rationale that is embedded with it
    — ``self`` (this model), a local chat model, or an OpenAI-compatible endpoint URL (see ``llembed.thinking``)."""
    think_model: str | None = None
    """The model name to ask an endpoint for (``think`` is a URL)."""
    think_prompt: str | None = None
    """The generator's instruction, holding ``{text}`` (and optionally ``{task}``); ``None``: a built-in one."""
    think_tokens: int = 96
    """Most tokens a rationale may have."""
    rerank_prompt: str | None = None
    """Reranking (``llembed.Reranker``): a prompt of ``llembed.rerank_prompts.RERANK_PROMPTS`` or a template with
    ``{query}`` before ``{document}``; ``None``: ``chat`` for models with a chat template, else ``plain``."""
    rerank_labels: list[str] | None = None
    """Reranking: the two answer words (relevant, not relevant) whose logits are compared; ``None``: the prompt's."""
    rerank_calibration: list[float] | None = None
    """Reranking: ``[scale, bias]`` of the relevance probability ``sigmoid(scale · score + bias)`` (Platt scaling
    fitted on held-aside judged pairs, ``llembed.rerank_calibration``); ``None``: ``sigmoid(score)``."""
    normalize: bool | None = None
    """L2-normalise the output (``None``: the model's default, which is ``True`` except for a
    sentence-transformers folder without a ``Normalize`` module)."""
    truncate_dim: int | None = None
    precision: Precision = "float32"
    quantization_ranges: list[list[float]] | None = None
    """Per-dimension [min, max] for int8/uint8 (from ``Embedder.calibrate``); without them the ranges come
    from the batch itself, as in sentence-transformers."""
    sparse_top_k: int | None = 128
    icl_examples: list[list[str]] | None = None
    """In-context demonstrations ``[[sentence, word], ...]`` for the ``icl`` prompt."""
    tp_layers: list[int] | None = None
    """Token Prepending: ``[start, stop)`` decoder layers whose input PST state is replaced by the last token's."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Each bad value is one line naming the field and what it allows."""
        _choice("pooling", self.pooling, tuple(POOLINGS), optional=True)
        _choice("precision", self.precision, PRECISIONS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("backend", self.backend, BACKENDS)
        _choice("padding_side", self.padding_side, PADDING_SIDES, optional=True)
        _choice("chunking", self.chunking, tuple(CHUNKINGS))
        for name in ("truncate_dim", "max_length", "sparse_top_k", "chunk_tokens", "think_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise RecipeError(f"{name} must be a positive integer, not {value!r}")
        for name in ("bidirectional", "exclude_prompt", "truncation"):
            if not isinstance(getattr(self, name), bool):
                raise RecipeError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if isinstance(self.chunk_overlap, bool) or not isinstance(self.chunk_overlap, int) or self.chunk_overlap < 0:
            raise RecipeError(f"chunk_overlap must be a non-negative integer, not {self.chunk_overlap!r}")
        if self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens:
            raise RecipeError(
                f"chunk_overlap={self.chunk_overlap} must be smaller than chunk_tokens={self.chunk_tokens}"
            )
        if self.think_prompt is not None and "{text}" not in self.think_prompt:
            raise RecipeError("think_prompt must hold {text}, where the query goes")
        if self.think is not None and (not isinstance(self.think, str) or not self.think.strip()):
            raise RecipeError(f"think must be 'self', a model or an endpoint URL, not {self.think!r}")
        if self.rerank_prompt is not None:
            from llembed.rerank_prompts import check_rerank_prompt

            if not isinstance(self.rerank_prompt, str):
                raise RecipeError(f"rerank_prompt must be a name or a template, not {self.rerank_prompt!r}")
            check_rerank_prompt(self.rerank_prompt)
        if self.rerank_labels is not None and (
            not isinstance(self.rerank_labels, list | tuple)
            or len(self.rerank_labels) != 2
            or not all(isinstance(label, str) and label for label in self.rerank_labels)
            or self.rerank_labels[0] == self.rerank_labels[1]
        ):
            raise RecipeError(f"rerank_labels must be two different answer words, not {self.rerank_labels!r}")
        if self.rerank_calibration is not None and (
            not isinstance(self.rerank_calibration, list | tuple)
            or len(self.rerank_calibration) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in self.rerank_calibration)
            or not all(math.isfinite(v) for v in self.rerank_calibration)
            or self.rerank_calibration[0] <= 0
        ):
            raise RecipeError(
                f"rerank_calibration must be [scale, bias] with a positive scale (it keeps the order), "
                f"not {self.rerank_calibration!r}"
            )
        if self.normalize is not None and not isinstance(self.normalize, bool):
            raise RecipeError(f"normalize must be true or false, not {self.normalize!r}")
        if self.tp_layers is not None and (
            len(self.tp_layers) != 2
            or not all(isinstance(i, int) for i in self.tp_layers)
            or self.tp_layers[0] >= self.tp_layers[1]
        ):
            raise RecipeError(f"tp_layers must be [start, stop) with start < stop, not {self.tp_layers!r}")
        parse_layer_spec(self.layer)
        if self.prompt is not None:
            from llembed.prompts import resolve_strategy

            resolve_strategy(self.prompt, self.icl_examples)

    def replace(self, **changes: Any) -> Recipe:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise RecipeError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """A stable hash of every field that shapes a vector: vectors made under different recipes must never be
        mixed."""
        data = {key: value for key, value in self.to_dict().items() if key not in RERANK_FIELDS}
        blob = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not data["extra"]:
            del data["extra"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        if not isinstance(data, dict):
            raise RecipeError(f"a recipe must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise RecipeError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the recipe as YAML (``.yaml``/``.yml``) or JSON (any other suffix), atomically."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as exc:
            raise RecipeError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        recipe = cls.from_dict(data)
        # paths written relative to the recipe (a training run's ``adapter``, ``model``) resolve beside it
        for key in ("model", "adapter"):
            value = getattr(recipe, key)
            if value and not Path(value).is_absolute() and (path.parent / value).exists():
                recipe = recipe.replace(**{key: str((path.parent / value).resolve())})
        return recipe


def _choice(name: str, value: Any, allowed: tuple[str, ...], optional: bool = False) -> None:
    if (value is None and optional) or value in allowed:
        return
    raise RecipeError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")


def parse_layer_spec(spec: LayerSpec) -> list[int] | slice:
    """A layer spec's indices (or slice), before the model's depth is known; a bad one is a :class:`RecipeError`."""
    bad = RecipeError(f"layer {spec!r} is not {LAYER_HELP}")
    if isinstance(spec, bool):
        raise bad
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, list | tuple):
        if not spec or not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
            raise bad
        return list(spec)
    if not isinstance(spec, str):
        raise bad
    try:
        if ":" in spec:
            parts = spec.split(":")
            if len(parts) != 2:
                raise bad
            start, stop = (int(part) if part.strip() else None for part in parts)
            return slice(start, stop)
        return [int(part) for part in spec.split(",")]
    except ValueError as exc:
        raise bad from exc


def resolve_layers(spec: LayerSpec, num_layers: int) -> list[int]:
    """Turn a layer spec into sorted absolute hidden-state indices in ``[0, num_layers]``.

    Index 0 is the embedding output, ``num_layers`` the final (normed) output, as in Hugging Face's
    ``output_hidden_states``.
    """
    total = num_layers + 1
    parsed = parse_layer_spec(spec)
    indices = list(range(total))[parsed] if isinstance(parsed, slice) else parsed
    if not indices:
        raise RecipeError(f"layer spec {spec!r} selects no layer (the model has {num_layers} layers)")
    resolved = set()
    for index in indices:
        if not -total <= index < total:
            raise RecipeError(f"layer {index} out of range: the model has hidden states 0..{num_layers}")
        resolved.add(index % total)
    return sorted(resolved)
