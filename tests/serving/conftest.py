"""A real uvicorn server on 127.0.0.1 (a free port, in a thread) over tiny models and a small real corpus."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from llembed.evaluation.bundled import load_bundled


@contextlib.contextmanager
def running(app):
    """Serve ``app`` on a free loopback port; yields the base URL, shuts down on exit."""
    import httpx
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dirs):
    from llembed import Embedder

    return Embedder.from_pretrained(str(tiny_model_dirs["llama"]), prompt="prompteol", pooling="last", dtype="float32")


@pytest.fixture(scope="session")
def scifact_docs():
    """The first 60 documents of the bundled SciFact corpus (real text), as an id → text dict."""
    corpus = load_bundled("scifact").corpus
    return dict(list(corpus.items())[:60])


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, scifact_docs):
    import json

    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"id": k, "text": v[:400]}) + "\n" for k, v in scifact_docs.items()), encoding="utf-8"
    )
    return path
