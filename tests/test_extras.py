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
