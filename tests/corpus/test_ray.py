"""The Ray runner on a local 2-CPU Ray: equal to the single-process output, bad rows reported, and a job killed
mid-way (driver or worker, SIGKILL) ends with exactly one vector per input row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from llembed.corpus import ShardOptions, embed_corpus, read_vectors
from llembed.errors import InputError

LLEMBED = str(Path(sys.executable).parent / "llembed")


def test_ray_output_equals_the_single_process_output(ray_cluster, tmp_path, corpus_dir, tiny_recipe, local_output):
    local_dir, local_summary = local_output
    out = tmp_path / "ray"
    summary = embed_corpus([corpus_dir], out, tiny_recipe, shard_rows=8, runner="ray", show_progress_bar=False)
    assert summary.runner == "ray"
    assert (summary.rows, summary.vectors, summary.errors) == (local_summary.rows, 61, 2)
    ray_vectors, local_vectors = read_vectors(out), read_vectors(local_dir)
    assert ray_vectors.ids == local_vectors.ids
    np.testing.assert_allclose(ray_vectors.vectors, local_vectors.vectors, atol=1e-6)
    assert (out / "errors.jsonl").read_text() == (local_dir / "errors.jsonl").read_text()
    assert (
        json.loads((out / "_manifest.json").read_text())["recipe_hash"]
        == json.loads((local_dir / "_manifest.json").read_text())["recipe_hash"]
    )


def test_ray_on_error_stop_names_the_row(ray_cluster, tmp_path, corpus_dir, tiny_recipe):
    # shards run in parallel: the first bad row met names its line (3 and 6 may be in different shards' hands)
    with pytest.raises(InputError, match=r"a.jsonl: line (3: not valid JSON|6: no 'text' field)"):
        embed_corpus([corpus_dir], tmp_path / "out", tiny_recipe, ShardOptions(on_error="stop"), shard_rows=8,
                     runner="ray", show_progress_bar=False)  # fmt: skip


def _start(corpus: Path, out: Path, recipe: Path) -> subprocess.Popen:
    command = [LLEMBED, "embed-corpus", str(corpus), str(out), "--recipe", str(recipe), "--runner", "ray",
               "--num-cpus", "2", "--shard-rows", "10", "--batch-size", "10"]  # fmt: skip
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _wait_for_shards(out: Path, process: subprocess.Popen, count: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(list(out.glob("part-*.parquet")))
        if done >= count:
            return done
        if process.poll() is not None:
            raise AssertionError(f"the job ended before {count} shards were written:\n{process.stdout.read()}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError("no shards written in time")


def _descendants(root: int) -> dict[int, str]:
    """pid → command line of every process under ``root``."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                commands[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = commands.get(pid, "")
                frontier.append(pid)
    return found


def _assert_complete(out: Path, ids: list[str], reference) -> None:
    data = read_vectors(out)
    assert sorted(data.ids) == sorted(ids) and len(set(data.ids)) == len(ids)  # none missing, none twice
    assert data.ids == reference.ids
    np.testing.assert_allclose(data.vectors, reference.vectors, atol=1e-6)


def test_killed_driver_then_rerun_gives_each_row_once(tmp_path, big_corpus, big_reference, recipe_file):
    corpus, ids = big_corpus
    out = tmp_path / "out"
    process = _start(corpus, out, recipe_file)
    done = _wait_for_shards(out, process, 3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    finished = len(list(out.glob("part-*.parquet")))
    assert done <= finished < 120, "the job must be killed mid-way for this test to mean anything"
    assert not (out / "summary.json").exists()
    rerun = _start(corpus, out, recipe_file)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_skipped"] >= finished and summary["vectors"] == 1200
    _assert_complete(out, ids, big_reference)


def test_killed_worker_is_replaced_and_the_job_finishes(tmp_path, big_corpus, big_reference, recipe_file):
    corpus, ids = big_corpus
    out = tmp_path / "out"
    process = _start(corpus, out, recipe_file)
    _wait_for_shards(out, process, 3)
    workers = [pid for pid, command in _descendants(process.pid).items() if "ShardEmbedder" in command]
    assert workers, "no Ray Data worker found"
    os.kill(workers[0], signal.SIGKILL)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output  # Ray Data restarts the actor and retries its shard
    assert len(list(out.glob("part-*.parquet"))) == 120
    _assert_complete(out, ids, big_reference)
