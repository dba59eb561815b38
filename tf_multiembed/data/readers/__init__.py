"""Readers: files -> rows of raw cells (delimited CSV/TSV incl. Criteo and Avazu, MovieLens-100K), gzip included."""

from tf_multiembed.data.readers.delimited import DelimitedReader, RowChunk, expand_paths
from tf_multiembed.data.readers.movielens import MovieLensReader

__all__ = ["DelimitedReader", "MovieLensReader", "RowChunk", "expand_paths"]
