"""Training data: JSONL examples and the task-homogeneous, resumable order they are drawn in.

One example per line::

    {"query": "...", "positive": "...", "negatives": ["...", ...], "task": "nli", "instruction": "...",
     "scores": [teacher score of positive, of each negative]}

or, for graded pairs (STS-style, trained with CoSENT instead of InfoNCE)::

    {"query": "A man plays a guitar.", "positive": "A person plays music.", "label": 3.8, "task": "sts"}

``negatives``, ``task``, ``instruction``, ``scores`` and ``label`` are optional (a task's examples either all
carry a ``label`` or none do, since a batch is one task and one loss); ``id`` and ``meta`` (provenance, e.g.
from ``llembed synth``) are allowed and ignored. Errors name the file and line.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llembed.errors import InputError
from llembed.io_utils import atomic_write, iter_jsonl

DEFAULT_TASK = "default"


@dataclass(frozen=True)
class TrainExample:
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    task: str = DEFAULT_TASK
    instruction: str | None = None
    scores: tuple[float, ...] | None = None
    """Teacher scores of ``[positive, *negatives]`` for score distillation."""
    label: float | None = None
    """Graded similarity of ``query`` and ``positive`` (CoSENT); the pair is then not a positive for InfoNCE."""

    def to_dict(self) -> dict:
        row: dict = {"query": self.query, "positive": self.positive}
        if self.negatives:
            row["negatives"] = list(self.negatives)
        if self.task != DEFAULT_TASK:
            row["task"] = self.task
        if self.instruction is not None:
            row["instruction"] = self.instruction
        if self.scores is not None:
            row["scores"] = list(self.scores)
        if self.label is not None:
            row["label"] = self.label
        return row


def parse_example(row: dict, where: str) -> TrainExample:
    """One JSON object → :class:`TrainExample`, or an :class:`InputError` naming ``where`` and the field."""
    for key in ("query", "positive"):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: '{key}' must be a non-empty string, got {value!r:.60}")
    negatives = row.get("negatives", [])
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
        raise InputError(f"{where}: 'negatives' must be a list of non-empty strings")
    task = row.get("task", DEFAULT_TASK)
    if not isinstance(task, str) or not task:
        raise InputError(f"{where}: 'task' must be a non-empty string")
    instruction = row.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise InputError(f"{where}: 'instruction' must be a string")
    scores = row.get("scores")
    if scores is not None:
        if not isinstance(scores, list) or not all(isinstance(s, int | float) for s in scores):
            raise InputError(f"{where}: 'scores' must be a list of numbers")
        if len(scores) != 1 + len(negatives):
            raise InputError(
                f"{where}: 'scores' has {len(scores)} values; it needs one for the positive and one per "
                f"negative ({1 + len(negatives)})"
            )
        scores = tuple(float(s) for s in scores)
    label = row.get("label")
    if label is not None:
        if isinstance(label, bool) or not isinstance(label, int | float):
            raise InputError(f"{where}: 'label' must be a number, got {label!r:.60}")
        if negatives:
            raise InputError(f"{where}: a graded pair ('label') takes no 'negatives'")
        label = float(label)
    known = {"query", "positive", "negatives", "task", "instruction", "scores", "label", "id", "meta"}
    unknown = set(row) - known
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return TrainExample(row["query"], row["positive"], tuple(negatives), task, instruction, scores, label)


def write_examples(path: str | Path, examples: Sequence[TrainExample]) -> Path:
    """Write ``examples`` as training JSONL, atomically; gzipped when ``path`` ends in ``.gz``, with no name or
    time in the gzip header, so writing the same examples again gives the same bytes."""
    text = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in examples).encode("utf-8")

    def write(tmp: Path) -> None:
        if str(path).endswith(".gz"):
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as handle:
                handle.write(text)
        else:
            tmp.write_bytes(text)

    return atomic_write(path, write)


def load_examples(paths: str | Path | Sequence[str | Path]) -> list[TrainExample]:
    """Read one or more JSONL files of training examples."""
    if isinstance(paths, str | Path):
        paths = [paths]
    examples = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"training data not found: {path}")
        examples += [parse_example(row, f"{path}:{number}") for number, row in iter_jsonl(path)]
    if not examples:
        raise InputError(f"no training examples in {', '.join(map(str, paths))}")
    instructions: dict[str, str | None] = {}
    graded: dict[str, bool] = {}
    for example in examples:  # a batch is one task: its queries share one prompt, and it has one loss
        if instructions.setdefault(example.task, example.instruction) != example.instruction:
            raise InputError(
                f"task {example.task!r} has two instructions ({instructions[example.task]!r} and "
                f"{example.instruction!r}): give each instruction its own task name"
            )
        if graded.setdefault(example.task, example.label is not None) != (example.label is not None):
            raise InputError(
                f"task {example.task!r} mixes graded pairs ('label') with ungraded examples: give them "
                "separate task names"
            )
    return examples


@dataclass
class TaskBatches:
    """Batches of ``batch_size`` examples, each from a single task (so in-batch negatives share the task).

    The order is a pure function of ``(seed, epoch)``: a resumed run asks for step ``k`` and gets exactly the
    batch an uninterrupted run had at step ``k``. A task's leftover examples (fewer than a batch) are dropped
    for that epoch and, being reshuffled, come back in the next. ``weights`` scale how many of a task's batches
    an epoch holds: 2 draws its examples twice (two shuffles), 0.5 a random half of its batches; unnamed
    tasks weigh 1.
    """

    examples: Sequence[TrainExample]
    batch_size: int
    seed: int = 0
    weights: Mapping[str, float] | None = None
    _by_task: dict[str, list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise InputError(f"batch_size must be positive, not {self.batch_size}")
        by_task: dict[str, list[int]] = defaultdict(list)
        for index, example in enumerate(self.examples):
            by_task[example.task].append(index)
        self._by_task = dict(sorted(by_task.items()))
        weights = dict(self.weights or {})
        unknown = sorted(set(weights) - set(self._by_task))
        if unknown:
            raise InputError(
                f"task_weights names tasks the data does not have: {', '.join(unknown)}; "
                f"its tasks: {', '.join(self._by_task)}"
            )
        bad = [f"{task}={weight!r}" for task, weight in weights.items()
               if not isinstance(weight, int | float) or not weight > 0]  # fmt: skip
        if bad:
            raise InputError(f"task_weights must be positive numbers: {', '.join(bad)}")
        self.weights = weights
        if self.batches_per_epoch == 0:
            largest = max(len(rows) for rows in self._by_task.values())
            raise InputError(
                f"batch_size {self.batch_size} is larger than every task's example count (largest: {largest})"
            )

    def _task_batches(self, task: str) -> int:
        """Batches of ``task`` in one epoch, its weight applied."""
        whole = len(self._by_task[task]) // self.batch_size
        return round(whole * self.weights.get(task, 1.0))

    @property
    def batches_per_epoch(self) -> int:
        return sum(self._task_batches(task) for task in self._by_task)

    @property
    def task_shares(self) -> dict[str, float]:
        """Each task's share of an epoch's batches (what the weights come to)."""
        total = self.batches_per_epoch
        return {task: self._task_batches(task) / total for task in self._by_task}

    def epoch(self, epoch: int) -> list[list[int]]:
        rng = random.Random(f"{self.seed}:{epoch}")
        batches = []
        for task, rows in self._by_task.items():
            wanted = self._task_batches(task)
            drawn: list[list[int]] = []
            while len(drawn) < wanted:  # a weight above 1 reshuffles the task's examples for each further pass
                shuffled = list(rows)
                rng.shuffle(shuffled)
                drawn += [
                    shuffled[i : i + self.batch_size]
                    for i in range(0, len(shuffled) - self.batch_size + 1, self.batch_size)
                ]
            batches += drawn[:wanted]
        rng.shuffle(batches)
        return batches

    def from_step(self, step: int) -> Iterator[tuple[int, list[TrainExample]]]:
        """(step, batch) pairs from ``step`` on, endlessly, across epochs."""
        per_epoch = self.batches_per_epoch
        epoch, offset = divmod(step, per_epoch)
        while True:
            for index, rows in enumerate(self.epoch(epoch)[offset:], start=offset):
                yield epoch * per_epoch + index, [self.examples[i] for i in rows]
            epoch, offset = epoch + 1, 0


def load_sentences(paths: str | Path | Sequence[str | Path]) -> list[str]:
    """Raw sentences for unsupervised objectives (MNTP, SimCSE): ``.txt`` (one per line) or JSONL with a
    ``text`` field (or training examples, whose queries and positives are taken). Duplicates are dropped."""
    if isinstance(paths, str | Path):
        paths = [paths]
    sentences: dict[str, None] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"training data not found: {path}")
        if path.suffix == ".txt":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    sentences[line.strip()] = None
            continue
        for number, row in iter_jsonl(path):
            texts = [row["text"]] if "text" in row else [row.get("query"), row.get("positive")]
            for text in texts:
                if not isinstance(text, str) or not text.strip():
                    raise InputError(f"{path}:{number}: expected a non-empty 'text' (or 'query' and 'positive')")
                sentences[text.strip()] = None
    if not sentences:
        raise InputError(f"no sentences in {', '.join(map(str, paths))}")
    return list(sentences)
