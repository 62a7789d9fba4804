"""``llembed train`` from a YAML config, and ``--resume`` extending a finished run."""

import json

import yaml
from typer.testing import CliRunner

from llembed.cli import app


def test_train_command_and_resume(tiny_model_dirs, snli_slice, tmp_path):
    config = tmp_path / "train.yaml"
    out = tmp_path / "run"
    config.write_text(
        yaml.safe_dump(
            {
                "data": [str(snli_slice)],
                "output_dir": str(out),
                "recipe": {"model": str(tiny_model_dirs["qwen2"]), "prompt": "prompteol", "pooling": "last"},
                "batch_size": 8,
                "max_steps": 2,
                "save_every": 1,
                "lora": {"r": 2, "alpha": 4},
            }
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    first = runner.invoke(app, ["train", str(config)])
    assert first.exit_code == 0, first.output
    assert "trained 2 steps" in first.output
    again = runner.invoke(app, ["train", str(config), "--resume", "--max-steps", "4"])
    assert again.exit_code == 0, again.output
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]

    texts = tmp_path / "texts.txt"
    texts.write_text("hello there\n", encoding="utf-8")
    vectors = tmp_path / "v.npy"
    embedded = runner.invoke(app, ["embed", str(texts), "-o", str(vectors), "--recipe", str(out / "recipe.yaml")])
    assert embedded.exit_code == 0, embedded.output
    assert vectors.is_file()


def test_train_command_reports_config_errors(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("data: [x.jsonl]\noutput_dir: out\nobjective: magic\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert "objective must be one of" in result.output
