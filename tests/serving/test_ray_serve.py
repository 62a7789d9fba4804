"""``llembed serve --ray-replicas 2`` on a local Ray: two replicas, each with its own batcher, answer exactly what
the library computes."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

TEXTS = [
    "A man is playing a guitar.",
    "Vitamin D deficiency is associated with a higher risk of respiratory infection.",
    "Cats sleep.",
    "The committee postponed its decision until the next meeting.",
    "Protein folding is guided by hydrophobic interactions.",
    "She bought fresh bread at the market.",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_replicas_answer_like_the_library(ray_cluster, tmp_path, tiny_embedder):
    from ray import serve

    from llembed.serving import ray_serve
    from llembed.serving.assembly import AppSpec

    recipe_file = tiny_embedder.recipe.save(tmp_path / "recipe.yaml")
    spec = AppSpec(recipe=str(recipe_file), name="tiny")
    try:
        url = ray_serve.deploy(spec, replicas=2, port=_free_port(), cpus_per_replica=1.0)
        assert ray_serve.running_replicas() == 2
        deadline = time.monotonic() + 60
        while httpx.get(url + "/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the Serve proxy did not come up"
            time.sleep(0.2)

        def ask(count: int) -> tuple[list[str], np.ndarray]:
            texts = TEXTS[: 1 + count % len(TEXTS)]
            reply = httpx.post(url + "/v1/embeddings", json={"model": "tiny", "input": texts}, timeout=60)
            reply.raise_for_status()
            return texts, np.array([d["embedding"] for d in reply.json()["data"]])

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(24)))
        for texts, vectors in answers:
            np.testing.assert_allclose(vectors, tiny_embedder.encode(texts), atol=1e-6)
        # each replica serves the whole app: errors keep OpenAI's shape behind the proxy too
        bad = httpx.post(url + "/v1/embeddings", json={"model": "other", "input": ["x"]}, timeout=30)
        assert bad.status_code == 404 and bad.json()["error"]["code"] == "model_not_found"
    finally:
        serve.shutdown()
