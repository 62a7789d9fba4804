"""TrainConfig: one YAML file describes a training run (``llembed train CONFIG.yaml``).

```yaml
data: [examples/data/snli_triplets.jsonl]
output_dir: runs/snli-lora
recipe: {prompt: prompteol, pooling: last}     # the embedder being tuned (any Recipe field)
objective: contrastive                          # contrastive | late-interaction | mntp | simcse | rerank
method: lora                                    # lora | full
lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: all-linear}
batch_size: 64                                  # global, across processes
chunk_size: 16                                  # GradCache chunk (null: no GradCache)
max_steps: 100
```
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llembed.errors import RecipeError
from llembed.io_utils import atomic_write_text
from llembed.training.losses import check_loss_choice, losses_for
from llembed.training.losses.embedder_distillation import MODES

OBJECTIVES = ("contrastive", "late-interaction", "mntp", "simcse", "rerank")
RERANK_LOSSES = tuple(losses_for("rerank"))
METHODS = ("lora", "full")
ON_LEAK = ("fail", "drop", "warn")
SCHEDULES = ("linear", "cosine", "constant_with_warmup")


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    layers: list[int] | None = None
    """Only these decoder blocks get adapters (peft's ``layers_to_transform``); backward stops below them."""


@dataclass
class TeacherSettings:
    model: str = "all-minilm-l6-v2"
    """Teacher embedder: a model or a recipe file (anything ``Embedder.from_pretrained`` takes)."""
    weight: float = 1.0
    mode: str = "similarity_mse"
    tasks: list[str] | None = None
    """Tasks whose batches add the teacher term (``None``: every task)."""
    alone: list[str] = field(default_factory=list)
    """Tasks trained on the teacher term alone: unlabelled text pairs (query and positive need not match), e.g.
    sentences and passages to distil the teacher's similarities on."""


@dataclass
class TrainConfig:
    data: list[str]
    output_dir: str
    recipe: dict[str, Any] = field(default_factory=dict)
    objective: str = "contrastive"
    """``contrastive``: one vector a text, InfoNCE; ``late-interaction``: token vectors scored by MaxSim (ColBERT),
    for multi-vector search; ``mntp`` / ``simcse``: LLM2Vec's unsupervised stages; ``rerank``: the yes/no judge."""
    method: str = "lora"
    lora: LoraSettings = field(default_factory=LoraSettings)
    init_adapter: str | None = None
    """Start from a saved LoRA adapter (a run folder or its ``adapter/``) instead of a fresh one: its weights and
    shape (``r``, layers, modules; ``lora:`` is then ignored) are the starting point, trained further."""
    batch_size: int = 32
    chunk_size: int | None = None
    task_weights: dict[str, float] | None = None
    """Per task (the examples' ``task``): how many of its batches an epoch draws, relative to its size (2: its
    examples twice, 0.5: half of them); unnamed tasks weigh 1."""
    num_negatives: int | None = None
    """Hard negatives per example, at most (every example of a task takes the same count, so batches gather
    evenly); default: per task, the fewest its examples have. Tasks without negatives use in-batch ones only."""
    max_steps: int = 100
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    temperature: float = 0.05
    symmetric: bool = False
    matryoshka_dims: list[int] | None = None
    cosent_scale: float = 20.0
    """CoSENT's scale on cosines, for batches of graded pairs (examples with a ``label``)."""
    score_distillation: float = 0.0
    """Weight of the KL loss against the examples' teacher ``scores`` (0: off)."""
    teacher_temperature: float = 1.0
    teacher: TeacherSettings | None = None
    rerank_loss: str = "listwise"
    """``objective: rerank``: ``listwise`` (softmax over the positive and its negatives) or ``pointwise`` (BCE per
    pair); the recipe's ``rerank_prompt``, ``rerank_labels``, ``task`` and ``layer`` shape the reranker. The same
    as ``losses: {rerank: ...}``."""
    losses: dict[str, str] = field(default_factory=dict)
    """A loss (by its registry name, :data:`llembed.training.losses.LOSSES`) for a kind of input, e.g.
    ``{pairs: infonce, graded: cosent}``; inputs left out take their default loss."""
    mask_probability: float = 0.2
    """MNTP: share of tokens masked."""
    max_length: int = 128
    """Training texts are cut to this many tokens (with their prompt)."""
    gradient_checkpointing: bool = False
    bf16: str | bool = "auto"
    """``auto``: bf16 autocast where the CPU has native bf16 or on CUDA; ``true`` / ``false`` to force."""
    seed: int = 0
    save_every: int = 50
    keep_checkpoints: int = 2
    merge: bool = False
    """Also write the base model with the adapter merged in (``merged/``), loadable without peft."""
    export_sentence_transformers: bool = False
    threads: int | None = None
    held_out: list[str] = field(default_factory=lambda: ["bundled"])
    """Evaluation sets no training example may hold a scored item of (a test query, document, pair or text):
    ``bundled`` (every set shipped with llembed), bundled names or dataset folders; ``[]`` skips the check."""
    on_leak: str = "fail"
    """A held-out item found in the training data: ``fail`` (stop before training, naming it), ``drop`` (train
    without the examples holding one) or ``warn``. The report is written to ``decontamination.json``."""

    def __post_init__(self) -> None:
        if isinstance(self.data, str):
            self.data = [self.data]
        if isinstance(self.held_out, str):
            self.held_out = [self.held_out]
        if isinstance(self.lora, dict):
            self.lora = _build(LoraSettings, self.lora, "lora")
        if isinstance(self.teacher, dict):
            self.teacher = _build(TeacherSettings, self.teacher, "teacher")
        if isinstance(self.bf16, bool):
            self.bf16 = str(self.bf16).lower()
        self.validate()

    def validate(self) -> None:
        checks = [
            (self.objective in OBJECTIVES, f"objective must be one of {', '.join(OBJECTIVES)}"),
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.on_leak in ON_LEAK, f"on_leak must be one of {', '.join(ON_LEAK)}"),
            (self.rerank_loss in RERANK_LOSSES, f"rerank_loss must be one of {', '.join(RERANK_LOSSES)}"),
            (self.bf16 in ("auto", "true", "false"), "bf16 must be auto, true or false"),
            (self.batch_size > 0, "batch_size must be positive"),
            (self.chunk_size is None or self.chunk_size > 0, "chunk_size must be positive"),
            (self.max_steps > 0, "max_steps must be positive"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.temperature > 0, "temperature must be positive"),
            (self.cosent_scale > 0, "cosent_scale must be positive"),
            (self.save_every > 0, "save_every must be positive"),
            (self.keep_checkpoints > 0, "keep_checkpoints must be positive"),
            (0 < self.mask_probability < 1, "mask_probability must be in (0, 1)"),
            (self.num_negatives is None or self.num_negatives >= 0, "num_negatives must be ≥ 0"),
            (self.teacher is None or self.teacher.mode in MODES, f"teacher.mode must be one of {', '.join(MODES)}"),
            (self.lora.r > 0, "lora.r must be positive"),
            (self.init_adapter is None or self.method == "lora", "init_adapter continues a LoRA: method must be lora"),
            (bool(self.data), "data: give at least one file"),
            (
                self.objective != "late-interaction"
                or (self.teacher is None and not self.score_distillation and not self.matryoshka_dims),
                "objective late-interaction scores token vectors by MaxSim: teacher, score_distillation and "
                "matryoshka_dims apply to one vector a text and cannot be used with it",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise RecipeError(f"train config: {message}")
        if not isinstance(self.losses, dict):
            raise RecipeError(f"train config: losses must map inputs to a loss name, not {self.losses!r}")
        for inputs, name in self.losses.items():
            check_loss_choice(inputs, name)

    def loss_name(self, inputs: str) -> str:
        """The loss this run uses for ``inputs``: the config's choice, else the default."""
        if inputs == "rerank" and "rerank" not in self.losses:
            return self.rerank_loss
        return self.losses.get(inputs) or losses_for(inputs)[0]
        if self.matryoshka_dims is not None and any(d <= 0 for d in self.matryoshka_dims):
            raise RecipeError("train config: matryoshka_dims must be positive")

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "train config")

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise RecipeError(f"train config not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise RecipeError(f"{path}: a train config must be a mapping")
        data.update({key: value for key, value in overrides.items() if value is not None})
        return cls.from_dict(data)


def _build(kind, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = set(data) - known
    if unknown:
        raise RecipeError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = [f.name for f in dataclasses.fields(kind) if f.name not in data and _required(f)]
    if missing:
        raise RecipeError(f"{where}: missing field(s) {', '.join(missing)}")
    _check_scalars(kind, data, where)
    return kind(**data)


SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_scalars(kind, data: dict[str, Any], where: str) -> None:
    """A YAML value of the wrong type for a plain field (``learning_rate: fast``) is named, not a TypeError."""
    hints = typing.get_type_hints(kind)
    for name, value in data.items():
        hint = hints[name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        nullable = type(None) in allowed
        plain = [a for a in allowed if a is not type(None)]
        if not plain or not all(a in SCALARS for a in plain) or (value is None and nullable):
            continue  # lists and mappings are checked by validate() and the settings' own fields
        if not any(_fits(value, want) for want in plain):
            wanted = " or ".join(SCALARS[a] for a in plain) + (" or null" if nullable else "")
            raise RecipeError(f"{where}: {name} must be {wanted}, not {value!r}")


def _fits(value: Any, want: type) -> bool:
    if isinstance(value, bool):  # YAML's true/false are ints to Python
        return want is bool
    return isinstance(value, want) or (want is float and isinstance(value, int))


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
