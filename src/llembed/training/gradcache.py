"""GradCache (Gao et al., 2021, arXiv:2101.06983): large contrastive batches in bounded memory.

1. Encode the batch chunk by chunk *without* a graph, remembering each chunk's random state (dropout).
2. Compute the loss on those representations and its gradient with respect to them: cheap, no model involved.
3. Re-encode each chunk *with* a graph under the same random state and backpropagate the cached gradient.

The parameters' gradients equal those of one backward over the whole batch; only one chunk's activations
are alive at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch

Encode = Callable[[Sequence[str]], torch.Tensor]
LossOf = Callable[[dict[str, torch.Tensor]], torch.Tensor]


class RandomState:
    """The CPU (and CUDA) generator state at creation; ``restored()`` replays it without disturbing the rest."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    @contextlib.contextmanager
    def restored(self) -> Iterator[None]:
        devices = list(range(torch.cuda.device_count())) if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def _chunks(texts: Sequence[str], size: int | None) -> list[Sequence[str]]:
    if size is None or size >= len(texts):
        return [texts]
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def contrastive_backward(
    groups: dict[str, Sequence[str]],
    encoders: dict[str, Encode],
    loss_of: LossOf,
    chunk_size: int | None = None,
) -> float:
    """Encode each group of texts (``queries``, ``positives``, …) with its encoder, compute ``loss_of`` on the
    representations and backpropagate into the model; returns the loss. ``chunk_size=None``: one plain pass."""
    groups = {name: texts for name, texts in groups.items() if len(texts)}
    if chunk_size is None:
        loss = loss_of({name: encoders[name](texts) for name, texts in groups.items()})
        loss.backward()
        return float(loss.detach())

    cached: dict[str, torch.Tensor] = {}
    states: dict[str, list[tuple[Sequence[str], RandomState]]] = {}
    with torch.no_grad():
        for name, texts in groups.items():
            parts, states[name] = [], []
            for chunk in _chunks(texts, chunk_size):
                state = RandomState()
                parts.append(encoders[name](chunk))
                states[name].append((chunk, state))
            cached[name] = torch.cat(parts).detach().requires_grad_(True)
    loss = loss_of(cached)
    loss.backward()
    for name, chunks in states.items():
        gradient = cached[name].grad
        offset = 0
        for chunk, state in chunks:
            with state.restored():
                representation = encoders[name](chunk)
            representation.backward(gradient[offset : offset + len(chunk)])
            offset += len(chunk)
    return float(loss.detach())
