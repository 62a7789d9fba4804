"""Serving: an OpenAI-compatible embeddings server with dynamic batching, vector search and a playground."""

from llembed.extras import require

require("serve", "the server")

from llembed.serving.app import create_app  # noqa: E402
from llembed.serving.batcher import DynamicBatcher  # noqa: E402
from llembed.serving.settings import ServerSettings  # noqa: E402

__all__ = ["DynamicBatcher", "ServerSettings", "create_app"]
