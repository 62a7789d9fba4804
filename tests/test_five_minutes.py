"""The README's "first five minutes", run as written on the real default model: the CLI commands in-process, the
server on a real uvicorn on 127.0.0.1 (its port put in place of 8000), curl and the OpenAI client as a user would."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed.cli import app

from .serving.conftest import running

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def five_minute_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The first five minutes", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_readme_has_the_five_steps():
    commands = five_minute_commands()
    assert [c.split()[1] if c.startswith(".venv/bin/llembed") else c.split()[0] for c in commands] == [
        "embed", "eval", "serve", "curl", ".venv/bin/python",
    ]  # fmt: skip


def test_the_first_five_minutes_as_written(tmp_path, monkeypatch, default_model_dir):
    from llembed.serving.assembly import AppSpec, build_app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    embed, evaluate, serve, curl, client = five_minute_commands()
    runner = CliRunner()

    result = runner.invoke(app, shlex.split(embed)[1:])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "vectors.npy").shape == (200, 576)

    result = runner.invoke(app, shlex.split(evaluate)[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "llembed-eval" / "report.html").is_file()
    assert "STS" in (tmp_path / "llembed-eval" / "results.md").read_text(encoding="utf-8")

    assert shlex.split(serve) == [".venv/bin/llembed", "serve", "--demo", "&"]
    server_app = build_app(AppSpec(demo=True))  # what `llembed serve --demo` serves
    index = server_app.state.server.indexes["demo"].index
    with running(server_app) as base:
        found = subprocess.run(shlex.split(curl.replace("http://127.0.0.1:8000", base)), capture_output=True,
                               text=True, check=True, timeout=120)  # fmt: skip
        body = json.loads(found.stdout)
        request = json.loads(shlex.split(curl)[-1])
        expected = index.search(request["query"], k=3, mode="hybrid")[0]
        assert [hit["id"] for hit in body["data"][0]["hits"]] == [hit.id for hit in expected]

        code = shlex.split(client)[2].replace("http://127.0.0.1:8000", base)
        printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        assert printed.stdout.strip() == "576"
