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

A request of more than ``PIECE_TOKENS`` input tokens (or, uncounted, of more than one forward batch) is cut into
pieces of about that size, each run alone; after each piece the remainder goes behind the requests that arrived
meanwhile, so a one-text request sent during a 2,000-text one waits for about one piece, not for the whole of it.
The pieces' results are joined in order.
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
PIECE_TOKENS = 2048
"""A request of more input tokens runs in pieces of about this many, interleaved with the requests queued behind
it. Measured (``bench_serve.py --fairness``: 48 one-sentence requests from 4 clients sent 1 s after a 2,048-text
request; 2-core AMD EPYC, SmolLM2 bf16): p50 / p99 of the small ones 2.5 / 4.1 s (the big one 39.7 s); with
4,096-token pieces 3.3 / 7.4 s (35.9 s); unsplit, as before, 0.1 / 34.0 s (36.2 s): the first ones waited for
all of the big request."""
LOAD_WAIT_SHARE = 0.25
"""Under load, how long a round waits for the previous round's clients to come back, as a share of that round's
model call. Measured (``benchmarks/bench_serve.py``, 2-core CPU): at 32 clients, rounds of 16.0 requests without it
and 27.8 with it, 111.0 → 121.9 requests/s; at 8 clients 72.7 → 93.5; one client unchanged."""


class Collector:
    """A request's future, resolved once every piece of it has run (results joined in piece order)."""

    def __init__(self) -> None:
        self.future: Future = Future()
        self.parts: dict[int, dict | list] = {}
        self.pieces = 1

    def add(self, piece: int, result) -> None:
        if self.future.done():  # another piece failed: the request has its answer
            return
        self.parts[piece] = result
        if len(self.parts) == self.pieces:
            ordered = [self.parts[i] for i in range(self.pieces)]
            self.future.set_result(ordered[0] if self.pieces == 1 else _join(ordered))

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass
class Job:
    texts: list
    """Texts to embed, or (reranking) the documents' token ids."""
    side: str
    task: str | None
    tokens: int
    query: str | None = None
    collector: Collector = field(default_factory=Collector)
    piece: int = 0
    queued_at: float = field(default_factory=time.perf_counter)

    @property
    def future(self) -> Future:
        return self.collector.future

    @property
    def kind(self) -> tuple[str, str | None, str | None]:
        return self.side, self.task, self.query

    def split(self, size: int) -> tuple[Job, Job]:
        """(the first ``size`` texts, the rest): two pieces of one request; tokens shared out by text count."""
        head_tokens = round(self.tokens * size / len(self.texts))
        self.collector.pieces += 1
        head = Job(self.texts[:size], self.side, self.task, head_tokens, self.query, self.collector, self.piece,
                   self.queued_at)  # fmt: skip
        rest = Job(self.texts[size:], self.side, self.task, self.tokens - head_tokens, self.query, self.collector,
                   self.piece + 1, self.queued_at)  # fmt: skip
        return head, rest


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
        self._pieces: deque[Job] = deque()  # the remainders of big requests, a piece each round they get
        self._piece_next = False  # after a round of other requests, the next round is a piece (no starving)
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
        leftover = list(self._held) + list(self._pieces)
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

    def _piece_size(self, job: Job) -> int:
        """Texts per piece of ``job``: about ``PIECE_TOKENS`` tokens' worth (one forward batch when uncounted)."""
        if job.tokens <= 0:
            return self.batch_size
        return max(1, PIECE_TOKENS * len(job.texts) // job.tokens)

    def _piece(self, job: Job) -> Job:
        """``job`` itself, or its first piece, the rest waiting among the pending pieces."""
        size = self._piece_size(job)
        if len(job.texts) <= size:
            return job
        head, rest = job.split(size)
        self._pieces.append(rest)
        return head

    def _next_round(self) -> Job | None:
        """The first job of the next round: requests that are waiting go before a big request's next piece, but
        after a round of them a piece runs, so a stream of small requests cannot starve a big one."""
        if self._closed:
            return None  # close() fails whatever is left
        if self._pieces and (self._piece_next or (not self._held and self._queue.empty())):
            return self._pieces.popleft()
        return self._take(None if not self._pieces else 0.0) or (self._pieces.popleft() if self._pieces else None)

    def _gather(self, first: Job) -> list[Job]:
        first = self._piece(first)
        if first.collector.pieces > 1:  # a piece runs alone: what waits behind it should not wait for more
            return [first]
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
            if job.collector.pieces > 1 or len(job.texts) > self._piece_size(job):  # big: its own rounds, in pieces
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
            first = self._next_round()
            if first is None:
                if self._closed:
                    return
                continue
            if first.future.done():  # a piece of a request that already failed
                continue
            batch = self._gather(first)
            self._piece_next = bool(self._pieces) and first.collector.pieces == 1
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
                batch[0].collector.fail(exc)
            else:
                for job in batch:
                    self._execute([job])
            return
        offset = 0
        for job in batch:
            job.collector.add(job.piece, _rows(result, offset, offset + len(job.texts)))
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


def _join(parts: list):
    """Pieces' results in order, as one call's would be."""
    if isinstance(parts[0], dict):
        return {spec: torch.cat([part[spec] for part in parts]) for spec in parts[0]}
    return [score for part in parts for score in part]


def _rows(result: dict[PoolSpec, torch.Tensor] | list[float], start: int, stop: int):
    """One job's part of a merged call's result (pooled vectors per spec, or scores)."""
    if isinstance(result, dict):
        return {spec: rows[start:stop] for spec, rows in result.items()}
    return result[start:stop]
