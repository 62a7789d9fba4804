"""``llembed index build`` and ``llembed search`` from the command line."""

import json

from typer.testing import CliRunner

from llembed.cli import app
from llembed.index import VectorIndex


def test_index_build_then_search(tmp_path, tiny_model_dirs, corpus_file, tiny_embedder):
    runner = CliRunner()
    out = tmp_path / "idx"
    model = str(tiny_model_dirs["llama"])
    built = runner.invoke(
        app,
        ["index", "build", str(corpus_file), "-o", str(out), "-m", model, "--sparse"],
    )
    assert built.exit_code == 0, built.output
    assert "flat index of 60" in built.output
    found = runner.invoke(app, ["search", str(out), "newborn white matter", "-k", "3", "--json", "--mode", "hybrid"])
    assert found.exit_code == 0, found.output
    line = json.loads(found.stdout.strip().splitlines()[-1])
    expected = VectorIndex.load(out).search("newborn white matter", k=3, mode="hybrid")[0]
    assert [h["id"] for h in line["hits"]] == [h.id for h in expected]

    missing = runner.invoke(
        app, ["index", "build", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "x"), "-m", model]
    )
    assert missing.exit_code == 2
    assert "corpus not found" in missing.output
    bad_mode = runner.invoke(app, ["search", str(out), "q", "--mode", "fuzzy"])
    assert bad_mode.exit_code == 2
    assert "mode must be one of" in bad_mode.output
