"""The ablation runner: a grid of recipes × tasks, each cell scored and costed, cached and resumable.

All poolings and layers of one prompt (and other forward-pass settings) are read off the same forward passes.
Each finished cell is written to ``<out>/cache/<key>.json`` at once, keyed by (model, recipe, task, data
hash), so an interrupted run resumes where it stopped and adding a cell computes only that cell.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from llembed.embedder import Embedder, PoolSpec
from llembed.errors import RecipeError
from llembed.evaluation.datasets import Dataset
from llembed.evaluation.evaluate import evaluate, pool_requests
from llembed.evaluation.rerank_eval import evaluate_reranker, evaluate_with_reranker, rerank_variant
from llembed.evaluation.tasks import make_task
from llembed.io_utils import atomic_write_text
from llembed.recipe import FIELD_ROLES, RERANK_FIELDS, Recipe, resolve_layers
from llembed.reranker import Reranker

logger = logging.getLogger(__name__)

RERANKER_FIELDS = (*FIELD_ROLES["weights"], "layer", "max_length", "truncation", "task", *RERANK_FIELDS)
"""What a reranker's cells are keyed on."""
PASS_FREE_FIELDS = ("pooling", "layer")  # read off a shared forward pass; every other field needs its own
LEXICAL_VARIANTS = ("dense", "sparse", "bm25", "hybrid", "dense+bm25", "dense+sparse+bm25")
"""What :meth:`AblationRunner.run_lexical` scores: each channel, and each mode fusing dense with the others."""
MEMO_SIDES = 2  # pooled sides kept for reuse (a corpus's vectors can be hundreds of MB)


@dataclass
class Cell:
    """One (recipe, task, variant) result."""

    recipe: dict[str, Any]
    task: str
    type: str
    variant: str
    scores: dict[str, float]
    efficiency: dict[str, float]
    note: str | None = None
    label: str = ""
    section: str = ""
    """The suite section (scenario) that asked for the cell; a cell reused by another section is listed in both."""

    @property
    def main(self) -> float:
        return self.scores["main"]


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["prompt=none,prompteol", "layer=-1,15"]`` or a single YAML file path → {field: [values]}; a bad field
    or value is a :class:`RecipeError` naming it, before any model loads."""
    grid: dict[str, list] = {}
    if len(items) == 1 and items[0].endswith((".yaml", ".yml")) and Path(items[0]).is_file():
        data = yaml.safe_load(Path(items[0]).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise RecipeError(f"{items[0]}: a grid file maps recipe fields to lists of values")
        grid = {key: value if isinstance(value, list) else [value] for key, value in data.items()}
    else:
        for item in items:
            if "=" not in item:
                raise RecipeError(f"grid entry {item!r} is not field=value1,value2")
            key, values = item.split("=", 1)
            grid[key.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    for key, values in grid.items():
        for value in values:
            Recipe().replace(**{key: value})
    return grid


def cell_key(model: str, recipe: dict, task: str, fingerprint: str, variant: str) -> str:
    payload = json.dumps([model, recipe, task, fingerprint, variant], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


@dataclass
class AblationRunner:
    embedder: Embedder
    out_dir: Path
    batch_size: int = 32
    cells: list[Cell] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    section: str = ""
    """Cells computed or reused from now on are tagged with this suite section."""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.cache_dir = self.out_dir / "cache"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._sides: dict[str, tuple] = {}  # pooled vectors of one side, shared by recipes that differ elsewhere

    # ------------------------------------------------------------------ cache
    def _cached(self, key: str) -> Cell | None:
        path = self.cache_dir / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return Cell(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError):
            return None  # a damaged entry is recomputed

    def _store(self, key: str, cell: Cell) -> None:
        cell.section = self.section
        atomic_write_text(self.cache_dir / f"{key}.json", json.dumps(asdict(cell), indent=1))
        self.cells.append(cell)
        self.computed += 1

    def _reuse(self, cell: Cell) -> Cell:
        cell = dataclasses.replace(cell, section=self.section)
        self.cells.append(cell)
        self.reused += 1
        return cell

    def _model(self) -> str:
        return str(self.embedder.recipe.model)

    # ------------------------------------------------------------------ grid
    def run_grid(self, grid: dict[str, list], dataset: Dataset, base: Recipe | None = None) -> list[Cell]:
        """Score every recipe of ``grid`` (applied over ``base``) on ``dataset``."""
        base = base or self.embedder.recipe
        task = make_task(dataset)
        fingerprint = dataset.fingerprint()
        poolings = grid.get("pooling", [base.pooling])
        layers = grid.get("layer", [base.layer])
        pass_fields = {k: v for k, v in grid.items() if k not in PASS_FREE_FIELDS}
        out = []
        for values in itertools.product(*pass_fields.values()) if pass_fields else [()]:
            fixed = dict(zip(pass_fields, values, strict=True))
            for eos_group in (False, True):  # 'eos' pooling tokenizes differently: its own pass
                group = [p for p in poolings if (p == "eos") == eos_group]
                if group:
                    out += self._run_pass(base.replace(**fixed), group, layers, task, fingerprint)
        return out

    def _run_pass(self, recipe: Recipe, poolings, layers, task, fingerprint: str) -> list[Cell]:
        if poolings == ["eos"]:
            recipe = recipe.replace(pooling="eos")
        embedder = Embedder(self.embedder.backbone, recipe)
        wanted = {}
        for pooling, layer in itertools.product(poolings, layers):
            cell_recipe = recipe.replace(pooling=pooling, layer=layer)
            spec = PoolSpec(pooling, tuple(resolve_layers(layer, embedder.backbone.num_layers)))
            key = cell_key(self._model(), _recipe_fields(cell_recipe), task.name, fingerprint, "dense")
            wanted[key] = (cell_recipe, spec)
        cells = []
        missing = {}
        for key, (cell_recipe, spec) in wanted.items():
            cached = self._cached(key)
            if cached is not None:
                cells.append(self._reuse(cached))
            else:
                missing[key] = (cell_recipe, spec)
        if not missing:
            return cells
        specs = list({spec for _, spec in missing.values()})
        memo = self._side_memo(recipe, task, fingerprint)
        pooled, efficiency = pool_requests(embedder, task, specs, self.batch_size, memo)
        for key, (cell_recipe, spec) in missing.items():
            vectors = {side: embedder.to_float(embedder.format(by_spec[spec])) for side, by_spec in pooled.items()}
            cell = Cell(
                _recipe_fields(cell_recipe),
                task.name,
                task.type,
                "dense",
                task.score(vectors),
                efficiency.to_dict(),
                task.dataset.subsample_note,
                _label(cell_recipe),
            )
            self._store(key, cell)
            cells.append(cell)
        return cells

    # ------------------------------------------------------------------ retrieval variants & baselines
    def run_lexical(self, dataset: Dataset, recipe: Recipe) -> list[Cell]:
        """Dense, sparse (LM-head lexical), BM25 and their fusions (hybrid = dense+sparse, dense+bm25,
        dense+sparse+bm25) from one forward pass of ``recipe``."""
        task = make_task(dataset)
        fingerprint = dataset.fingerprint()
        fields = _recipe_fields(recipe)
        keys = {v: cell_key(self._model(), fields, task.name, fingerprint, v) for v in LEXICAL_VARIANTS}
        cached = {v: self._cached(k) for v, k in keys.items()}
        if all(cached.values()):
            return [self._reuse(cell) for cell in cached.values()]
        results = evaluate(Embedder(self.embedder.backbone, recipe), task, self.batch_size, sparse=True, bm25=True)
        cells = []
        for result in results:
            cell = Cell(
                fields,
                result.task,
                result.type,
                result.variant,
                result.scores,
                result.efficiency,
                result.note,
                f"{_label(recipe)} · {result.variant}",
            )
            self._store(keys[result.variant], cell)
            cells.append(cell)
        return cells

    def run_rerank(self, dataset: Dataset, reranker: Reranker, first_stage: Recipe | None = None, top: int = 20):
        """A reranker on a reranking set's candidates, or (retrieval, ``first_stage`` given) dense and hybrid
        retrieval of ``first_stage`` each reranked at its top ``top``; the first stage's own rows come too."""
        task = make_task(dataset)
        fingerprint = dataset.fingerprint()
        judge = {key: value for key, value in reranker.recipe.to_dict().items() if key in RERANKER_FIELDS}
        if reranker.prompt.name != "custom":  # a default (None) prompt is named as it resolved
            judge["rerank_prompt"] = reranker.prompt.name
        if task.type == "reranking":
            variants, fields = ["rerank"], {"reranker": judge}
        else:
            if first_stage is None:
                raise ValueError("retrieve, then rerank needs a first-stage recipe")
            variants = ["dense", "sparse", "hybrid"] + [rerank_variant(v, top) for v in ("dense", "hybrid")]
            fields = {"reranker": judge, "first_stage": _recipe_fields(first_stage)}
        keys = {v: cell_key(self._model(), fields, task.name, fingerprint, v) for v in variants}
        if task.type == "retrieval":  # the first stage's rows are run_lexical's cells
            keys |= {v: cell_key(self._model(), fields["first_stage"], task.name, fingerprint, v) for v in variants[:3]}
        cached = {v: self._cached(k) for v, k in keys.items()}
        if all(cached.values()):
            return [self._reuse(cell) for cell in cached.values()]
        if task.type == "reranking":
            results = evaluate_reranker(reranker, task, batch_size=self.batch_size)
        else:
            embedder = Embedder(self.embedder.backbone, first_stage)
            results = evaluate_with_reranker(embedder, reranker, task, self.batch_size, sparse=True, top=top)
        name = f"reranker ({reranker.prompt.name}, layer {reranker.recipe.layer})"
        cells = []
        for result in results:
            reranked = "rerank" in result.variant
            label = f"{_label(first_stage)} · {result.variant}" if first_stage is not None else name
            if reranked and first_stage is not None:
                label = f"{_label(first_stage)} · {result.variant.replace('rerank', name)}"
            cell = Cell(fields if reranked else fields["first_stage"], result.task, result.type, result.variant,
                        result.scores, result.efficiency, result.note, label)  # fmt: skip
            self._store(keys[result.variant], cell)
            cells.append(cell)
        return cells

    def run_baseline(self, dataset: Dataset, baseline: Embedder | str, label: str) -> Cell:
        """A baseline (an encoder Embedder, or ``"bm25"``) on the same data; cached like any cell."""
        task = make_task(dataset)
        fields = {"baseline": label}
        key = cell_key(label, fields, task.name, dataset.fingerprint(), "baseline")
        cached = self._cached(key)
        if cached is not None:
            return self._reuse(cached)
        if baseline == "bm25":
            from llembed.evaluation.baselines import evaluate_bm25

            result = evaluate_bm25(task)
        else:
            result = evaluate(baseline, task, batch_size=self.batch_size)[0]
        cell = Cell(fields, task.name, task.type, "baseline", result.scores, result.efficiency, result.note, label)
        self._store(key, cell)
        return cell

    def _side_memo(self, recipe: Recipe, task, fingerprint: str) -> SideMemo:
        """Memo of pooled sides: a document side is the same under recipes that differ only in how queries are
        made (``think``), so it is embedded once per run."""
        query_only = ("think", "think_model", "think_prompt", "think_tokens")
        fields = {k: v for k, v in _recipe_fields(recipe).items() if k not in query_only}
        base = cell_key(self._model(), fields, task.name, fingerprint, "side")
        return SideMemo(self._sides, base)


@dataclass
class SideMemo:
    """Where :func:`pool_requests` keeps and finds the pooled vectors of sides other than the queries."""

    store: dict
    key: str

    def get(self, side: str, specs) -> tuple | None:
        found = self.store.get((self.key, side))
        if found is None or side == "query" or not set(specs) <= set(found[0]):
            return None
        return found

    def put(self, side: str, pooled: dict, stats: dict, peak_rss_mb: float) -> None:
        if side == "query":
            return
        while len(self.store) >= MEMO_SIDES:  # the recipes sharing a side run one after another
            self.store.pop(next(iter(self.store)))
        self.store[(self.key, side)] = (pooled, stats, peak_rss_mb)


def _recipe_fields(recipe: Recipe) -> dict[str, Any]:
    data = recipe.to_dict()
    # what only formats a vector (or only reranks) is not part of a cell's recipe; neither is the padding side
    for volatile in (*FIELD_ROLES["output"], "padding_side", *RERANK_FIELDS):
        data.pop(volatile, None)
    return data


def _label(recipe: Recipe) -> str:
    parts = [f"{recipe.prompt}", f"{recipe.pooling}", f"layer {recipe.layer}"]
    if recipe.exclude_prompt:
        parts.append("excl. prompt")
    if recipe.bidirectional:
        parts.append("bidirectional")
    if recipe.chunking != "none":
        parts.append(f"{recipe.chunking} chunks of {recipe.chunk_tokens or 'default'}")
    elif recipe.truncation and recipe.max_length:
        parts.append(f"cut at {recipe.max_length}")
    if recipe.think:
        parts.append(f"think ({recipe.think})")
    return " · ".join(parts)


def best_cells(cells: Iterable[Cell]) -> dict[str, Cell]:
    """The best embedding recipe per task (by main score): not a baseline, not a reranker."""
    best: dict[str, Cell] = {}
    for cell in cells:
        if cell.variant == "baseline" or "rerank" in cell.variant or not np.isfinite(cell.main):
            continue
        if cell.task not in best or cell.main > best[cell.task].main:
            best[cell.task] = cell
    return best
