"""The static tier: an embedder (backbone + recipe) distilled into a static model, model2vec-style.

Every token of the vocabulary is embedded on its own through the embedder's recipe (its prompt, layer and
pooling: each token read as a one-token text would be); the vectors are reduced with PCA and each token is
weighted by how common it is (SIF: ``a / (a + p(token))``, ``p`` counted on licence-clean training text that
shares nothing with the bundled evaluation sets), so in a text's mean, frequent tokens weigh little. The result
loads in llembed and in sentence-transformers (:mod:`llembed.static`).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from llembed.embedder import Embedder
from llembed.errors import InputError
from llembed.io_utils import atomic_write_text, iter_jsonl
from llembed.static import META_FILE

SIF_A = 1e-3
"""SIF's smoothing: a token as common as ``a`` weighs half as much as an unseen one."""
DEFAULT_DIMS = 256


def token_texts(tokenizer) -> tuple[list[int], list[str]]:
    """Every non-special token id of the vocabulary and its text (what the tokenizer decodes it to)."""
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(len(tokenizer)) if i not in special]
    return ids, [tokenizer.decode([i]) for i in ids]


def token_frequencies(tokenizer, texts: Iterable[str], size: int) -> np.ndarray:
    """Relative frequency of each token id over ``texts`` (tokenized as the static model will tokenize them)."""
    counts = np.zeros(size, dtype=np.float64)
    iterator = iter(texts)
    while batch := list(itertools.islice(iterator, 1024)):
        ids = [token for row in tokenizer(batch, add_special_tokens=False)["input_ids"] for token in row]
        counts += np.bincount(np.asarray(ids, dtype=np.int64), minlength=size)[:size]
    total = counts.sum()
    if total == 0:
        raise InputError("token frequencies: the frequency texts hold no token")
    return counts / total


def pca(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The vectors centred and projected on their ``dims`` leading principal axes (no whitening)."""
    if not 0 < dims <= vectors.shape[1]:
        raise InputError(f"dims must be between 1 and {vectors.shape[1]}, not {dims}")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    _, _, axes = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    return (centred @ axes[:dims].T).astype(np.float32)


def frequency_texts() -> list[str]:
    """Licence-clean text for token frequencies: the bundled calibration sentences and the training mixes in
    ``examples/data`` when the checkout has them (every one checked against the bundled evaluation sets)."""
    from llembed.quantization import calibration_texts

    texts = list(calibration_texts())
    examples = Path(__file__).resolve().parents[2] / "examples" / "data"
    for path in sorted(examples.glob("*/*.jsonl*")):
        for _, row in iter_jsonl(path):
            texts += [row[key] for key in ("query", "positive", "text") if isinstance(row.get(key), str)]
    return texts


def distill_static(
    embedder: Embedder,
    out: str | Path,
    dims: int = DEFAULT_DIMS,
    texts: Iterable[str] | None = None,
    batch_size: int = 256,
    show_progress_bar: bool | None = None,
) -> Path:
    """Write the static model distilled from ``embedder``'s recipe to ``out`` (a sentence-transformers folder,
    written whole or not at all); ``texts``: what token frequencies are counted on (default
    :func:`frequency_texts`)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding
    from tokenizers import Tokenizer

    out = Path(out)
    tokenizer = embedder.tokenizer
    ids, strings = token_texts(tokenizer)
    vectors = np.zeros((len(tokenizer), embedder.backbone.hidden_size), dtype=np.float32)
    # a token is a text of its own; one that decodes to whitespace is embedded as the model sees an empty text
    pooled = embedder.pool(strings, [embedder.spec], "document", None, batch_size, show_progress_bar, strict=False)
    vectors[ids] = pooled[embedder.spec].numpy()
    table = np.zeros((len(tokenizer), min(dims, vectors.shape[1])), dtype=np.float32)
    table[ids] = pca(vectors[ids], dims)
    counted = list(frequency_texts() if texts is None else texts)
    frequency = token_frequencies(tokenizer, counted, len(tokenizer))
    table *= (SIF_A / (SIF_A + frequency)).astype(np.float32)[:, None]
    static = StaticEmbedding(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), embedding_weights=table)
    model = SentenceTransformer(modules=[static, Normalize()], device="cpu")
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    model.save(str(work))
    meta = {
        "distilled_from": embedder.recipe.to_dict(),
        "dims": int(table.shape[1]),
        "vocabulary": len(tokenizer),
        "weighting": {"sif_a": SIF_A, "frequency_texts": len(counted)},
    }
    atomic_write_text(work / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return out
