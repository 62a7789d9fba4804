"""A small real corpus (SciFact abstracts) as .jsonl + .parquet with a few malformed rows, and a tiny recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from llembed.evaluation.bundled import load_bundled
from llembed.recipe import Recipe

BAD_LINES = {
    # line in a.jsonl → the special row written there: two malformed rows, and a row whose text is empty (kept,
    # embedded as the model sees an empty text, and counted, as mteb scores such corpora)
    3: "{not json",
    6: json.dumps({"id": "no-text", "title": "a row without its text field"}),
    9: json.dumps({"id": "empty", "text": "   "}),
}
EMPTY_ROW = ("empty", "   ")
EMPTY_ROW_INDEX = 6  # the 7th kept row of a.jsonl (line 9)


def kept_rows(scifact_rows):
    """(id, text) of every row embed-corpus keeps, in input order: the good ones and the empty one."""
    rows = list(scifact_rows)
    rows.insert(EMPTY_ROW_INDEX, EMPTY_ROW)
    return rows


@pytest.fixture(scope="session")
def scifact_rows():
    """(id, text) of 60 real SciFact abstracts, cut to 400 characters to keep the tiny model fast."""
    corpus = load_bundled("scifact").corpus
    return [(doc_id, text[:400]) for doc_id, text in list(corpus.items())[:60]]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, scifact_rows):
    """``a.jsonl`` (36 good rows, 2 malformed, 1 empty text, a blank line) and ``sub/b.parquet`` (24 rows, row groups
    of 5)."""
    folder = tmp_path_factory.mktemp("corpus")
    lines, good = [], iter(scifact_rows[:36])
    while len(lines) < 36 + len(BAD_LINES):
        number = len(lines) + 1
        if number in BAD_LINES:
            lines.append(BAD_LINES[number])
        else:
            doc_id, text = next(good)
            lines.append(json.dumps({"id": doc_id, "text": text}))
    lines.insert(12, "")  # a blank line is no row (line numbers after it shift by one)
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "sub").mkdir()
    rows = scifact_rows[36:]
    frame = pd.DataFrame({"id": [r[0] for r in rows], "text": [r[1] for r in rows]})
    frame.to_parquet(folder / "sub" / "b.parquet", row_group_size=5)
    return folder


@pytest.fixture(scope="session")
def tiny_recipe(tiny_model_dirs):
    return Recipe(model=str(tiny_model_dirs["llama"]), prompt="prompteol", pooling="last", dtype="float32")


@pytest.fixture(scope="session")
def tiny_corpus_embedder(tiny_recipe):
    from llembed import Embedder

    return Embedder.from_recipe(tiny_recipe)


@pytest.fixture(scope="session")
def local_output(tmp_path_factory, corpus_dir, tiny_recipe):
    """The single-process result over ``corpus_dir`` (shards of 8 rows): the reference for the Ray runner."""
    from llembed.corpus import embed_corpus

    out = tmp_path_factory.mktemp("vectors") / "local"
    summary = embed_corpus([corpus_dir], out, tiny_recipe, shard_rows=8, runner="local", show_progress_bar=False)
    return out, summary


@pytest.fixture(scope="session")
def big_corpus(tmp_path_factory):
    """1,200 real SciFact abstracts (120 shards of 10): long enough to kill a job in the middle."""
    from llembed.evaluation.bundled import load_bundled

    folder = tmp_path_factory.mktemp("big")
    rows = list(load_bundled("scifact").corpus.items())[:1200]
    with (folder / "docs.jsonl").open("w") as handle:
        for doc_id, text in rows:
            handle.write(json.dumps({"id": doc_id, "text": text[:300]}) + "\n")
    return folder, [doc_id for doc_id, _ in rows]


@pytest.fixture(scope="session")
def big_reference(tmp_path_factory, big_corpus, tiny_recipe):
    out = tmp_path_factory.mktemp("big-local") / "out"
    from llembed.corpus import embed_corpus, read_vectors

    embed_corpus([big_corpus[0]], out, tiny_recipe, shard_rows=10, runner="local", show_progress_bar=False)
    return read_vectors(out)


@pytest.fixture(scope="session")
def recipe_file(tmp_path_factory, tiny_recipe) -> Path:
    """The reference's recipe (float32: ``auto`` would be bf16 on a CPU with native bf16)."""
    return tiny_recipe.save(tmp_path_factory.mktemp("recipe") / "tiny.yaml")
