"""Reading one shard's rows, checking each: a malformed row becomes an error naming its file and line (jsonl)
or row (parquet), never a silent drop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from llembed.corpus.plan import Shard


@dataclass
class ShardRows:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    """One ``{"file", "line" or "row", "error"}`` per malformed row."""


def read_shard(shard: Shard, text_field: str = "text", id_field: str = "id") -> ShardRows:
    reader = _jsonl_rows if shard.format == "jsonl" else _parquet_rows
    out = ShardRows()
    for where, row, problem in reader(shard):
        place = {"file": shard.display, **where}
        label = f"{shard.display}:{next(iter(where.values()))}"
        if problem is None:
            problem, doc_id, text = _check(row, text_field, id_field, label)
        if problem is not None:
            out.errors.append({**place, "error": problem})
            continue
        out.ids.append(doc_id)
        out.texts.append(text)
    return out


def _check(row, text_field: str, id_field: str, label: str) -> tuple[str | None, str, str]:
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}", "", ""
    text = row.get(text_field)
    if text_field not in row:
        return f"no {text_field!r} field", "", ""
    if not isinstance(text, str):  # an empty string stays: it is embedded as the model sees it, and counted
        return f"field {text_field!r} is not a string: {text!r:.40}", "", ""
    doc_id = row.get(id_field)
    if doc_id is None:
        return None, label, text  # no id column: the row's place is its id
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or str(doc_id) == "":
        return f"field {id_field!r} must be a non-empty string or an integer, not {doc_id!r:.40}", "", ""
    return None, str(doc_id), text


def _jsonl_rows(shard: Shard):
    """(place, object, parse problem) for the shard's non-blank lines."""
    with Path(shard.path).open("rb") as handle:
        handle.seek(shard.offset)
        number, seen = shard.first_line - 1, 0
        while seen < shard.rows:
            raw = handle.readline()
            number += 1
            if not raw:
                yield {"line": number}, None, "the file ended early (it changed after the job was planned)"
                return
            if not raw.strip():
                continue
            seen += 1
            try:
                yield {"line": number}, json.loads(raw), None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield {"line": number}, None, f"not valid JSON ({getattr(exc, 'msg', exc)})"


def _parquet_rows(shard: Shard):
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(shard.path)
    # read only the row groups that overlap the shard, then slice
    groups, first, position = [], None, 0
    for index in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(index).num_rows
        if position + size > shard.start and position < shard.start + shard.rows:
            groups.append(index)
            first = position if first is None else first
        position += size
    table = parquet.read_row_groups(groups) if groups else parquet.schema_arrow.empty_table()
    table = table.slice(shard.start - (first or 0), shard.rows)
    for offset, row in enumerate(table.to_pylist()):
        yield {"row": shard.start + offset}, row, None
