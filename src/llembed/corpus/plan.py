"""Splitting a corpus (.jsonl / .parquet files or folders of them) into shards: contiguous row ranges of one
file, each of which becomes one output parquet file.

The plan is a pure function of the input files and ``shard_rows``, so a re-run finds the same shards and skips
the ones already written. Shard names are ``part-<file hash>-<first row>``: stable, and unique across files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from llembed.errors import InputError

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, start + rows)`` of one input file (jsonl: non-blank lines, from byte offset ``offset``)."""

    name: str
    path: str
    display: str
    """The file as ids and error messages name it: relative to the folder given, else the file name."""
    format: str
    start: int
    rows: int
    offset: int = 0
    first_line: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Shard:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def input_files(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, display name) for each .jsonl / .parquet file under ``paths``, in a stable order."""
    found: list[tuple[Path, str]] = []
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.suffix.lower() in FORMATS and p.is_file())
            found += [(p, p.relative_to(given).as_posix()) for p in files]
        elif given.is_file():
            if given.suffix.lower() not in FORMATS:
                raise InputError(f"{given}: embed-corpus reads {' and '.join(FORMATS)} files")
            found.append((given, given.name))
        else:
            raise InputError(f"input not found: {given}")
    if not found:
        raise InputError(f"no {' or '.join(FORMATS)} files in {', '.join(map(str, paths))}")
    names = [display for _, display in found]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InputError(f"two inputs are both named {duplicate!r}: default ids (file:line) would collide")
    return found


def plan_shards(paths: Sequence[str | Path], shard_rows: int) -> list[Shard]:
    """The shards of the corpus at ``paths``, ``shard_rows`` rows each (the last of each file fewer)."""
    if shard_rows <= 0:
        raise InputError(f"shard_rows must be positive, not {shard_rows}")
    shards: list[Shard] = []
    for path, display in input_files(paths):
        key = hashlib.sha1(display.encode()).hexdigest()[:10]
        kind = FORMATS[path.suffix.lower()]
        ranges = _jsonl_ranges(path, shard_rows) if kind == "jsonl" else _parquet_ranges(path, shard_rows)
        for start, rows, offset, first_line in ranges:
            shards.append(
                Shard(f"part-{key}-{start:010d}", str(path.resolve()), display, kind, start, rows, offset, first_line)
            )
    return shards


def fingerprint(paths: Sequence[str | Path]) -> list[dict]:
    """Names and sizes of the inputs: a re-run into the same output must read the same corpus."""
    return [{"file": display, "bytes": path.stat().st_size} for path, display in input_files(paths)]


def _jsonl_ranges(path: Path, shard_rows: int) -> list[tuple[int, int, int, int]]:
    """(first row, rows, byte offset, first line number) per shard; blank lines are not rows."""
    ranges = []
    rows = offset = start_offset = 0
    start_line = 1
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                if rows % shard_rows == 0:
                    start_offset, start_line = offset, number
                rows += 1
                if rows % shard_rows == 0:
                    ranges.append((rows - shard_rows, shard_rows, start_offset, start_line))
            offset += len(line)
    if rows % shard_rows:
        ranges.append((rows - rows % shard_rows, rows % shard_rows, start_offset, start_line))
    return ranges


def _parquet_ranges(path: Path, shard_rows: int) -> list[tuple[int, int, int, int]]:
    import pyarrow.parquet as pq

    try:
        total = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    return [(start, min(shard_rows, total - start), 0, 1) for start in range(0, total, shard_rows)]
