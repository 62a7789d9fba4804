"""Pooling: hidden states (B, T, D) → one vector per row. Pure tensor code, computed in float32.

``attention_mask`` marks real tokens (either padding side); ``pool_mask`` marks the tokens that enter
mean / weighted_mean / max (all real tokens, or only the user text's when prompts are excluded).
"""

from __future__ import annotations

import torch

from llembed.errors import RecipeError


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return torch.arange(mask.shape[1], device=mask.device).expand_as(mask)


def last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last real token of each row, whether the batch is padded on the left or the right."""
    index = (_positions(attention_mask) * attention_mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def first_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first real token of each row (CLS for BERT-like encoders, BOS where the tokenizer adds one)."""
    width = attention_mask.shape[1]
    index = torch.where(attention_mask.bool(), _positions(attention_mask), width).argmin(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


def mean(hidden: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
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


def max_pool(hidden: torch.Tensor, pool_mask: torch.Tensor) -> torch.Tensor:
    masked = hidden.masked_fill(~pool_mask.bool().unsqueeze(-1), float("-inf"))
    return masked.max(dim=1).values


def pool(
    name: str, hidden: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Pool ``hidden`` by ``name``; ``eos`` is the last token (the tokenizer step appends the EOS)."""
    hidden = hidden.float()
    pool_mask = attention_mask.bool() if pool_mask is None else pool_mask.bool() & attention_mask.bool()
    if name in ("last", "eos"):
        return last_token(hidden, attention_mask)
    if name == "first":
        return first_token(hidden, attention_mask)
    if not bool(pool_mask.any(dim=1).all()):
        raise RecipeError(f"{name} pooling found a row with no token to pool (is the text empty?)")
    if name == "mean":
        return mean(hidden, pool_mask)
    if name == "weighted_mean":
        return weighted_mean(hidden, attention_mask, pool_mask)
    if name == "max":
        return max_pool(hidden, pool_mask)
    raise RecipeError(f"unknown pooling {name!r}")
