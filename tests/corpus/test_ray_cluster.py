"""embed-corpus on a real two-node Ray cluster on this machine: a head (``ray start --head``) and a second node
(``ray start --address …``, its own resources), the job joining with ``--address``, shared storage at the same
path. The second node is killed (SIGKILL of its raylet and workers) mid-job: the job still finishes with every
id exactly once, equal to the single-process output."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .test_ray import LLEMBED, _assert_complete, _descendants, _wait_for_shards

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_nodes():
    """(address, environment): a head of 1 CPU and a second node of 1 CPU with a ``second_node`` resource."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's unix sockets live here: paths must stay short
    # loopback only, no dashboard; no token auth between the two local nodes
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    head = [RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
            "--node-ip-address=127.0.0.1", f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
    node = [RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"second_node": 1}',
            "--node-ip-address=127.0.0.1"]  # fmt: skip
    try:
        for command in (head, node):
            started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _second_node_processes() -> list[int]:
    """The second node's raylet (the one started with the ``second_node`` resource) and everything under it."""
    raylets = [
        pid for pid, command in _descendants(1).items() if "/raylet/raylet " in command and "second_node" in command
    ]
    assert len(raylets) == 1, "the second node's raylet was not found"
    return raylets + list(_descendants(raylets[0]))


def test_a_killed_node_mid_job_still_gives_every_row_once(tmp_path, two_nodes, big_corpus, big_reference, recipe_file):
    address, env = two_nodes
    corpus, ids = big_corpus
    out = tmp_path / "out"  # one path, seen by both nodes (shared storage)
    command = [LLEMBED, "embed-corpus", str(corpus), str(out), "--recipe", str(recipe_file), "--runner", "ray",
               "--address", address, "--concurrency", "2", "--cpus-per-actor", "1", "--shard-rows", "10",
               "--batch-size", "10"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_for_shards(out, process, 6)
        victims = _second_node_processes()
        assert any("ShardEmbedder" in _descendants(1).get(pid, "") for pid in victims), "no actor ran on node 2"
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):  # a worker may end with its raylet
                os.kill(pid, signal.SIGKILL)
        done_at_kill = len(list(out.glob("part-*.parquet")))
        assert done_at_kill < 120, "the node must die mid-job for this test to mean anything"
        output, _ = process.communicate(timeout=420)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-4000:]
    _assert_complete(out, ids, big_reference)
