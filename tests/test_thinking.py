"""Think, then embed: queries embedded with a generated rationale, from a fake endpoint served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from llembed import Embedder, InputError, Recipe, RecipeError

QUERIES = ["Do statins lower the risk of breast cancer?", "What causes scurvy?", "Is coffee bad for the heart?"]
DOCUMENTS = ["Statins reduce cholesterol.", "Vitamin C deficiency causes scurvy."]


class FakeChat:
    """An OpenAI-compatible chat endpoint: the reply names the message's last word; it can fail on request."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.fail_after: int | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                message = body["messages"][-1]["content"]
                if fake.fail_after is not None and len(fake.messages) >= fake.fail_after:
                    self.send_response(503)
                    self.end_headers()
                    return
                fake.messages.append(message)
                reply = {"choices": [{"message": {"role": "assistant", "content": f" about  {message.split()[-1]} "}}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chat(monkeypatch, tmp_path):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path / "cache"))
    fake = FakeChat()
    yield fake
    fake.server.shutdown()


def make(backbones, **fields) -> Embedder:
    return Embedder(backbones["llama"], Recipe(prompt="none", pooling="mean", dtype="float32", **fields))


def test_queries_are_embedded_with_their_rationale_and_documents_as_they_are(tiny_backbones, chat):
    prompt = "Explain: {text}"
    thinking = make(tiny_backbones, think=chat.url, think_model="fake", think_prompt=prompt)
    plain = make(tiny_backbones)
    vectors = thinking.encode_queries(QUERIES)
    assert chat.messages == [f"Explain: {q}" for q in QUERIES]
    by_hand = plain.encode([f"{q}\nabout {q.split()[-1]}" for q in QUERIES])  # whitespace of the reply collapsed
    np.testing.assert_allclose(vectors, by_hand, atol=1e-6)
    assert thinking.last_stats["generated"] == 3
    np.testing.assert_allclose(thinking.encode_documents(DOCUMENTS), plain.encode_documents(DOCUMENTS), atol=1e-6)
    assert len(chat.messages) == 3  # documents ask the generator nothing


def test_a_rerun_reads_the_disk_cache_and_generates_nothing(tiny_backbones, chat):
    first = make(tiny_backbones, think=chat.url).encode_queries(QUERIES)
    again = make(tiny_backbones, think=chat.url)  # a new embedder: only the disk cache is shared
    np.testing.assert_allclose(again.encode_queries(QUERIES + QUERIES[:1])[:3], first, atol=1e-6)
    assert len(chat.messages) == 3 and again.last_stats["generated"] == 0
    other_prompt = make(tiny_backbones, think=chat.url, think_prompt="Why {text}")
    other_prompt.encode_queries(QUERIES[:1])
    assert len(chat.messages) == 4  # another prompt is another cache key


def test_a_failing_endpoint_is_one_clear_error_and_keeps_only_finished_batches(tiny_backbones, chat):
    many = [f"question number {i}" for i in range(12)]  # two generation batches of 8 and 4
    chat.fail_after = 8
    embedder = make(tiny_backbones, think=chat.url)
    with pytest.raises(InputError, match=r"chat/completions failed 2 times; last error: HTTP 503"):
        embedder.encode_queries(many)
    chat.fail_after = None
    retry = make(tiny_backbones, think=chat.url)
    retry.encode_queries(many)
    assert retry.last_stats["generated"] == 4  # the first batch of 8 was kept


def test_the_embedding_model_can_think_itself(tiny_backbones, monkeypatch, tmp_path):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    embedder = make(tiny_backbones, think="self", think_tokens=6)
    side = embedder.backbone.tokenizer.padding_side
    thinker = embedder.thinker
    expanded = thinker.expand(QUERIES[:2])
    assert [text.split("\n")[0] for text in expanded] == QUERIES[:2]
    assert thinker.expand(QUERIES[:2]) == expanded and thinker.last_stats["generated"] == 0  # greedy, cached
    assert embedder.backbone.tokenizer.padding_side == side  # generation pads its own copy on the left


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"think": "self", "think_prompt": "no placeholder"}, "think_prompt must hold {text}"),
        ({"think": "self", "think_tokens": 0}, "think_tokens must be a positive integer"),
        ({"think": " "}, "think must be 'self', a model or an endpoint URL"),
    ],
)
def test_bad_think_fields(fields, message):
    with pytest.raises(RecipeError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Recipe(**fields)
