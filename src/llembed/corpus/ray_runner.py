"""The Ray runner of ``embed_corpus``: the pending shards become a Ray Dataset, and ``map_batches`` hands them,
one per call, to a pool of actors that each load the model once and write the shards they embed.

Writing inside the actors keeps vectors off the driver (on a cluster they go straight to shared storage), and
makes a shard the unit of retry: Ray Data restarts a killed actor and re-runs its shard, and since a shard file
is written atomically a retry (or a zombie write after the driver died) can only write the same complete file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llembed.corpus.plan import Shard
from llembed.corpus.shards import ShardOptions, embed_shard
from llembed.errors import InputError, LlembedError
from llembed.integrations.ray import ensure_ray
from llembed.recipe import Recipe


class ShardEmbedder:
    """A Ray Data actor: one embedder per process, one shard per call."""

    def __init__(self, recipe: Recipe, output: str, options: ShardOptions, request_hash: str, threads: int) -> None:
        import torch

        from llembed.embedder import Embedder

        torch.set_num_threads(threads)
        self.embedder = Embedder.from_recipe(recipe)
        self.output = Path(output)
        self.options = options
        self.request_hash = request_hash

    def __call__(self, batch: dict) -> dict:
        summaries = []
        for row in _rows(batch):
            shard = Shard.from_dict(row)
            try:
                summary = embed_shard(self.embedder, shard, self.output, self.options, self.request_hash)
            except LlembedError as exc:  # an input error travels as data: Ray would keep only its text
                summary = {"shard": shard.name, "rows": 0, "vectors": 0, "errors": 0, "seconds": 0.0, "error": str(exc)}
            summaries.append({"error": ""} | summary)
        return {key: [s[key] for s in summaries] for key in ("shard", "rows", "vectors", "errors", "seconds", "error")}


def run_on_ray(
    pending: list[Shard],
    recipe: Recipe,
    output: Path,
    options: ShardOptions,
    request_hash: str,
    on_shard: Callable[[dict], None],
    concurrency: int | None = None,
    cpus_per_actor: float = 1.0,
    address: str | None = None,
    num_cpus: int | None = None,
) -> None:
    """Embed ``pending`` on Ray (a local Ray of ``num_cpus`` CPUs unless ``address``); ``on_shard`` per shard."""
    ray = ensure_ray(address, num_cpus)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts rows, not blocks
    context.print_on_execution_start = False
    cluster_cpus = ray.cluster_resources().get("CPU", 1.0)
    actors = concurrency or max(1, int(cluster_cpus // cpus_per_actor))
    actors = min(actors, len(pending))
    dataset = ray.data.from_items([s.to_dict() for s in pending], override_num_blocks=len(pending))
    results = dataset.map_batches(
        ShardEmbedder,
        fn_constructor_kwargs={
            "recipe": recipe,
            "output": str(output),
            "options": options,
            "request_hash": request_hash,
            "threads": max(1, int(cpus_per_actor)),
        },
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
    )
    for batch in results.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
        for row in _rows(batch):
            if row["error"]:
                raise InputError(row["error"])  # --on-error stop: leaving the loop stops the dataset
            on_shard(row)


def _rows(batch: dict) -> list[dict]:
    """A numpy batch (column → array) as plain row dicts."""
    columns = list(batch)
    count = len(batch[columns[0]]) if columns else 0
    return [{c: _plain(batch[c][i]) for c in columns} for i in range(count)]


def _plain(value):
    return value.item() if hasattr(value, "item") else value
