"""Length-sorted, token-budget batches: fewer pad tokens, bounded memory, longest batch first."""

from __future__ import annotations

from collections.abc import Sequence

GROUP_TEXTS = 4096  # texts tokenized and length-sorted together; bounds memory on long inputs


def token_budget_batches(lengths: Sequence[int], max_rows: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices grouped into batches, longest texts first.

    A batch holds at most ``max_rows`` texts and at most ``max_tokens`` padded tokens (rows × its longest
    length); a single text longer than the budget still gets a batch of its own.
    """
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, not {max_rows}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        full = len(current) >= max_rows or (max_tokens is not None and (len(current) + 1) * longest > max_tokens)
        if current and full:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
