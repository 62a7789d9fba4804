"""Pooling: hidden states (B, T, D) → one vector per row. Pure tensor code, computed in float32.

``attention_mask`` marks real tokens (either padding side); ``pool_mask`` marks the tokens that enter
mean / weighted_mean / max (all real tokens, or only the user text's when prompts are excluded).

:data:`POOLINGS` is the one registry of poolings: recipe validation, the CLI's help, ``llembed strategies`` and
the sentence-transformers export and import all read it. Adding a pooling = a function and an entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from llembed.errors import RecipeError

PoolingName = Literal["last", "eos", "mean", "weighted_mean", "first", "max"]


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return torch.arange(mask.shape[1], device=mask.device).expand_as(mask)


def last_token(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The last real token of each row, whether the batch is padded on the left or the right."""
    index = (_positions(attention_mask) * attention_mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def first_token(
    hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The first real token of each row (CLS for BERT-like encoders, BOS where the tokenizer adds one)."""
    width = attention_mask.shape[1]
    index = torch.where(attention_mask.bool(), _positions(attention_mask), width).argmin(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def mean(hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    weights = pool_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def weighted_mean(hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    """SGPT position weights (Muennighoff, 2022, arXiv:2202.08904): token i (1-based) weighs i / Σ weights.

    Positions count real tokens from the first one, so the padding side doesn't change them; excluded prompt
    tokens keep their positions (zero weight), as in sentence-transformers' ``weightedmean``.
    """
    positions = attention_mask.to(hidden.dtype).cumsum(dim=1)
    weights = (positions * pool_mask.to(hidden.dtype)).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def max_pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    masked = hidden.masked_fill(~pool_mask.bool().unsqueeze(-1), float("-inf"))
    return masked.max(dim=1).values


PoolFunction = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Pooling:
    name: str
    function: PoolFunction
    """``(hidden, attention_mask, pool_mask) → (B, D)``."""
    summary: str
    st_name: str | None = None
    """sentence-transformers' ``pooling_mode`` for the same computation (``None``: ST has none)."""
    uses_pool_mask: bool = True
    """Reads the tokens of ``pool_mask`` (so ``exclude_prompt`` changes it); ``False`` for single positions."""
    appends_eos: bool = False
    """Tokenization appends the EOS token when the tokenizer doesn't."""
    decoder_only: bool = False


POOLINGS: dict[str, Pooling] = {
    p.name: p
    for p in (
        Pooling("last", last_token, "state of the last real token (left or right padding)", "lasttoken", False),
        Pooling(
            "eos",
            last_token,
            "append the EOS token if the tokenizer doesn't, pool its state",
            None,
            False,
            appends_eos=True,
            decoder_only=True,
        ),
        Pooling("mean", mean, "average over tokens (only the text's with --exclude-prompt)", "mean"),
        Pooling("weighted_mean", weighted_mean, "SGPT position-weighted mean: later tokens weigh more", "weightedmean"),
        Pooling("first", first_token, "state of the first token (CLS of encoders)", "cls", False),
        Pooling("max", max_pool, "element-wise max over tokens", "max"),
    )
}
FROM_ST_POOLING = {p.st_name: p.name for p in POOLINGS.values() if p.st_name is not None}


def get_pooling(name: str) -> Pooling:
    if name not in POOLINGS:
        raise RecipeError(f"unknown pooling {name!r}; choose one of {', '.join(POOLINGS)}")
    return POOLINGS[name]


def pool(
    name: str, hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Pool ``hidden`` by ``name``; a row whose ``pool_mask`` is empty is an error for the poolings that read it."""
    pooling = get_pooling(name)
    hidden = hidden.float()
    pool_mask = attention_mask.bool() if pool_mask is None else pool_mask.bool() & attention_mask.bool()
    if pooling.uses_pool_mask and not bool(pool_mask.any(dim=1).all()):
        raise RecipeError(f"{name} pooling found a row with no token to pool (is the text empty?)")
    return pooling.function(hidden, attention_mask, pool_mask)


def average_layers(states: dict[int, torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    """The mean of several layers' hidden states (one layer: its states as they are)."""
    if len(layers) == 1:
        return states[layers[0]]
    return torch.stack([states[layer].float() for layer in layers]).mean(dim=0)
