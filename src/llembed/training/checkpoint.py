"""Atomic, resumable checkpoints: ``checkpoints/step-000050/`` appears whole or not at all.

A checkpoint holds the trainable weights, optimizer and scheduler state, every random generator's state and
the loss log, so a resumed run continues with exactly the losses an uninterrupted run would have had.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llembed.io_utils import atomic_directory

PREFIX = "step-"


@dataclass
class Checkpoint:
    step: int
    path: Path


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` (plus random states) as ``root/step-NNNNNN`` atomically; keep the newest ``keep``."""
    payload = dict(state, step=step, random=_random_states())
    final = atomic_directory(root / f"{PREFIX}{step:06d}", lambda tmp: torch.save(payload, tmp / "state.pt"))
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Checkpoint]:
    if not root.is_dir():
        return []
    found = []
    for path in root.glob(f"{PREFIX}*"):
        if (path / "state.pt").is_file() and path.name[len(PREFIX) :].isdigit():
            found.append(Checkpoint(int(path.name[len(PREFIX) :]), path))
    return sorted(found, key=lambda c: c.step)


def load_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    state = torch.load(checkpoint.path / "state.pt", map_location="cpu", weights_only=False)
    _restore_random(state.pop("random"))
    return state


def _random_states() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _restore_random(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
