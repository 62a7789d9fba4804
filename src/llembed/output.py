"""Output formatting: Matryoshka truncation, L2 normalisation and precision (sentence-transformers' meaning)."""

from __future__ import annotations

import numpy as np
import torch

from llembed.errors import RecipeError


def format_vectors(
    vectors: torch.Tensor,
    normalize: bool = True,
    truncate_dim: int | None = None,
    precision: str = "float32",
    ranges: np.ndarray | None = None,
) -> np.ndarray:
    """Truncate (Matryoshka: first ``truncate_dim`` dims), then normalise, then quantise.

    Normalising after truncation keeps truncated vectors unit-length, as Matryoshka retrieval expects.
    ``int8``/``uint8`` map each dimension's [min, max] to 256 buckets: with ``ranges`` (shape (2, d)) fixed,
    otherwise from the vectors at hand, as sentence-transformers does. ``binary``/``ubinary`` threshold at 0
    and pack 8 dimensions per byte.
    """
    vectors = vectors.float()
    if truncate_dim is not None:
        if truncate_dim > vectors.shape[-1]:
            raise RecipeError(f"truncate_dim={truncate_dim} exceeds the embedding size {vectors.shape[-1]}")
        vectors = vectors[..., :truncate_dim]
    if normalize:
        vectors = torch.nn.functional.normalize(vectors, p=2, dim=-1)
    array = vectors.cpu().numpy().astype(np.float32)
    if precision == "float32":
        return array
    if precision == "float16":
        return array.astype(np.float16)
    if len(array) == 0:
        width = array.shape[1] if not precision.endswith("binary") else (array.shape[1] + 7) // 8
        return np.zeros((0, width), dtype=np.int8 if precision in ("int8", "binary") else np.uint8)
    from sentence_transformers.quantization import quantize_embeddings

    if precision.endswith("int8") and ranges is None and len(array) < 2:
        raise RecipeError(
            f"{precision} needs per-dimension ranges: calibrate the embedder first (Embedder.calibrate) "
            "or encode at least two texts together"
        )
    if ranges is not None:
        ranges = np.asarray(ranges, dtype=np.float32)[:, : array.shape[1]]
    return quantize_embeddings(array, precision=precision, ranges=ranges)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); normalise a matrix once when it is compared many times."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (float64, as MTEB computes pair scores)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.clip(norms, 1e-12, None)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b`` (float32)."""
    return unit_rows(a) @ unit_rows(b).T


def as_float(array: np.ndarray, precision: str) -> np.ndarray:
    """Vectors of ``precision`` as float32; packed binary is unpacked to ±1 per dimension."""
    if precision in ("binary", "ubinary") and array.dtype in (np.uint8, np.int8):
        packed = (array.astype(np.int16) + 128).astype(np.uint8) if precision == "binary" else array
        bits = np.unpackbits(packed, axis=1)
        return bits.astype(np.float32) * 2 - 1
    return array.astype(np.float32)
