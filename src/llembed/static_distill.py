"""The static tier: an embedder (backbone + recipe) distilled into a static model, model2vec-style.

Every token of the vocabulary is embedded on its own through the embedder's recipe (its prompt, layer and
pooling: each token read as a one-token text would be); the vectors are reduced with PCA and each token is
weighted by how common it is (SIF: ``a / (a + p(token))``, ``p`` counted on licence-clean training text that
shares nothing with the bundled evaluation sets), so in a text's mean, frequent tokens weigh little. The result
loads in llembed and in sentence-transformers (:mod:`llembed.static`).

``refine``: then train the table to reproduce the recipe's own sentence vectors (Tokenlearn, as in model2vec's
potion models): the recipe embeds ``refine`` licence-clean sentences, their vectors are projected on the same
principal axes, and the table's rows are fitted (Adam, cosine loss) so that each sentence's mean row points
where the recipe's vector does. Tokens no such sentence holds keep their distilled rows.
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
from llembed.static import META_FILE, bag_offsets

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
    return project(vectors, *principal_axes(vectors, dims))


def project(vectors: np.ndarray, centre: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """``vectors`` centred on ``centre`` and projected on ``axes`` (the distilled table's space)."""
    return ((vectors - centre) @ axes.T).astype(np.float32)


def principal_axes(vectors: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The vectors' mean and their ``dims`` leading principal axes (rows)."""
    if not 0 < dims <= vectors.shape[1]:
        raise InputError(f"dims must be between 1 and {vectors.shape[1]}, not {dims}")
    centre = vectors.mean(axis=0, keepdims=True)
    _, _, axes = np.linalg.svd((vectors - centre).astype(np.float64), full_matrices=False)
    return centre, axes[:dims]


REFINE_EPOCHS = 6
REFINE_LEARNING_RATE = 2e-3


def refine_table(
    table: np.ndarray,
    token_ids: list[list[int]],
    targets: np.ndarray,
    epochs: int = REFINE_EPOCHS,
    learning_rate: float = REFINE_LEARNING_RATE,
    batch_size: int = 256,
    seed: int = 0,
    show_progress_bar: bool | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Fit ``table``'s rows so that each text's mean row (its tokens ``token_ids``) has the direction of its
    ``targets`` row; returns the table and the mean cosine loss of each epoch (the first measured before any
    update). Texts without tokens are left out."""
    import torch
    from tqdm.auto import tqdm

    keep = [i for i, ids in enumerate(token_ids) if ids]
    if not keep:
        raise InputError("refine: no text has a token")
    weights = torch.nn.Parameter(torch.from_numpy(table.copy()))
    goal = torch.nn.functional.normalize(torch.from_numpy(targets[keep]).float(), dim=1)
    texts = [torch.tensor(token_ids[i], dtype=torch.long) for i in keep]
    optimizer = torch.optim.Adam([weights], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([texts[i] for i in rows])
        offsets = bag_offsets([len(texts[i]) for i in rows])
        means = torch.nn.functional.embedding_bag(flat, weights, offsets, mode="mean")
        return (1 - torch.nn.functional.cosine_similarity(means, goal[rows], dim=1)).mean()

    with torch.no_grad():
        losses = [float(loss_of(torch.arange(len(texts))))]
    for _ in tqdm(range(epochs), desc="refining", disable=show_progress_bar is False):
        order = torch.randperm(len(texts), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            loss = loss_of(rows)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(rows)
        losses.append(total / len(texts))
    return weights.detach().numpy(), losses


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
    refine: int = 0,
) -> Path:
    """Write the static model distilled from ``embedder``'s recipe to ``out`` (a sentence-transformers folder,
    written whole or not at all); ``texts``: what token frequencies are counted on (default
    :func:`frequency_texts`); ``refine``: how many of those texts (distinct, in a fixed shuffled order) the recipe
    embeds for the table to be trained on (0: none)."""
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
    centre, axes = principal_axes(vectors[ids], dims)
    table[ids] = project(vectors[ids], centre, axes)
    counted = list(frequency_texts() if texts is None else texts)
    frequency = token_frequencies(tokenizer, counted, len(tokenizer))
    table *= (SIF_A / (SIF_A + frequency)).astype(np.float32)[:, None]
    refined = None
    if refine:
        sample = list(dict.fromkeys(counted))
        np.random.default_rng(0).shuffle(sample)
        sample = sample[:refine]
        teacher = embedder.pool(sample, [embedder.spec], "document", None, batch_size, show_progress_bar, strict=False)
        targets = project(teacher[embedder.spec].numpy(), centre, axes)
        token_ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
        table, losses = refine_table(table, token_ids, targets, show_progress_bar=show_progress_bar)
        refined = {"texts": len(sample), "epochs": REFINE_EPOCHS, "learning_rate": REFINE_LEARNING_RATE,
                   "cosine_loss_by_epoch": [round(loss, 5) for loss in losses]}  # fmt: skip
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
        "refined": refined,
    }
    atomic_write_text(work / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    return out
