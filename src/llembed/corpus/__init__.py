"""Corpus embedding at scale: a corpus → resumable parquet shards of vectors, on Ray Data or in-process."""

from llembed.corpus.job import CorpusSummary, embed_corpus
from llembed.corpus.manifest import is_vectors_folder, read_manifest
from llembed.corpus.shards import ShardOptions, Vectors, read_vectors

__all__ = [
    "CorpusSummary",
    "ShardOptions",
    "Vectors",
    "embed_corpus",
    "is_vectors_folder",
    "read_manifest",
    "read_vectors",
]
