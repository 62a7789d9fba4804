"""An embed-corpus output folder's manifest: what marks the folder, and reading it back."""

from __future__ import annotations

import json
from pathlib import Path

from llembed.errors import InputError

MANIFEST = "_manifest.json"
FORMAT = "llembed-vectors/1"


def read_manifest(output: str | Path) -> dict:
    path = Path(output) / MANIFEST
    if not path.is_file():
        raise InputError(f"{output} is not an embed-corpus output (no {MANIFEST})")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: unknown format {manifest.get('format')!r} (expected {FORMAT})")
    return manifest


def is_vectors_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()
