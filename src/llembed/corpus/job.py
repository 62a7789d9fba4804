"""``embed_corpus``: a corpus → a folder of parquet shards (one vector per input row), on Ray or in-process.

Output folder::

    _manifest.json     requested recipe, options, input fingerprint, the shard plan (written first); at the end
                       also the embedder's full recipe and its hash (as an index records them)
    recipe.yaml        that full recipe (queries against these vectors must use it; written at the end)
    part-*.parquet     one per shard, written atomically: existing ones are skipped on a re-run
    errors.jsonl       every rejected row with its file and line (written at the end)
    summary.json       counts and speed of the last run (written at the end)

A run killed at any point (driver or worker) and run again finishes the missing shards only; since every shard
file is complete or absent, the folder ends with exactly one vector per input row.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llembed.corpus.manifest import FORMAT, MANIFEST, read_manifest
from llembed.corpus.plan import Shard, fingerprint, plan_shards
from llembed.corpus.shards import ShardOptions, embed_shard, shard_file, shard_metadata
from llembed.errors import InputError
from llembed.io_utils import atomic_write_text
from llembed.recipe import Recipe
from llembed.resolve import resolve_recipe

RUNNERS = ("auto", "ray", "local")


@dataclass
class CorpusSummary:
    output: Path
    runner: str
    rows: int
    """Rows in the input (non-blank lines / parquet rows)."""
    vectors: int
    """One per row (per chunk with ``chunks``)."""
    errors: int
    shards: int
    shards_skipped: int
    """Shards already written by an earlier run."""
    rows_this_run: int
    seconds: float
    duplicate_ids: list[str] = field(default_factory=list)
    empty: int = 0
    """Rows whose text was empty: embedded as the model sees an empty text (prompt included)."""
    truncated: int = 0
    """Rows whose text was cut at the recipe's ``max_length``."""

    @property
    def rows_per_second(self) -> float:
        return self.rows_this_run / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "runner": self.runner,
            "rows": self.rows,
            "vectors": self.vectors,
            "errors": self.errors,
            "shards": self.shards,
            "shards_skipped": self.shards_skipped,
            "rows_this_run": self.rows_this_run,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 2),
            "duplicate_ids": self.duplicate_ids[:20],
            "empty": self.empty,
            "truncated": self.truncated,
        }


def embed_corpus(
    inputs: Sequence[str | Path],
    output: str | Path,
    recipe: Recipe,
    options: ShardOptions | None = None,
    shard_rows: int = 1000,
    runner: str = "auto",
    concurrency: int | None = None,
    cpus_per_actor: float = 1.0,
    address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
    show_progress_bar: bool = True,
) -> CorpusSummary:
    """Embed every row of ``inputs`` as a document with ``recipe`` into parquet shards under ``output``.

    ``runner``: ``"ray"`` (Ray Data actor pool: ``concurrency`` actors of ``cpus_per_actor`` CPUs, on a local
    Ray of ``num_cpus`` CPUs or the cluster at ``address``), ``"local"`` (this process) or ``"auto"`` (Ray when
    it is installed). Re-running the same call resumes; other settings on the same folder are refused unless
    ``overwrite``.
    """
    options = options or ShardOptions()
    if runner not in RUNNERS:
        raise InputError(f"runner must be one of {', '.join(RUNNERS)}, not {runner!r}")
    if runner == "auto":
        runner = "ray" if _ray_installed() else "local"
    if runner == "ray" and not _ray_installed():
        raise InputError("the Ray runner needs Ray: pip install 'llembed[ray]' (or use --runner local)")
    output = Path(output)
    if recipe.chunking == "auto":  # shards are embedded apart, so nothing sees the whole collection to choose
        raise InputError(
            "chunking auto is chosen per collection by `llembed index build` and `llembed eval`; for embed-corpus "
            "name it: first (most documents fit one chunk) or mean (they don't)"
        )
    recipe = resolve_recipe(recipe=recipe)  # what workers elsewhere load: the model named, local paths absolute
    digest = recipe.digest()
    shards = plan_shards(inputs, shard_rows)
    manifest = {
        "format": FORMAT,
        "request_hash": digest,
        "request": recipe.to_dict(),
        "options": options.content_key(),
        "shard_rows": shard_rows,
        "inputs": fingerprint(inputs),
        "rows": sum(s.rows for s in shards),
        "shards": [{"name": s.name, "file": s.display, "start": s.start, "rows": s.rows} for s in shards],
    }
    _claim(output, manifest, overwrite)

    pending = [s for s in shards if not shard_file(output, s.name).is_file()]
    done_rows = manifest["rows"] - sum(s.rows for s in pending)
    started = time.perf_counter()
    bar = _progress_bar(manifest["rows"], done_rows, show_progress_bar)
    with bar:

        def on_shard(summary: dict) -> None:
            bar.update(summary["rows"])
            if summary["errors"]:
                bar.set_postfix_str(f"{summary['errors']} bad rows in {summary['shard']}", refresh=False)

        if pending and runner == "ray":
            from llembed.corpus.ray_runner import run_on_ray

            run_on_ray(
                pending, recipe, output, options, digest, on_shard, concurrency, cpus_per_actor, address, num_cpus
            )
        elif pending:
            _run_local(pending, recipe, output, options, digest, on_shard)
    seconds = time.perf_counter() - started
    return _finish(output, manifest, runner, len(shards) - len(pending), manifest["rows"] - done_rows, seconds)


def _run_local(
    pending: list[Shard], recipe: Recipe, output: Path, options: ShardOptions, digest: str, on_shard: Callable
) -> None:
    from llembed.embedder import Embedder

    embedder = Embedder.from_recipe(recipe)
    for shard in pending:
        on_shard(embed_shard(embedder, shard, output, options, digest))


def _claim(output: Path, manifest: dict, overwrite: bool) -> None:
    """Start ``output`` or check that it was started with the same recipe, options and corpus."""
    path = output / MANIFEST
    if path.is_file() and not overwrite:
        earlier = read_manifest(output)
        for key, what in (
            ("request_hash", "another recipe"),
            ("options", "other options"),
            ("shard_rows", "another --shard-rows"),
            ("inputs", "another corpus (files or sizes differ)"),
        ):
            if earlier.get(key) != manifest[key]:
                raise InputError(
                    f"{output} holds vectors from {what}; use a new output folder or --overwrite to start again"
                )
        return
    if output.exists() and not path.is_file() and any(output.iterdir()) and not overwrite:
        raise InputError(f"{output} exists and is not an embed-corpus output; choose an empty or new folder")
    if overwrite and output.is_dir():
        for old in list(output.glob("part-*.parquet")) + [output / "errors.jsonl", output / "summary.json"]:
            old.unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")


def _finish(
    output: Path, manifest: dict, runner: str, skipped: int, rows_this_run: int, seconds: float
) -> CorpusSummary:
    """Check the folder is whole, collect the rejected rows and duplicate ids, write errors.jsonl + summary.json."""
    import pyarrow.parquet as pq

    errors, vectors, seen, duplicates, recipes = [], 0, set(), [], {}
    counts = {"empty": 0, "truncated": 0}
    for entry in manifest["shards"]:
        path = shard_file(output, entry["name"])
        if not path.is_file():
            raise InputError(f"shard {entry['name']} was not written; re-run the same command to finish it")
        meta = shard_metadata(path)
        errors += meta["errors"]
        for key in counts:
            counts[key] += meta.get("counts", {}).get(key, 0)
        recipes[meta["recipe_hash"]] = meta["recipe"]
        if manifest["options"].get("chunks"):  # a document's chunks share its id
            table = pq.read_table(path, columns=["id", "chunk"])
            pairs = zip(table.column("id").to_pylist(), table.column("chunk").to_pylist(), strict=True)
            ids = [doc_id for doc_id, chunk in pairs if chunk == 0]
            vectors += table.num_rows
        else:
            ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
            vectors += len(ids)
        for doc_id in ids:
            if doc_id in seen:
                duplicates.append(doc_id)
            seen.add(doc_id)
    if len(recipes) > 1:  # cannot happen with one request hash, unless the model files changed mid-job
        raise InputError(f"{output} mixes vectors of {len(recipes)} recipes (did the model change?); use --overwrite")
    if recipes and manifest.get("recipe_hash") not in recipes:
        # the embedder's full recipe (defaults filled in by loading the model), as an index built from it records
        ((digest, recipe),) = recipes.items()
        manifest = manifest | {"recipe_hash": digest, "recipe": recipe}
        Recipe.from_dict(recipe).save(output / "recipe.yaml")
        atomic_write_text(output / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    atomic_write_text(output / "errors.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors))
    summary = CorpusSummary(
        output,
        runner,
        manifest["rows"],
        vectors,
        len(errors),
        len(manifest["shards"]),
        skipped,
        rows_this_run,
        seconds,
        duplicates,
        **counts,
    )
    atomic_write_text(output / "summary.json", json.dumps(summary.to_dict(), indent=1) + "\n")
    return summary


def _progress_bar(total: int, done: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="embedding", unit="row", disable=not enabled, smoothing=0.1)


def _ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("LLEMBED_NO_RAY", "") not in ("1", "true")
