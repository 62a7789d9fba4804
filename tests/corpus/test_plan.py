"""Shard planning and row reading: known answers on small hand-made files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llembed.corpus.plan import input_files, plan_shards
from llembed.corpus.rows import read_shard
from llembed.errors import InputError


def _rows(shards):
    out = []
    for shard in shards:
        got = read_shard(shard)
        out += list(zip(got.ids, got.texts, strict=True))
    return out


def test_jsonl_shards_skip_blank_lines_and_know_their_first_line(tmp_path):
    lines = ['{"text": "r0"}', "", '{"text": "r1"}', '{"text": "r2"}', "", "  ", '{"text": "r3"}', '{"text": "r4"}']
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shards = plan_shards([tmp_path / "c.jsonl"], shard_rows=2)
    assert [(s.start, s.rows, s.first_line) for s in shards] == [(0, 2, 1), (2, 2, 4), (4, 1, 8)]
    # the byte offset of line 4 is the length of lines 1-3 with their newlines
    assert shards[1].offset == len('{"text": "r0"}\n\n{"text": "r1"}\n')
    # no id field: a row's id is its file and line
    assert _rows(shards) == [("c.jsonl:1", "r0"), ("c.jsonl:3", "r1"), ("c.jsonl:4", "r2"), ("c.jsonl:7", "r3"),
                             ("c.jsonl:8", "r4")]  # fmt: skip
    assert len({s.name for s in shards}) == 3


def test_parquet_shards_cross_row_groups(tmp_path):
    frame = pd.DataFrame({"id": [f"d{i}" for i in range(23)], "text": [f"text {i}" for i in range(23)]})
    frame.to_parquet(tmp_path / "p.parquet", row_group_size=5)
    shards = plan_shards([tmp_path], shard_rows=7)
    assert [(s.start, s.rows) for s in shards] == [(0, 7), (7, 7), (14, 7), (21, 2)]
    assert _rows(shards) == [(f"d{i}", f"text {i}") for i in range(23)]


def test_parquet_without_id_column_gets_file_and_row_ids(tmp_path):
    pd.DataFrame({"text": ["a", "b", "c"]}).to_parquet(tmp_path / "p.parquet")
    assert _rows(plan_shards([tmp_path / "p.parquet"], 2)) == [("p.parquet:0", "a"), ("p.parquet:1", "b"),
                                                                 ("p.parquet:2", "c")]  # fmt: skip


def test_malformed_rows_are_reported_with_file_and_line(tmp_path):
    rows = [
        json.dumps({"id": 1, "text": "good one"}),
        "{broken",
        json.dumps(["a", "list"]),
        json.dumps({"id": 2}),
        json.dumps({"id": 3, "text": ""}),
        json.dumps({"id": [4], "text": "an id that is a list"}),
        json.dumps({"id": 5, "text": 17}),
        json.dumps({"id": 6, "text": "good two"}),
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (shard,) = plan_shards([tmp_path / "m.jsonl"], 100)
    got = read_shard(shard)
    # an empty text is no error: it is kept (embedded as the model sees an empty text, and counted)
    assert (got.ids, got.texts) == (["1", "3", "6"], ["good one", "", "good two"])
    assert [(e["file"], e["line"]) for e in got.errors] == [("m.jsonl", n) for n in (2, 3, 4, 6, 7)]
    messages = [e["error"] for e in got.errors]
    assert messages[0].startswith("not valid JSON")
    assert messages[1] == "expected a JSON object, got list"
    assert messages[2] == "no 'text' field"
    assert "'id' must be a non-empty string or an integer" in messages[3]
    assert messages[4] == "field 'text' is not a string: 17"


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(InputError, match="input not found"):
        plan_shards([tmp_path / "missing.jsonl"], 10)
    (tmp_path / "notes.txt").write_text("x\n")
    with pytest.raises(InputError, match="reads .jsonl and .parquet files"):
        plan_shards([tmp_path / "notes.txt"], 10)
    with pytest.raises(InputError, match="no .jsonl or .parquet files"):
        plan_shards([tmp_path], 10)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    for sub in ("one", "two"):
        (tmp_path / sub / "c.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(InputError, match="both named 'c.jsonl'"):
        input_files([tmp_path / "one", tmp_path / "two"])
    with pytest.raises(InputError, match="shard_rows must be positive"):
        plan_shards([tmp_path / "one"], 0)
