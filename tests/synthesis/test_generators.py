"""The real generators: the default model locally, and the same model behind a real OpenAI-compatible HTTP
server on 127.0.0.1 (started here)."""

import json
import socket
import threading
import time

import pytest

from llembed.errors import InputError
from llembed.evaluation.bundled import load_bundled
from llembed.generation import GenerationSettings
from llembed.synthesis import E5Options, GeckoOptions, LocalGenerator, OpenAIGenerator, run_e5, run_gecko
from llembed.training.data import load_examples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_generator(default_model_dir):
    return LocalGenerator(None, batch_size=8, seed=0)


@pytest.fixture(scope="module")
def endpoint(local_generator):
    import uvicorn

    from llembed.synthesis.chat_server import create_chat_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_chat_app(local_generator), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "chat server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_local_generator_writes_valid_training_examples(local_generator, tiny_model_dirs, tmp_path):
    """Gecko with the real default model as generator and ranker yields valid examples; E5 runs and accounts
    for every attempt (a 135M model's JSON is often unusable, and that must be counted, not crash)."""
    from llembed import Embedder

    scifact = load_bundled("scifact")
    passages = {doc: text for doc, text in list(scifact.corpus.items())[:8]}
    retriever = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), truncation=True, max_length=256)
    gecko = run_gecko(
        local_generator,
        tmp_path / "gecko.jsonl",
        passages,
        retriever,
        GeckoOptions(candidates=3, max_attempts=2, batch=8),
        filter_embedder=None,
    )
    assert gecko.written >= 1, gecko.drops.summary()
    for example in load_examples(gecko.output):
        assert example.query.strip() and example.positive in passages.values()
        assert example.negatives[0] in passages.values() and example.negatives[0] != example.positive

    options = E5Options("cooking", kinds=("sts",), tasks_per_kind=1, examples_per_task=3, max_attempts=2)
    e5 = run_e5(local_generator, tmp_path / "e5.jsonl", options)
    state = json.loads((tmp_path / "e5.state.json").read_text())
    if state["tasks"]["sts"]:  # every example was kept or dropped with its reason, none lost
        lines = [(tmp_path / f"e5.{part}.jsonl").read_text().splitlines() for part in ("raw", "dropped")]
        assert sum(map(len, lines)) == 3
    else:
        assert any(reason.startswith("brainstorm") for reason in e5.drops.reasons)
    for example in load_examples(e5.output) if e5.written else []:
        assert example.query != example.positive and example.negatives


def test_endpoint_path_runs_gecko_over_http(endpoint, tiny_model_dirs, tmp_path):
    from llembed import Embedder

    generator = OpenAIGenerator(endpoint, "smollm2-135m")
    reply = generator.chat([[{"role": "user", "content": "Say hello."}]], GenerationSettings(16, 0.0))[0]
    assert isinstance(reply, str) and reply.strip()

    scifact = load_bundled("scifact")
    passages = {doc: text for doc, text in list(scifact.corpus.items())[:6]}
    retriever = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), truncation=True, max_length=256)
    options = GeckoOptions(candidates=3, negative_rank=2, max_attempts=2, batch=6)
    result = run_gecko(generator, tmp_path / "gecko.jsonl", passages, retriever, options, filter_embedder=None)
    assert result.drops.kept + sum(result.drops.reasons.values()) >= 6  # every passage was attempted
    for row in (tmp_path / "gecko.raw.jsonl").read_text().splitlines():
        assert '"positive_id"' in row  # provenance kept in the raw log
    if result.written:
        example = load_examples(result.output)[0]
        assert example.positive in passages.values() and example.negatives[0] in passages.values()


def test_endpoint_errors_are_clear(endpoint):
    wrong_model = OpenAIGenerator(endpoint, "no-such-model")
    with pytest.raises(InputError, match="404"):
        wrong_model.chat([[{"role": "user", "content": "hi"}]])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    unreachable = OpenAIGenerator(f"http://127.0.0.1:{closed}/v1", "x", max_attempts=2)
    with pytest.raises(InputError, match="failed 2 times"):
        unreachable.chat([[{"role": "user", "content": "hi"}]])
