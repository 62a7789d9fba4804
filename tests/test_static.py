"""The static tier: distil a recipe into token vectors, load the result in llembed and in sentence-transformers,
and get the same vectors as a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from llembed import Embedder
from llembed.errors import InputError, RecipeError
from llembed.static_distill import SIF_A, distill_static, pca, token_frequencies, token_texts

SENTENCES = ["A man is playing a guitar.", "Stocks fell sharply on Monday.", "Cats sleep.", "Paris, France"]


@pytest.fixture(scope="module")
def static_dir(tiny_model_dirs, tmp_path_factory):
    teacher = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), dtype="float32", pooling="mean")
    out = tmp_path_factory.mktemp("static") / "tiny-static"
    frequency = ["the cat sat on the mat", "the dog ate the bone"]
    return distill_static(teacher, out, dims=16, texts=frequency, batch_size=512, show_progress_bar=False)


def test_pca_and_frequencies_by_hand(decoder_tokenizer):
    points = np.array([[2.0, 0.0, 1.0], [-2.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, -1.0, 1.0]])
    projected = pca(points, 1)  # the first axis is x (variance 8 against y's 2); the constant z drops out
    assert np.allclose(np.abs(projected[:, 0]), [2, 2, 0, 0], atol=1e-6)
    with pytest.raises(InputError, match="dims must be between 1 and 3, not 4"):
        pca(points, 4)
    the = decoder_tokenizer(" the", add_special_tokens=False)["input_ids"]
    frequency = token_frequencies(decoder_tokenizer, ["the the", " the"], len(decoder_tokenizer))
    total = sum(len(decoder_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in ["the the", " the"])
    assert frequency[the[0]] == pytest.approx(2 / total) and frequency.sum() == pytest.approx(1.0)


def test_the_folder_loads_in_sentence_transformers_and_llembed_alike(static_dir):
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(static_dir), device="cpu").encode(SENTENCES)
    ours = Embedder.from_pretrained(str(static_dir))
    assert ours.recipe.prompt == "none" and ours.recipe.pooling == "mean" and ours.dimension == 16
    np.testing.assert_allclose(ours.encode(SENTENCES), theirs, atol=1e-5)
    batched = ours.encode(SENTENCES, batch_size=3)  # a batch equals its singles
    np.testing.assert_allclose(batched, np.stack([ours.encode(s) for s in SENTENCES]), atol=1e-6)


def test_a_text_is_the_normalised_mean_of_its_tokens_rows(static_dir, decoder_tokenizer):
    from safetensors.torch import load_file

    table = load_file(static_dir / "model.safetensors")["embedding.weight"].numpy()
    ids = decoder_tokenizer("Cats sleep.", add_special_tokens=False)["input_ids"]
    expected = table[ids].mean(axis=0)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(Embedder.from_pretrained(str(static_dir)).encode("Cats sleep."), expected, atol=1e-6)


def test_frequent_tokens_weigh_less(static_dir, decoder_tokenizer, tiny_model_dirs):
    """A token never seen in the frequency texts keeps its PCA row (weight 1); " the", seen twice, is scaled by
    a / (a + its share of the tokens)."""
    from safetensors.torch import load_file

    table = load_file(static_dir / "model.safetensors")["embedding.weight"].numpy()
    teacher = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), dtype="float32", pooling="mean")
    ids, strings = token_texts(decoder_tokenizer)
    raw = teacher.pool(strings, [teacher.spec], "document", batch_size=512, strict=False)[teacher.spec].numpy()
    rows = np.zeros((len(decoder_tokenizer), 16), dtype=np.float32)
    rows[ids] = pca(raw, 16)
    unseen = decoder_tokenizer(" guitar", add_special_tokens=False)["input_ids"][0]
    np.testing.assert_allclose(table[unseen], rows[unseen], atol=1e-4)
    the = decoder_tokenizer(" the", add_special_tokens=False)["input_ids"][0]
    counts = [
        decoder_tokenizer(t, add_special_tokens=False)["input_ids"]
        for t in ["the cat sat on the mat", "the dog ate the bone"]
    ]
    share = sum(row.count(the) for row in counts) / sum(len(row) for row in counts)
    np.testing.assert_allclose(table[the], rows[the] * SIF_A / (SIF_A + share), atol=1e-5)


def test_a_static_model_refuses_what_it_cannot_do(static_dir):
    with pytest.raises(RecipeError, match="no adapter, no other dtype"):
        Embedder.from_pretrained(str(static_dir), dtype="bfloat16")
    with pytest.raises(RecipeError, match="layer 1 out of range: the model has hidden states 0..0"):
        Embedder.from_pretrained(str(static_dir), layer=1).encode("x")
    with pytest.raises(RecipeError, match="no LM head"):
        Embedder.from_pretrained(str(static_dir)).encode_sparse(["x"])


def test_the_cli_distils(tiny_model_dirs, tmp_path):
    from typer.testing import CliRunner

    from llembed.cli import app

    out = tmp_path / "cli-static"
    result = CliRunner().invoke(
        app, ["distill-static", str(out), "-m", str(tiny_model_dirs["gpt2"]), "--dims", "8", "--dtype", "float32"]
    )
    assert result.exit_code == 0, result.output
    assert Embedder.from_pretrained(str(out)).encode("Cats sleep.").shape == (8,)
    bad = CliRunner().invoke(app, ["distill-static", str(tmp_path / "x"), "--dims", "0"])
    assert bad.exit_code == 2


def test_refine_fits_mean_rows_to_their_targets_and_leaves_other_tokens():
    """Two texts sharing token 1: after fitting, each text's mean row points where its target does (cosine loss
    near 0), and token 3, in neither text, keeps its row."""
    from llembed.static_distill import refine_table

    rng = np.random.default_rng(0)
    table = rng.normal(size=(4, 2)).astype(np.float32)
    targets = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    fitted, losses = refine_table(table, [[0, 1], [1, 2]], targets, epochs=300, learning_rate=0.05, batch_size=2,
                                  show_progress_bar=False)  # fmt: skip
    means = np.stack([fitted[[0, 1]].mean(0), fitted[[1, 2]].mean(0)])
    cosine = (means * targets).sum(1) / np.linalg.norm(means, axis=1)
    assert cosine.min() > 0.999 and losses[-1] < 1e-3 < losses[0]
    np.testing.assert_array_equal(fitted[3], table[3])
    with pytest.raises(InputError, match="no text has a token"):
        refine_table(table, [[]], targets[:1])


def test_refined_distillation_records_its_fit(tiny_model_dirs, tmp_path):
    import json

    teacher = Embedder.from_pretrained(str(tiny_model_dirs["llama"]), dtype="float32", pooling="mean")
    texts = ["the cat sat on the mat", "the dog ate the bone", "a bird sang in the old tree", "rain fell all day"]
    out = distill_static(teacher, tmp_path / "refined", dims=8, texts=texts, batch_size=512, show_progress_bar=False,
                         refine=4)  # fmt: skip
    refined = json.loads((out / "llembed_static.json").read_text())["refined"]
    losses = refined["cosine_loss_by_epoch"]
    assert refined["texts"] == 4 and len(losses) == refined["epochs"] + 1 and losses[-1] < losses[0]
