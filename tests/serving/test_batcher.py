"""Dynamic batching merges concurrent requests without changing any vector."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import llembed.serving.batcher as batcher_module
from llembed.errors import InputError
from llembed.serving import DynamicBatcher

TEXTS = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "rain", "stocks"] * 4)]


def _pool(embedder, texts, side="text", task=None):
    return embedder.pool(texts, [embedder.spec], side=side, task=task)[embedder.spec]


def _held(embedder, **settings):
    """A batcher whose model thread is busy on a first (1-text) request until ``release()``: whatever is
    submitted meanwhile queues up, as under load."""
    records = []
    batcher = DynamicBatcher(embedder, max_wait_ms=0, on_batch=records.append, **settings)
    entered, gate = threading.Event(), threading.Event()
    original = batcher._pool

    def busy(texts, side, task):
        entered.set()
        gate.wait(30)
        return original(texts, side, task)

    batcher._pool = busy
    blocker = batcher.submit(["busy"], tokens=5)
    assert entered.wait(30)

    def release():
        gate.set()
        blocker.result(30)

    return batcher, records, release


def test_queued_requests_merge_and_each_gets_its_own_rows(tiny_embedder):
    batcher, records, release = _held(tiny_embedder)
    try:
        futures = [batcher.submit(TEXTS[2 * i : 2 * i + 2], tokens=10) for i in range(8)]
        release()
        results = [f.result(30)[tiny_embedder.spec] for f in futures]
    finally:
        batcher.close()
    assert [r.requests for r in records] == [1, 8]  # the 8 queued requests became one model call
    assert [r.texts for r in records] == [1, 16]
    assert torch.allclose(torch.cat(results), _pool(tiny_embedder, TEXTS), atol=1e-5)


def test_requests_of_another_side_or_task_are_not_merged(tiny_embedder):
    batcher, records, release = _held(tiny_embedder)
    try:
        futures = [
            batcher.submit(TEXTS[:2], "text"),
            batcher.submit(TEXTS[2:4], "query"),
            batcher.submit(TEXTS[4:6], "text"),
            batcher.submit(TEXTS[6:8], "query", "Find the topic"),
        ]
        release()
        results = [f.result(30)[tiny_embedder.spec] for f in futures]
    finally:
        batcher.close()
    assert [r.requests for r in records] == [1, 2, 1, 1]  # only the two plain-text requests shared a call
    assert torch.allclose(results[0], _pool(tiny_embedder, TEXTS[:2]), atol=1e-5)
    assert torch.allclose(results[1], _pool(tiny_embedder, TEXTS[2:4], "query"), atol=1e-5)
    assert torch.allclose(results[3], _pool(tiny_embedder, TEXTS[6:8], "query", "Find the topic"), atol=1e-5)


def test_the_token_budget_splits_calls(tiny_embedder):
    batcher, records, release = _held(tiny_embedder, max_batch_tokens=25)
    try:
        futures = [batcher.submit(TEXTS[i : i + 1], tokens=10) for i in range(5)]
        release()
        [f.result(30) for f in futures]
    finally:
        batcher.close()
    assert [r.tokens for r in records] == [5, 20, 20, 10]  # at most 25 tokens per call, in arrival order


def test_a_bad_request_fails_alone(tiny_embedder):
    strict = tiny_embedder.replace(max_length=24, truncation=False)
    batcher, _, release = _held(strict)
    try:
        good = batcher.submit(["fine text"])
        bad = batcher.submit(["word " * 50])
        also_good = batcher.submit(["another fine text"])
        release()
        assert torch.allclose(good.result(30)[strict.spec], _pool(strict, ["fine text"]), atol=1e-5)
        assert torch.allclose(also_good.result(30)[strict.spec], _pool(strict, ["another fine text"]), atol=1e-5)
        with pytest.raises(InputError, match="over max_length"):
            bad.result(30)
    finally:
        batcher.close()


def test_a_lone_request_runs_without_waiting_for_company(tiny_embedder):
    batcher = DynamicBatcher(tiny_embedder, max_wait_ms=1)
    try:
        assert torch.allclose(
            batcher.submit(TEXTS[:3]).result(30)[tiny_embedder.spec], _pool(tiny_embedder, TEXTS[:3]), atol=1e-5
        )
    finally:
        batcher.close()


def test_under_load_a_round_waits_for_the_clients_of_the_last_one(tiny_embedder):
    records = []
    batcher = DynamicBatcher(tiny_embedder, max_wait_ms=0, on_batch=records.append)
    original, gate = batcher._pool, threading.Event()

    def slow(texts, side, task):  # a 0.8 s model call: the next round may wait 0.2 s for company
        gate.wait(30)
        time.sleep(0.8)
        return original(texts, side, task)

    batcher._pool = slow
    try:
        first = [batcher.submit(TEXTS[i : i + 1]) for i in range(4)]
        gate.set()
        [f.result(30) for f in first]  # one round of 1 (it started alone), then one of 3 — or one of 4
        merged_before = records[-1].requests
        returning = [batcher.submit(TEXTS[4:5])]
        time.sleep(0.02)  # the rest of the last round's clients come back a little later
        returning += [batcher.submit(TEXTS[5 + i : 6 + i]) for i in range(merged_before - 1)]
        results = [f.result(30)[tiny_embedder.spec] for f in returning]
    finally:
        batcher.close()
    assert merged_before > 1 and records[-1].requests == merged_before  # they shared one call
    assert torch.allclose(torch.cat(results), _pool(tiny_embedder, TEXTS[4 : 4 + merged_before]), atol=1e-5)


def test_a_big_request_runs_in_pieces_and_small_ones_go_between(tiny_embedder, monkeypatch):
    """Issue 32's head-of-line blocking: a small request queued behind a big one is answered after one piece
    of it, not after all of it; the big request's rows equal one call's."""
    monkeypatch.setattr(batcher_module, "PIECE_TOKENS", 80)  # 40 texts of 400 tokens: pieces of 8 texts
    texts = [f"{TEXTS[i % len(TEXTS)]} again {i}" for i in range(40)]
    batcher, records, release = _held(tiny_embedder, batch_size=2)
    order: list[str] = []
    try:
        big = batcher.submit(texts, tokens=400)
        big.add_done_callback(lambda _: order.append("big"))
        time.sleep(0.05)
        small = batcher.submit(["a small request"], tokens=5)
        small.add_done_callback(lambda _: order.append("small"))
        release()
        joined = big.result(30)[tiny_embedder.spec]
        small.result(30)
    finally:
        batcher.close()
    assert order == ["small", "big"]
    # the blocker, the big one's first piece (alone), the small one, then the big one's other pieces
    assert [r.texts for r in records] == [1, 8, 1, 8, 8, 8, 8]
    assert sum(r.texts for r in records) == 1 + 40 + 1
    assert torch.allclose(joined, _pool(tiny_embedder, texts), atol=1e-5)


def test_a_failing_piece_fails_its_request_once(tiny_embedder):
    strict = tiny_embedder.replace(max_length=24, truncation=False)
    texts = ["fine text"] * 12 + ["word " * 50] + ["fine text"] * 3
    batcher, _, release = _held(strict, batch_size=2)
    try:
        big = batcher.submit(texts)
        after = batcher.submit(["another fine text"])
        release()
        with pytest.raises(InputError, match="over max_length"):
            big.result(30)
        assert torch.allclose(after.result(30)[strict.spec], _pool(strict, ["another fine text"]), atol=1e-5)
    finally:
        batcher.close()
