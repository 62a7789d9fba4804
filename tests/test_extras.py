"""A missing optional part is named with the extra that installs it, from Python and from the command line."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from typer.testing import CliRunner

from llembed.extras import EXTRAS, MissingExtraError, require


def _hide(monkeypatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))


def test_require_names_the_extra(monkeypatch):
    require("serve")  # installed here (the dev extra holds everything)
    _hide(monkeypatch, "faiss")
    with pytest.raises(MissingExtraError, match=r"vector search needs faiss, .* pip install 'llembed\[serve\]'"):
        require("index", "vector search")
    assert all(EXTRAS.values())


def test_the_cli_says_which_extra_is_missing(monkeypatch, tmp_path):
    from llembed.cli import app

    _hide(monkeypatch, "mteb")
    for name in [m for m in sys.modules if m.startswith("llembed.evaluation")]:
        monkeypatch.delitem(sys.modules, name)
    result = CliRunner().invoke(app, ["eval", "--data", "stsbenchmark"])
    assert result.exit_code == 2
    assert "error: evaluation needs mteb, not installed here: pip install 'llembed[eval]'" in result.output


def test_the_core_embeds_without_any_extra(tmp_path, tiny_model_dirs):
    """`llembed embed` in a process where every extra's modules fail to import, as after `pip install llembed`."""
    import subprocess

    blocked = sorted({name for names in EXTRAS.values() for name in names} | {"mteb", "openai", "selenium"})
    texts, vectors, model = tmp_path / "texts.txt", tmp_path / "v.npy", str(tiny_model_dirs["llama"])
    # a module set to None in sys.modules is what a missing package looks like to import and to find_spec
    script = (
        f"import sys\nsys.modules.update(dict.fromkeys({blocked!r}))\nfrom llembed.cli import app\n"
        f"app(['embed', {str(texts)!r}, '-o', {str(vectors)!r}, '-m', {model!r}, '--dtype', 'float32'])\n"
    )
    texts.write_text("A man plays a guitar.\nCats sleep.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import numpy as np

    assert np.load(vectors).shape == (2, 64)


def test_every_extra_is_checked_alone():
    """scripts/check_extras.sh (run by CI) installs each extra of pyproject.toml alone and runs its command."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project["optional-dependencies"])
    script = (root / "scripts" / "check_extras.sh").read_text(encoding="utf-8")
    checked = set(re.search(r"extras=\((core[^)]*)\)", script).group(1).split())  # the default list
    assert checked == (extras - {"all", "dev"}) | {"core"}
    assert all(f"check_{name}()" in script for name in checked)
    assert "bash scripts/check_extras.sh" in (root / ".ci" / "run").read_text(encoding="utf-8")
