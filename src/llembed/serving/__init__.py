"""Serving: an OpenAI-compatible embeddings server with dynamic batching, vector search and a playground."""

from llembed.serving.app import create_app
from llembed.serving.batcher import DynamicBatcher
from llembed.serving.settings import ServerSettings

__all__ = ["DynamicBatcher", "ServerSettings", "create_app"]
