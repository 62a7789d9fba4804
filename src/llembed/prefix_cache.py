"""Shared-prefix keys/values: a prompt's common leading tokens run once, and every batch reuses them.

The cache belongs to one backbone and is keyed by the prefix's token ids and the layers read; it is emptied
whenever :meth:`Backbone.weights_version` changes (an optimizer step, ``.to(...)``, a merged adapter), so a
state computed with other weights is never reused. It is safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch

MAX_CACHED_PREFIXES = 32  # MetaEOL needs 8 at once


@dataclass
class PrefixState:
    """A shared prompt prefix run once: per-layer keys/values and the hidden states of its tokens."""

    length: int
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    hidden: dict[int, torch.Tensor]  # layer → (1, length, D)

    def expanded_cache(self, rows: int):
        from transformers import DynamicCache

        # a fresh cache per batch: the forward pass appends the batch's own keys/values to it
        return DynamicCache(
            ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.kv]
        )


class PrefixCache:
    """Least-recently-used :class:`PrefixState` per (prefix ids, layers), valid for one weights version."""

    def __init__(self, weights_version: Callable[[], Hashable], capacity: int = MAX_CACHED_PREFIXES) -> None:
        self._weights_version = weights_version
        self.capacity = capacity
        self._states: OrderedDict[tuple, PrefixState] = OrderedDict()
        self._version: Hashable = None
        self._lock = threading.Lock()

    def get(self, ids: Sequence[int], layer_ids: Sequence[int], compute: Callable[[], PrefixState]) -> PrefixState:
        """The cached state of ``ids`` at ``layer_ids``, computed by ``compute()`` when missing or stale."""
        key = (tuple(ids), tuple(layer_ids))
        version = self._weights_version()
        with self._lock:
            if version != self._version:
                self._states.clear()
                self._version = version
            if key in self._states:
                self._states.move_to_end(key)
                return self._states[key]
        state = compute()
        with self._lock:
            if version == self._version:
                self._states[key] = state
                while len(self._states) > self.capacity:
                    self._states.popitem(last=False)
        return state

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
