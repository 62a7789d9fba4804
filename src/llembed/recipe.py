"""Recipe: every choice of the embedding pipeline as one small, saveable value.

backbone → prompt → attention mode → layer → pooling → head (dense / sparse) → output format.
A recipe found in an ablation is saved as YAML/JSON and reused with ``Embedder.from_recipe``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llembed.errors import RecipeError
from llembed.io_utils import atomic_write_text

POOLINGS = ("last", "eos", "mean", "weighted_mean", "first", "max")
PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")
DTYPES = ("auto", "float32", "bfloat16", "float16")
PADDING_SIDES = ("left", "right")

LayerSpec = int | list[int] | str


@dataclass
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
    pooling: str | None = None
    layer: LayerSpec = -1
    """Hidden-state index to pool from (0 = embeddings, -1 = final), a list of them, or a slice ``"-4:"``;
    several layers are averaged."""
    bidirectional: bool = False
    exclude_prompt: bool = False
    """Keep prompt/instruction tokens out of mean / weighted_mean / max pooling."""
    dtype: str = "auto"
    max_length: int | None = None
    padding_side: str | None = None
    truncation: bool = False
    """Texts longer than ``max_length`` are cut (from the end of the user text) instead of rejected."""
    normalize: bool = True
    truncate_dim: int | None = None
    precision: str = "float32"
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
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise RecipeError(f"unknown pooling {self.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if self.precision not in PRECISIONS:
            raise RecipeError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.dtype not in DTYPES:
            raise RecipeError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.padding_side is not None and self.padding_side not in PADDING_SIDES:
            raise RecipeError(f"padding_side must be 'left', 'right' or None, not {self.padding_side!r}")
        if self.truncate_dim is not None and self.truncate_dim <= 0:
            raise RecipeError(f"truncate_dim must be positive, not {self.truncate_dim}")
        if self.max_length is not None and self.max_length <= 0:
            raise RecipeError(f"max_length must be positive, not {self.max_length}")
        if self.sparse_top_k is not None and self.sparse_top_k <= 0:
            raise RecipeError(f"sparse_top_k must be positive, not {self.sparse_top_k}")
        if self.tp_layers is not None and (len(self.tp_layers) != 2 or self.tp_layers[0] >= self.tp_layers[1]):
            raise RecipeError(f"tp_layers must be [start, stop) with start < stop, not {self.tp_layers}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int | list | str):
            raise RecipeError(f"layer must be an int, a list of ints or a slice string, not {self.layer!r}")

    def replace(self, **changes: Any) -> Recipe:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise RecipeError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """A stable hash of every field: vectors made under different recipes must never be mixed."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
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


def resolve_layers(spec: LayerSpec, num_layers: int) -> list[int]:
    """Turn a layer spec into sorted absolute hidden-state indices in ``[0, num_layers]``.

    Index 0 is the embedding output, ``num_layers`` the final (normed) output, as in Hugging Face's
    ``output_hidden_states``.
    """
    total = num_layers + 1
    if isinstance(spec, str):
        parts = spec.split(":")
        if len(parts) == 1:
            indices = [int(parts[0])]
        elif len(parts) == 2:
            try:
                start = int(parts[0]) if parts[0].strip() else None
                stop = int(parts[1]) if parts[1].strip() else None
            except ValueError as exc:
                raise RecipeError(f"layer slice {spec!r} is not of the form 'start:stop'") from exc
            indices = list(range(total))[slice(start, stop)]
        else:
            raise RecipeError(f"layer slice {spec!r} is not of the form 'start:stop'")
    elif isinstance(spec, int):
        indices = [spec]
    else:
        indices = list(spec)
    if not indices:
        raise RecipeError(f"layer spec {spec!r} selects no layer (the model has {num_layers} layers)")
    resolved = set()
    for index in indices:
        if not -total <= index < total:
            raise RecipeError(f"layer {index} out of range: the model has hidden states 0..{num_layers}")
        resolved.add(index % total)
    return sorted(resolved)
