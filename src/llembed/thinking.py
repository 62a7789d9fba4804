"""Reasoning-aware queries ("think, then embed"): a generator first writes a short rationale or expansion of the
query, and the query is embedded together with it; documents are embedded as they are.

It follows query expansion by generation (Query2doc, Wang et al. 2023, arXiv:2303.07678; HyDE, Gao et al.
2022, arXiv:2212.10496) and think-then-embed retrievers (e.g. Think-Then-Embed, arXiv:2510.05014): an LLM makes
the query's intent and the facts an answer holds explicit before the embedding model sees it.

The generator is the embedding model itself (``think: self``, through its chat template), another local chat
model, or any OpenAI-compatible endpoint (``think: http://host:port/v1``, ``think_model`` naming the served
model). Decoding is greedy, so a rationale is a function of (generator, prompt, length, text): it is cached on
disk under that key and a re-run generates nothing it generated before. The cache is append-only JSON lines,
written a whole batch at a time; a line cut short by a crash is skipped when read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llembed.errors import InputError
from llembed.generation import GenerationSettings, LocalGenerator, OpenAIGenerator
from llembed.model_sources import cache_root

if TYPE_CHECKING:
    from llembed.backbone import Backbone
    from llembed.recipe import Recipe

DEFAULT_THINK_PROMPT = (
    "Think briefly about what this search query is really asking for, then write a short passage with the facts "
    "and terms a relevant document would contain. Answer with the passage only.\n\nQuery: {text}"
)
GENERATE_BATCH = 8


class Thinker:
    """Writes (and caches) a rationale per query; :meth:`expand` returns each query followed by it."""

    def __init__(self, generator, identity: str, prompt: str, max_new_tokens: int, cache_dir: Path) -> None:
        self.generator = generator
        self.prompt = prompt
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, top_p=1.0)
        key = json.dumps([identity, prompt, max_new_tokens], ensure_ascii=False)
        self.cache_file = cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.jsonl"
        self._cache: dict[str, str] | None = None
        self.last_stats: dict[str, float] = {}
        """Queries generated (not found in the cache) and the seconds it took, for the last :meth:`expand`."""

    def expand(self, texts: Sequence[str], task: str | None = None) -> list[str]:
        """Each text followed by its rationale (generated once, then read from the disk cache)."""
        cache = self._load()
        missing = list(dict.fromkeys(t for t in texts if self._key(t, task) not in cache))
        started = time.perf_counter()
        for start in range(0, len(missing), GENERATE_BATCH):
            batch = missing[start : start + GENERATE_BATCH]
            conversations = [[{"role": "user", "content": self._message(text, task)}] for text in batch]
            replies = self.generator.chat(conversations, self.settings)
            fresh = {self._key(t, task): " ".join(reply.split()) for t, reply in zip(batch, replies, strict=True)}
            self._append(fresh)
            cache |= fresh
        self.last_stats = {"generated": len(missing), "generation_seconds": time.perf_counter() - started}
        return [_joined(text, cache[self._key(text, task)]) for text in texts]

    def _message(self, text: str, task: str | None) -> str:
        return self.prompt.replace("{task}", task or "").replace("{text}", text)

    def _key(self, text: str, task: str | None) -> str:
        return self._message(text, task)

    def _load(self) -> dict[str, str]:
        if self._cache is None:
            self._cache = {}
            if self.cache_file.is_file():
                for line in self.cache_file.read_text(encoding="utf-8").splitlines():
                    try:
                        row = json.loads(line)
                        self._cache[row["message"]] = row["rationale"]
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash: that query is generated again
        return self._cache

    def _append(self, fresh: dict[str, str]) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"message": m, "rationale": r}, ensure_ascii=False) + "\n" for m, r in fresh.items())
        with self.cache_file.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _joined(text: str, rationale: str) -> str:
    return f"{text}\n{rationale}" if rationale else text


def make_thinker(recipe: Recipe, backbone: Backbone) -> Thinker:
    """The recipe's ``think`` generator: ``self`` (the embedding model), a local model, or an endpoint URL."""
    assert recipe.think is not None
    if recipe.think == "self":
        if not backbone.is_decoder:
            raise InputError("think: self needs a decoder with an LM head; name a chat model or an endpoint instead")
        generator = _SelfGenerator(backbone)
        identity = f"self:{recipe.model}:{recipe.adapter}:{backbone.dtype_name}"  # greedy text depends on the dtype
    elif recipe.think.startswith(("http://", "https://")):
        generator = OpenAIGenerator(recipe.think, recipe.think_model or "default", max_attempts=2)
        identity = f"endpoint:{recipe.think}:{generator.name}"
    else:
        generator = LocalGenerator(recipe.think)
        identity = f"local:{generator.name}"
    prompt = recipe.think_prompt or DEFAULT_THINK_PROMPT
    return Thinker(generator, identity, prompt, recipe.think_tokens, cache_root() / "think")


class _SelfGenerator:
    """The embedding model's own LM writing the rationale, under the backbone's lock (it may be serving)."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self.local = LocalGenerator.of("self", backbone.model, backbone.tokenizer, batch_size=GENERATE_BATCH)

    def chat(self, conversations, settings: GenerationSettings) -> list[str]:
        with self.backbone.lock:
            return self.local.chat(conversations, settings)
