"""Written files and folders follow the process umask, as an ordinary open() or mkdir() would (issue 32):
mkstemp's 0600 and mkdtemp's 0700 hid vectors and indexes from the other users of a shared machine."""

import os
import stat

import numpy as np
import pytest
from typer.testing import CliRunner

from llembed.cli import app
from llembed.io_utils import atomic_directory, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_and_folders_follow_the_umask(tmp_path, umask_022):
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == 0o644
    folder = atomic_directory(tmp_path / "folder", lambda staging: (staging / "f").write_text("y"))
    assert _mode(folder) == 0o755 and _mode(folder / "f") == 0o644
    os.umask(0o077)  # a private umask is kept too
    assert _mode(atomic_write_text(tmp_path / "b.txt", "x")) == 0o600


def test_embed_output_and_an_index_are_readable_by_the_group(tmp_path, umask_022, tiny_model_dirs):
    texts = tmp_path / "t.txt"
    texts.write_text("one text\nanother\n", encoding="utf-8")
    corpus_file = tmp_path / "corpus.jsonl"
    corpus_file.write_text('{"id": "a", "text": "cats sleep"}\n{"id": "b", "text": "dogs run"}\n', encoding="utf-8")
    model = str(tiny_model_dirs["llama"])
    runner = CliRunner()
    assert runner.invoke(app, ["embed", str(texts), "-o", str(tmp_path / "v.npy"), "-m", model]).exit_code == 0
    assert _mode(tmp_path / "v.npy") == 0o644 and np.load(tmp_path / "v.npy").shape[0] == 2
    index = tmp_path / "idx"
    assert runner.invoke(app, ["index", "build", str(corpus_file), "-o", str(index), "-m", model]).exit_code == 0
    assert _mode(index) == 0o755
    assert {_mode(p) for p in index.rglob("*") if p.is_file()} == {0o644}
