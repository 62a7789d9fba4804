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


BAD_CONFIGS = [  # (a line added to a valid config, what the one-line error says); issue 32
    ("learning_rate: fast", "learning_rate must be a number, not 'fast'"),
    ("batch_size: 3.5", "batch_size must be an integer, not 3.5"),
    ("max_steps: yes", "max_steps must be an integer, not True"),
    ("chunk_size: many", "chunk_size must be an integer or null, not 'many'"),
    ("merge: maybe", "merge must be true or false, not 'maybe'"),
    ("lora: {r: big}", "lora: r must be an integer, not 'big'"),
    ("teacher: {weight: heavy}", "teacher: weight must be a number, not 'heavy'"),
    ("seed: [1, 2]", "seed must be an integer, not [1, 2]"),
    ("output_dir: 5", "output_dir must be a string, not 5"),
]


def test_wrongly_typed_config_values_are_named(tmp_path):
    for line, message in BAD_CONFIGS:
        config = tmp_path / "bad.yaml"
        config.write_text(f"data: [x.jsonl]\noutput_dir: out\n{line}\n", encoding="utf-8")
        if line.startswith("output_dir"):
            config.write_text(f"data: [x.jsonl]\n{line}\n", encoding="utf-8")
        result = CliRunner().invoke(app, ["train", str(config)])
        assert result.exit_code == 2, (line, result.output)
        assert message in result.output and "Traceback" not in result.output, (line, result.output)
    config.write_text("data: [x.jsonl]\noutput_dir: out\nlearning_rate: 0.001\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(config)])  # a well-typed config gets as far as its data
    assert "must be" not in result.output and "x.jsonl" in result.output
