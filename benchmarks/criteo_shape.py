"""The Criteo-shaped benchmark inputs: the 39 per-field cardinalities of criteo_shape.json (shipped next to this
file, so every benchmark runs from a bare clone) and Zipf(1.3) ids."""

import json
import pathlib

import numpy as np

CRITEO_SHAPE = pathlib.Path(__file__).resolve().parent / "criteo_shape.json"


def criteo_vocabulary_sizes():
    """The 39 per-field vocabulary sizes (13 bucketed integers, then 26 categoricals; sum 1,142,531)."""
    return json.loads(CRITEO_SHAPE.read_text())["vocabulary_sizes"]


def zipf_ids(sizes, rows, rng=None):
    """`[rows, len(sizes)]` int64 ids, Zipf(1.3)-distributed and clipped to each field's size (rng: seed 0)."""
    rng = np.random.default_rng(0) if rng is None else rng
    columns = [np.minimum(rng.zipf(1.3, rows) - 1, size - 1) for size in sizes]
    return np.stack(columns, axis=1).astype("int64")
