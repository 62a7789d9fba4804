"""Bad input, tried on purpose through each interface: a clear one-line error, never a traceback, and no work
done before the error (the model is not even loaded when an argument alone is wrong)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llembed import Embedder, Recipe
from llembed.cli import app
from llembed.errors import InputError, RecipeError

from .conftest import SENTENCES

runner = CliRunner()


@pytest.fixture
def texts_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the bad input was reported")

    monkeypatch.setattr(Embedder, "load", classmethod(refuse))


def _error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.output.rstrip().endswith(errors[0]), result.output  # one line, the last
    return errors[0]


BAD_RECIPE_FLAGS = [
    (["--layer", "last"], "layer 'last' is not an index (-1 = final, 0 = embeddings)"),
    (["--layer", "1,x"], "layer '1,x' is not"),
    (["--layer", "2:3:4"], "layer '2:3:4' is not"),
    (["--pooling", "median"], "unknown pooling 'median'; choose one of last, eos, mean, weighted_mean, first, max"),
    (["--prompt", "promptEOL"], "unknown prompt 'promptEOL': choose one of none, instruction, prompteol"),
    (["--dtype", "fp8"], "unknown dtype 'fp8'; choose one of auto, float32, bfloat16, float16"),
    (["--precision", "int4"], "unknown precision 'int4'; choose one of float32"),
    (["--max-length", "0"], "max_length must be a positive integer, not 0"),
    (["--truncate-dim", "-3"], "truncate_dim must be a positive integer, not -3"),
    (["--side", "left"], "--side must be one of text, query, document, not 'left'"),
    (["--chunking", "sliding"], "unknown chunking 'sliding'; choose one of none, mean, late"),
    (["--chunk-tokens", "64", "--chunk-overlap", "64"], "chunk_overlap=64 must be smaller than chunk_tokens=64"),
    (["--think", "self", "--think-prompt", "Explain"], "think_prompt must hold {text}, where the query goes"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_RECIPE_FLAGS, ids=[" ".join(f) for f, _ in BAD_RECIPE_FLAGS])
def test_cli_bad_recipe_values(tmp_path, texts_file, no_model_load, flags, message):
    result = runner.invoke(app, ["embed", str(texts_file), "-o", str(tmp_path / "v.npy"), *flags])
    assert message in _error_line(result)


def test_cli_layer_out_of_the_models_range(tmp_path, texts_file, tiny_model_dirs):
    flags = ["-m", str(tiny_model_dirs["llama"]), "--layer", "9"]
    result = runner.invoke(app, ["embed", str(texts_file), "-o", str(tmp_path / "v.npy"), *flags])
    assert "layer 9 out of range: the model has hidden states 0..4" in _error_line(result)


def test_cli_chunks_larger_than_the_window(tmp_path, texts_file, tiny_model_dirs):
    flags = ["-m", str(tiny_model_dirs["llama"]), "--chunking", "late", "--chunk-tokens", "600"]
    result = runner.invoke(app, ["embed", str(texts_file), "-o", str(tmp_path / "v.npy"), *flags])
    assert "chunk_tokens=600 is larger than the model's window: max_length=512 leaves" in _error_line(result)
    assert not (tmp_path / "v.npy").exists()


def test_cli_eval_unknown_language(no_model_load):
    result = runner.invoke(app, ["eval", "--data", "tatoeba", "--subset", "deu-eng,xxx-eng"])
    assert "unknown subset 'xxx-eng' of Tatoeba; it has deu-eng, fra-eng" in _error_line(result)
    result = runner.invoke(app, ["eval", "--data", "stsbenchmark", "--subset", "de"])
    assert "unknown subset 'de' of STSBenchmark; it has none (it is not a multilingual set)" in _error_line(result)


def test_cli_eval_bad_values_are_one_line_too(no_model_load):
    result = runner.invoke(app, ["eval", "--data", "stsbenchmark", "--layer", "last"])
    assert "layer 'last' is not" in _error_line(result)
    result = runner.invoke(app, ["eval", "--suite", "huge"])
    assert "unknown suite 'huge'; choose one of quick, full" in _error_line(result)
    result = runner.invoke(app, ["eval", "--suite", "full", "--section", "longest"])
    assert "unknown section longest; choose from similarity, long, multilingual" in _error_line(result)
    result = runner.invoke(app, ["eval", "--grid", "pooling"])
    assert "error: " in _error_line(result)
    result = runner.invoke(app, ["eval", "--data", "no-such-set"])
    assert "no-such-set" in _error_line(result)


def test_cli_files_that_cannot_be_read_or_written(tmp_path, texts_file, no_model_load):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("first line\ncafé au lait\n".encode("latin-1"))
    line = _error_line(runner.invoke(app, ["embed", str(latin1), "-o", str(tmp_path / "v.npy")]))
    assert f"{latin1}: not UTF-8 text: byte 0xe9 at offset 14 (line 2)" in line

    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes('{"text": "ok"}\n{"text": "caf\xe9"}\n'.encode("latin-1"))
    line = _error_line(runner.invoke(app, ["embed", str(jsonl), "-o", str(tmp_path / "v.npy")]))
    assert "latin1.jsonl: not UTF-8 text: byte 0xe9 at offset 28 (line 2)" in line

    missing_folder = tmp_path / "nowhere" / "v.npy"
    line = _error_line(runner.invoke(app, ["embed", str(texts_file), "-o", str(missing_folder)]))
    assert f"the folder {missing_folder.parent} does not exist" in line

    line = _error_line(runner.invoke(app, ["embed", str(texts_file), "-o", str(tmp_path / "v.csv")]))
    assert "unsupported output format '.csv'; use one of .npy, .parquet" in line

    line = _error_line(runner.invoke(app, ["embed", str(tmp_path / "absent.txt"), "-o", str(tmp_path / "v.npy")]))
    assert "input file not found" in line


def test_eval_reads_a_non_utf8_dataset_with_a_clear_error(tmp_path, no_model_load):
    data = tmp_path / "sts.tsv"
    data.write_bytes("sentence1\tsentence2\tscore\nna\xefve\tnaive\t4.0\n".encode("latin-1"))
    line = _error_line(runner.invoke(app, ["eval", "--data", str(data), "--type", "sts"]))
    assert "sts.tsv: not UTF-8 text: byte 0xef at offset 28 (line 2)" in line


BAD_PYTHON = [
    (lambda: Recipe(layer="last"), RecipeError, "layer 'last' is not"),
    (lambda: Recipe(layer=True), RecipeError, "layer True is not"),
    (lambda: Recipe(pooling="median"), RecipeError, "unknown pooling 'median'"),
    (lambda: Recipe(prompt="nope"), RecipeError, "unknown prompt 'nope'"),
    (lambda: Recipe(normalize="yes"), RecipeError, "normalize must be true or false"),
    (lambda: Recipe(tp_layers=[3, 1]), RecipeError, "tp_layers must be [start, stop)"),
    (lambda: Recipe(max_length=1.5), RecipeError, "max_length must be a positive integer"),
    (lambda: Recipe().replace(poolng="mean"), RecipeError, "unknown recipe field(s): poolng"),
    (lambda: Recipe.from_dict(["mean"]), RecipeError, "a recipe must be a mapping"),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_PYTHON, ids=[m for *_, m in BAD_PYTHON])
def test_python_bad_recipe_values(make, error, message):
    with pytest.raises(error) as caught:
        make()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_python_bad_texts(tiny_backbones):
    embedder = Embedder(tiny_backbones["llama"], Recipe(prompt="prompteol", pooling="last", dtype="float32"))
    for texts, message in (
        (None, "texts is None"),
        (["ok", ""], "text 1 is empty"),
        (["ok", 3], "text 1 is int, not str"),
        (5, "texts must be a list of strings, not int"),
    ):
        with pytest.raises(InputError, match=message):
            embedder.encode(texts)
    with pytest.raises(InputError, match="batch_size must be positive"):
        embedder.encode(["ok"], batch_size=0)


HOSTILE_INVOCATIONS = [  # (arguments, the line's words), each refused before any model loads (issue 32)
    (["eval", "--sts-pairs", "-5"], "Invalid value for '--sts-pairs'"),
    (["eval", "--retrieval-queries", "0"], "Invalid value for '--retrieval-queries'"),
    (["eval", "--grid", "pooling=bogus"], "unknown pooling 'bogus'"),
    (["eval", "--grid", "colour=red"], "unknown recipe field(s): colour"),
    (["embed", "{texts}", "-o", "{tmp}/v.npy", "--batch-size", "-4"], "Invalid value for '--batch-size'"),
    (["embed", "{empty}", "-o", "{tmp}/v.npy"], "holds no texts to embed"),
    (["embed", "{texts}", "-o", "{tmp}"], "is a folder; give a file name ending in .npy or .parquet"),
    (["train", "{config}"], "train config: learning_rate must be a number, not 'fast'"),
]


@pytest.mark.parametrize(
    ("arguments", "message"), HOSTILE_INVOCATIONS, ids=[" ".join(a[:3]) for a, _ in HOSTILE_INVOCATIONS]
)
def test_hostile_invocations_are_one_line_and_leave_nothing(tmp_path, texts_file, no_model_load, monkeypatch,
                                                             arguments, message):  # fmt: skip
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    config = tmp_path / "cfg.yaml"
    config.write_text("data: [x.jsonl]\noutput_dir: out\nlearning_rate: fast\n", encoding="utf-8")
    filled = {"texts": texts_file, "tmp": tmp_path, "empty": empty, "config": config}
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    result = runner.invoke(app, [a.format(**filled) for a in arguments])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert message in result.output
    assert list(work.iterdir()) == []  # no report or cache folder left behind
