import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from llembed import Embedder
from llembed.cli import app
from llembed.prompts import STRATEGIES

from .conftest import SENTENCES

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tiny_model_dirs):
    return str(tiny_model_dirs["llama"])


def test_embed_txt_to_npy_equals_the_library(tmp_path, model_dir):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "vectors.npy"
    result = runner.invoke(
        app,
        [
            "embed",
            str(source),
            "-o",
            str(out),
            "-m",
            model_dir,
            "--pooling",
            "mean",
            "--dtype",
            "float32",
            "--prompt",
            "pcoteol",
            "--save-recipe",
            str(tmp_path / "r.yaml"),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = Embedder.from_pretrained(model_dir, pooling="mean", prompt="pcoteol", dtype="float32").encode(SENTENCES)
    assert np.allclose(np.load(out), expected, atol=1e-6)
    assert Embedder.from_recipe(tmp_path / "r.yaml").recipe.prompt == "pcoteol"


def test_embed_jsonl_to_parquet_keeps_ids(tmp_path, model_dir):
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "body": t}) + "\n" for i, t in enumerate(SENTENCES)))
    out = tmp_path / "vectors.parquet"
    result = runner.invoke(
        app,
        [
            "embed",
            str(source),
            "-o",
            str(out),
            "-m",
            model_dir,
            "--column",
            "body",
            "--truncate-dim",
            "16",
            "--dtype",
            "float32",
        ],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pydict()
    assert table["id"] == [f"d{i}" for i in range(len(SENTENCES))]
    assert np.array(table["embedding"]).shape == (len(SENTENCES), 16)


def test_embed_csv_and_parquet_inputs(tmp_path, model_dir):
    import pandas as pd

    frame = pd.DataFrame({"sentence": SENTENCES})
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet")
    outputs = []
    for name in ("in.csv", "in.parquet"):
        out = tmp_path / f"{name}.npy"
        result = runner.invoke(
            app,
            [
                "embed",
                str(tmp_path / name),
                "-o",
                str(out),
                "-m",
                model_dir,
                "--column",
                "sentence",
                "--dtype",
                "float32",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(np.load(out))
    assert np.allclose(outputs[0], outputs[1])


def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, model_dir):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"text": "fine"}\n{"text": \n')
    out = tmp_path / "out.npy"
    result = runner.invoke(app, ["embed", str(source), "-o", str(out), "-m", model_dir])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output and "not valid JSON" in result.output
    assert not out.exists()
    blank = tmp_path / "blank.txt"
    blank.write_text("one\n\nthree\n")
    result = runner.invoke(app, ["embed", str(blank), "-o", str(out), "-m", model_dir])
    assert result.exit_code == 2 and "blank.txt:2: empty line" in result.output
    result = runner.invoke(app, ["embed", str(blank), "-o", str(tmp_path / "x.csv"), "-m", "nobody/nothing"])
    assert result.exit_code == 2


def test_strategies_lists_every_prompt_and_pooling():
    result = runner.invoke(app, ["strategies"])
    assert result.exit_code == 0
    for name in [*STRATEGIES, "weighted_mean", "eos", "max"]:
        assert name in result.output


def test_recipe_flags_come_from_one_table():
    """Every command that takes recipe flags takes them from ``RECIPE_FLAGS``, under the field's own name."""
    import typer

    from llembed.cli.common import PIPELINE_FLAGS, RECIPE_FLAGS
    from llembed.recipe import Recipe

    commands = typer.main.get_command(app).commands
    names = {name: {p.name for p in command.params} for name, command in commands.items()}
    assert set(RECIPE_FLAGS) <= names["embed"]
    assert set(PIPELINE_FLAGS) <= names["eval"] and "precision" not in names["eval"]
    assert {"prompt", "pooling", "task"} <= names["export-st"]
    assert set(RECIPE_FLAGS) <= names["serve"] and set(RECIPE_FLAGS) <= names["embed-corpus"]
    assert set(RECIPE_FLAGS) <= {p.name for p in commands["index"].commands["build"].params}
    assert set(RECIPE_FLAGS) <= set(Recipe.__dataclass_fields__)  # one name: flag, keyword, YAML key
    pooling = next(p for p in commands["embed"].params if p.name == "pooling")
    assert pooling.help == "last | eos | mean | weighted_mean | first | max"


def test_recipe_flags_reach_the_corpus_index_and_server(tmp_path, model_dir):
    from llembed.corpus import read_vectors
    from llembed.serving.assembly import AppSpec, build_app

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(SENTENCES)))
    flags = ["-m", model_dir, "--pooling", "mean", "--prompt", "none", "--dtype", "float32"]
    expected = Embedder.from_pretrained(model_dir, pooling="mean", prompt="none", dtype="float32")
    result = runner.invoke(app, ["embed-corpus", str(docs), str(tmp_path / "vectors"), "--runner", "local", *flags])
    assert result.exit_code == 0, result.output
    assert np.allclose(read_vectors(tmp_path / "vectors").vectors, expected.encode_documents(SENTENCES), atol=1e-5)
    result = runner.invoke(app, ["index", "build", str(docs), "-o", str(tmp_path / "idx"), *flags])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["recipe"]["pooling"] == "mean" and manifest["recipe_hash"] == expected.recipe.digest()
    served = build_app(AppSpec(model=model_dir, fields=(("pooling", "mean"), ("prompt", "none"), ("dtype", "float32"))))
    assert next(iter(served.state.server.models.values())).embedder.recipe == expected.recipe
