"""Prometheus metrics of one server (its own registry, so several apps in one process don't collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llembed.serving.batcher import BatchRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("llembed_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.input_tokens = Counter("llembed_input_tokens", "Tokens of embedded input texts", ["model"], registry=r)
        self.texts = Counter("llembed_input_texts", "Embedded input texts", ["model"], registry=r)
        self.latency = Histogram(
            "llembed_request_latency_seconds", "Request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "llembed_batch_requests", "Requests merged into one model call", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_texts = Histogram(
            "llembed_batch_texts", "Texts in one model call", ["model"], buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "llembed_batch_tokens", "Input tokens in one model call", ["model"], buckets=TOKEN_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "llembed_batch_seconds", "Model time of one call", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "llembed_queue_wait_seconds",
            "Time a request waited for the model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def batch_observer(self, model: str):
        def observe(record: BatchRecord) -> None:
            self.batch_requests.labels(model).observe(record.requests)
            self.batch_texts.labels(model).observe(record.texts)
            self.batch_tokens.labels(model).observe(record.tokens)
            self.batch_seconds.labels(model).observe(record.seconds)
            for wait in record.waits:
                self.queue_wait.labels(model).observe(wait)

        return observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
