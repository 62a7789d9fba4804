"""Dynamic batching: concurrent requests are merged into token-budget batches on one model thread.

Requests queue while the model is busy; each round takes the oldest request and adds every queued request of
the same kind (side and task; for reranking, the same query and instruction, whose cached head they share)
until ``max_batch_tokens`` is reached or, when the queue is empty, until the oldest has waited ``max_wait_ms``.
Under load (the previous round merged several requests) a round waits instead for as many requests as that round
had, for at most a quarter of its model time: closed-loop clients answered by one round would otherwise miss the
next and the load would split into two half-size rounds.
Under load the waits are spent computing anyway, so throughput rises with concurrency; alone a request waits at
most ``max_wait_ms``. Batched vectors equal the single-request ones
(llembed's batch-equals-singles property), so merging changes speed only.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from llembed.embedder import Embedder, PoolSpec
from llembed.reranker import Reranker

logger = logging.getLogger(__name__)


RERANK = "rerank"  # a job's side when it scores documents for a query
LOAD_WAIT_SHARE = 0.25
"""Under load, how long a round waits for the previous round's clients to come back, as a share of that round's
model call. Measured (``benchmarks/bench_serve.py``, 2-core CPU): at 32 clients, rounds of 16.0 requests without it
and 27.8 with it, 111.0 → 121.9 requests/s; at 8 clients 72.7 → 93.5; one client unchanged."""


@dataclass
class Job:
    texts: list
    """Texts to embed, or (reranking) the documents' token ids."""
    side: str
    task: str | None
    tokens: int
    query: str | None = None
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)

    @property
    def kind(self) -> tuple[str, str | None, str | None]:
        return self.side, self.task, self.query


@dataclass
class BatchRecord:
    """What one model call did (for metrics)."""

    requests: int
    texts: int
    tokens: int
    seconds: float
    waits: list[float]


class DynamicBatcher:
    """One model thread for an embedder and, on the same model (or alone), a reranker."""

    def __init__(
        self,
        embedder: Embedder | None,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 2.0,
        batch_size: int = 64,
        on_batch: Callable[[BatchRecord], None] | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        if max_batch_tokens <= 0 or max_wait_ms < 0 or batch_size <= 0:
            raise ValueError("max_batch_tokens and batch_size must be positive, max_wait_ms not negative")
        if embedder is None and reranker is None:
            raise ValueError("a batcher needs an embedder or a reranker")
        self.embedder = embedder
        self.reranker = reranker
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.batch_size = batch_size
        self.on_batch = on_batch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._held: deque[Job] = deque()  # taken off the queue but left for a later round (other kind / no room)
        self._closed = False
        self._last_requests, self._last_seconds = 0, 0.0  # the last model call's size and duration
        self._thread = threading.Thread(target=self._run, name="llembed-batcher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers
    def submit(self, texts: Sequence[str], side: str = "text", task: str | None = None, tokens: int = 0) -> Future:
        """Queue ``texts``; the future resolves to their pooled float32 vectors (``Embedder.pool`` output)."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        job = Job(list(texts), side, task, tokens)
        self._queue.put(job)
        return job.future

    async def embed(self, texts: Sequence[str], side: str = "text", task: str | None = None, tokens: int = 0):
        return await asyncio.wrap_future(self.submit(texts, side, task, tokens))

    def submit_rerank(
        self, query: str, document_ids: Sequence[Sequence[int]], task: str | None = None, tokens: int = 0
    ) -> Future:
        """Queue documents (token ids) to score for ``query``; the future resolves to their raw scores."""
        if self.reranker is None:
            raise RuntimeError("this batcher has no reranker")
        if self._closed:
            raise RuntimeError("the batcher is closed")
        job = Job([list(ids) for ids in document_ids], RERANK, task, tokens, query)
        self._queue.put(job)
        return job.future

    async def rerank(
        self, query: str, document_ids: Sequence[Sequence[int]], task: str | None = None, tokens: int = 0
    ) -> list[float]:
        return await asyncio.wrap_future(self.submit_rerank(query, document_ids, task, tokens))

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
        leftover = list(self._held)
        while True:  # nobody will run these any more: fail them rather than leave their callers waiting
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for job in leftover:
            if job is not None and not job.future.done():
                job.future.set_exception(RuntimeError("the batcher was closed before this request ran"))

    # ------------------------------------------------------------------ the model thread
    def _take(self, timeout: float | None) -> Job | None:
        if self._held:
            return self._held.popleft()
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _gather(self, first: Job) -> list[Job]:
        batch, tokens = [first], first.tokens
        # under load (the last call merged several requests) the clients it answered come back within a fraction
        # of a model call: wait for as many requests as it had, for up to LOAD_WAIT_SHARE of its duration
        company = self._last_requests if self._last_requests > 1 else 0
        wait = max(self.max_wait, LOAD_WAIT_SHARE * self._last_seconds) if company else self.max_wait
        deadline = time.perf_counter() + wait
        skipped: list[Job] = []
        while tokens < self.max_batch_tokens:
            arrived = company and len(batch) >= company  # then take only what is already queued
            job = self._take(0.0 if arrived else max(0.0, deadline - time.perf_counter()))
            if job is None:
                if self._closed:
                    self._queue.put(None)  # the close sentinel (or an empty queue): let _run see it and stop
                break
            if job.kind != first.kind:  # another side or task: it needs another prompt, so another batch
                skipped.append(job)
                continue
            if tokens + job.tokens > self.max_batch_tokens:
                skipped.append(job)
                break
            batch.append(job)
            tokens += job.tokens
        self._held.extendleft(reversed(skipped))  # oldest first next round
        return batch

    def _run(self) -> None:
        while True:
            first = self._take(None)
            if first is None:
                if self._closed:
                    return
                continue
            batch = self._gather(first)
            self._execute(batch)

    def _execute(self, batch: list[Job]) -> None:
        started = time.perf_counter()
        waits = [started - job.queued_at for job in batch]
        texts = [text for job in batch for text in job.texts]
        try:
            result = self._work(texts, batch[0])
            self._last_requests, self._last_seconds = len(batch), time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - isolate the request that caused it
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
            else:
                for job in batch:
                    self._execute([job])
            return
        offset = 0
        for job in batch:
            job.future.set_result(_rows(result, offset, offset + len(job.texts)))
            offset += len(job.texts)
        if self.on_batch is not None:
            record = BatchRecord(
                len(batch), len(texts), sum(j.tokens for j in batch), time.perf_counter() - started, waits
            )
            self.on_batch(record)

    def _work(self, items: list, first: Job) -> dict[PoolSpec, torch.Tensor] | list[float]:
        if first.side == RERANK:
            return self.reranker.score_tokenized(first.query, items, first.task, batch_size=self.batch_size)
        return self._pool(items, first.side, first.task)

    def _pool(self, texts: list[str], side: str, task: str | None) -> dict[PoolSpec, torch.Tensor]:
        # the lexical specs too (the same specs for a one-layer recipe): sparse search reads them
        specs = self.embedder.specs(sparse=self.embedder.backbone.is_decoder)
        return self.embedder.pool(
            texts, specs, side=side, task=task, batch_size=self.batch_size, show_progress_bar=False
        )


def _rows(result: dict[PoolSpec, torch.Tensor] | list[float], start: int, stop: int):
    """One job's part of a merged call's result (pooled vectors per spec, or scores)."""
    if isinstance(result, dict):
        return {spec: rows[start:stop] for spec, rows in result.items()}
    return result[start:stop]
