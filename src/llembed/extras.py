"""Optional parts of llembed and the extra that installs each (``pip install 'llembed[serve]'``).

The core (embedding from the Python API and ``llembed embed``) needs none of them; each job package checks its
extra when it is imported, so a missing one is a one-line message naming the extra, not an ImportError deep in
a traceback.
"""

from __future__ import annotations

import importlib.util

from llembed.errors import LlembedError

EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("mteb", "sklearn", "bm25s", "Stemmer", "matplotlib"),
    "serve": ("fastapi", "uvicorn", "faiss", "bm25s", "Stemmer", "prometheus_client"),
    "index": ("faiss", "bm25s"),
    "train": ("matplotlib",),
    "synth": ("httpx", "fastapi", "uvicorn"),
    "ray": ("ray",),
    "openvino": ("openvino", "nncf"),
}
"""Importable module names each extra provides (``index`` is part of ``serve``)."""

PIP_EXTRA = {"index": "serve"}


class MissingExtraError(LlembedError, ImportError):
    """A feature's optional dependencies are not installed."""


def require(extra: str, feature: str | None = None) -> None:
    """Raise :class:`MissingExtraError`, naming ``pip install 'llembed[extra]'``, when a module is missing."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        install = f"pip install 'llembed[{PIP_EXTRA.get(extra, extra)}]'"
        raise MissingExtraError(f"{feature or extra} needs {', '.join(missing)}, not installed here: {install}")
