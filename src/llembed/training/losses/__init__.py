"""Training losses, one per file, on plain tensors (so they run on cached or gathered representations).

:data:`LOSSES` is the one registry: every module here defining ``LOSS`` (a :class:`LossEntry`) contributes it.
A train config picks a loss for each kind of input (``losses: {pairs: infonce}``; :data:`INPUTS`), the default
otherwise; adding a loss is one file.
"""

from __future__ import annotations

import importlib
import pkgutil

from llembed.errors import RecipeError
from llembed.training.losses.contrastive import InfoNCELoss
from llembed.training.losses.cosent import CoSENTLoss
from llembed.training.losses.embedder_distillation import EmbedderDistillationLoss
from llembed.training.losses.late_interaction import LateInteractionLoss
from llembed.training.losses.mntp import mntp_loss
from llembed.training.losses.registry import INPUTS, LossEntry
from llembed.training.losses.rerank_distillation import RerankDistillationLoss
from llembed.training.losses.rerank_listwise import ListwiseRerankLoss
from llembed.training.losses.rerank_pointwise import PointwiseRerankLoss
from llembed.training.losses.score_distillation import ScoreDistillationLoss

_INFRASTRUCTURE = {"registry"}


def _discover() -> dict[str, LossEntry]:
    found: dict[str, LossEntry] = {}
    for module_name in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _INFRASTRUCTURE):
        entry = getattr(importlib.import_module(f"{__name__}.{module_name}"), "LOSS", None)
        if entry is None:
            continue
        if entry.name in found:
            raise RuntimeError(f"loss {entry.name!r} is defined twice ({module_name})")
        if entry.inputs not in INPUTS:
            raise RuntimeError(f"loss {entry.name!r} takes unknown inputs {entry.inputs!r}")
        found[entry.name] = entry
    for inputs in INPUTS:
        defaults = [entry.name for entry in found.values() if entry.inputs == inputs and entry.default]
        if len(defaults) != 1:
            raise RuntimeError(f"inputs {inputs!r} need exactly one default loss, not {defaults}")
    return found


LOSSES: dict[str, LossEntry] = _discover()


def losses_for(inputs: str) -> list[str]:
    """The losses that take ``inputs``, the default first."""
    entries = [entry for entry in LOSSES.values() if entry.inputs == inputs]
    return [entry.name for entry in sorted(entries, key=lambda entry: not entry.default)]


def check_loss_choice(inputs: str, name: str) -> None:
    """A config's choice of loss for ``inputs``, or a one-line error naming what is allowed."""
    if inputs not in INPUTS:
        raise RecipeError(f"train config: losses: unknown inputs {inputs!r}; choose from {', '.join(INPUTS)}")
    if name not in losses_for(inputs):
        raise RecipeError(f"train config: losses: {inputs} takes one of {', '.join(losses_for(inputs))}, not {name!r}")


__all__ = [
    "INPUTS",
    "LOSSES",
    "CoSENTLoss",
    "EmbedderDistillationLoss",
    "InfoNCELoss",
    "LateInteractionLoss",
    "ListwiseRerankLoss",
    "LossEntry",
    "PointwiseRerankLoss",
    "RerankDistillationLoss",
    "ScoreDistillationLoss",
    "check_loss_choice",
    "losses_for",
    "mntp_loss",
]
