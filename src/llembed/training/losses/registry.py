"""The loss registry's entry: a loss class, the inputs it takes and the train-config fields it is built from.

Losses are grouped by what they take (their *inputs*): the trainer knows how to produce each kind of input
(query/candidate vectors, graded pairs, token vectors, reranker scores, teacher scores), and any loss of that kind
can be chosen for it in a train config (``losses: {pairs: my-loss}``). A new loss over existing inputs is one
module in this package defining ``LOSS = LossEntry(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

INPUTS: dict[str, str] = {
    "pairs": "(queries, positives, negatives | None) vectors: in-batch and hard negatives",
    "graded": "(first, second, labels) vectors with a graded similarity label per pair",
    "tokens": "(queries, positives, negatives | None) token vectors, zero rows for padding",
    "rerank": "(queries, 1 + negatives) reranker scores, the positive in column 0",
    "score-distillation": "(queries, positives, negatives, teacher scores): a teacher's order over candidates",
    "rerank-distillation": "(reranker scores, teacher scores) over the same candidates",
    "teacher": "(queries, candidates, teacher queries, teacher candidates) vectors of a teacher embedder",
}
"""Every kind of input the trainer produces, and what a loss of that kind is called with."""


@dataclass(frozen=True)
class LossEntry:
    name: str
    inputs: str
    """One of :data:`INPUTS`."""
    make: Callable[..., Callable]
    """The loss class (or a factory), called with the keyword arguments of :attr:`options`."""
    summary: str
    options: Mapping[str, str] = field(default_factory=dict)
    """Keyword argument → the train-config field it is read from (``teacher.mode`` reads a nested field)."""
    default: bool = False
    """The loss of its inputs when the config does not choose one."""

    def build(self, config: Any) -> Callable:
        """The loss, its options read from ``config`` (a :class:`llembed.training.config.TrainConfig`)."""
        kwargs = {}
        for argument, path in self.options.items():
            value = config
            for part in path.split("."):
                value = getattr(value, part)
            kwargs[argument] = value
        return self.make(**kwargs)
