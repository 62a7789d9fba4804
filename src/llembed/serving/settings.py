"""Server limits and batching settings (``llembed serve`` flags have the same names)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerSettings:
    max_batch_tokens: int = 16384
    """Dynamic batching: input tokens merged into one model call."""
    max_wait_ms: float = 2.0
    """How long a lone request waits for company before it runs."""
    batch_size: int = 64
    """Texts per forward pass inside a merged call."""
    max_texts_per_request: int = 2048
    max_tokens_per_text: int = 8192
    max_tokens_per_request: int = 300_000
    max_body_bytes: int = 32 * 1024 * 1024
    body_timeout_s: float = 30.0
    """A client that has not sent its whole body by then gets 408 (a slow client holds only its own request)."""
    max_search_k: int = 1000
    max_documents_per_rerank: int = 1000
    """Documents one ``/v1/rerank`` request may send (Cohere's limit)."""
    api_keys: tuple[str, ...] = field(default_factory=tuple)
    """Bearer keys accepted on /v1/*; empty: no auth. Also read from LLEMBED_API_KEYS (comma-separated)."""

    def with_env_keys(self) -> ServerSettings:
        extra = tuple(k.strip() for k in os.environ.get("LLEMBED_API_KEYS", "").split(",") if k.strip())
        if not extra:
            return self
        from dataclasses import replace

        return replace(self, api_keys=tuple(dict.fromkeys(self.api_keys + extra)))
