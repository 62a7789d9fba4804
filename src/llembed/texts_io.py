"""Reading texts from .txt / .jsonl / .csv / .parquet and writing vectors to .npy / .parquet, atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llembed.errors import InputError
from llembed.io_utils import atomic_write, iter_jsonl, utf8_file

READ_FORMATS = (".txt", ".jsonl", ".csv", ".parquet")
WRITE_FORMATS = (".npy", ".parquet")


@dataclass
class TextTable:
    texts: list[str]
    ids: list | None = None


def read_texts(path: str | Path, column: str = "text", id_column: str | None = "id") -> TextTable:
    """Texts (and ids where the file has an ``id_column``); errors name the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    with utf8_file(path):
        return _read_texts(path, column, id_column)


def _read_texts(path: Path, column: str, id_column: str | None) -> TextTable:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                raise InputError(f"{path}:{number}: empty line (one text per line; remove blank lines)")
        return TextTable(lines)
    if suffix == ".jsonl":
        texts, ids = [], []
        for number, row in iter_jsonl(path):
            if column not in row:
                raise InputError(f"{path}:{number}: no {column!r} field (choose the text field with --column)")
            if not isinstance(row[column], str) or not row[column].strip():
                raise InputError(f"{path}:{number}: field {column!r} is not a non-empty string")
            texts.append(row[column])
            ids.append(row.get(id_column) if id_column else None)
        has_ids = bool(ids) and all(i is not None for i in ids)
        return TextTable(texts, ids if has_ids else None)
    if suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(path, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(path)
        if column not in frame.columns:
            raise InputError(f"{path}: no column {column!r}; columns are {', '.join(map(str, frame.columns))}")
        texts = frame[column].tolist()
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                where = f"line {row + 2}" if suffix == ".csv" else f"row {row}"
                raise InputError(f"{path}: {where}: column {column!r} is not a non-empty string: {text!r:.40}")
        ids = frame[id_column].tolist() if id_column and id_column in frame.columns else None
        return TextTable(texts, ids)
    raise InputError(f"{path}: unsupported input format {suffix!r}; use one of {', '.join(READ_FORMATS)}")


def _output_format(path: Path) -> str:
    suffix = path.suffix.lower() or "(none)"
    if suffix not in WRITE_FORMATS:
        raise InputError(f"{path}: unsupported output format {suffix!r}; use one of {', '.join(WRITE_FORMATS)}")
    return suffix


def check_output(path: str | Path) -> Path:
    """Refuse an output path before any work is done: a known format, in a folder that exists."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name ending in {' or '.join(WRITE_FORMATS)}")
    _output_format(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: the folder {path.parent} does not exist; create it first")
    return path


def write_vectors(path: str | Path, vectors: np.ndarray, ids: list | None = None) -> Path:
    """``.npy`` (the array) or ``.parquet`` (``id`` and ``embedding`` columns), written atomically."""
    path = Path(path)
    if _output_format(path) == ".npy":

        def write(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, vectors)

        return atomic_write(path, write)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ids if ids is not None else list(range(len(vectors))),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        }
    )
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))
