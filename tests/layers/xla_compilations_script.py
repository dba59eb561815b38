"""Run by test_embedding.py with XLA_FLAGS=--xla_dump_to=<dir>: trains a tiny ME model with `jit_compile=True` for
one epoch over `argv[1]` batches of different ids (same shapes). The test counts the XLA modules dumped."""

import sys

import numpy as np

from tf_multiembed.models import build_model
from tf_multiembed.training import PaperRecipe, compile_model

num_batches = int(sys.argv[1])
rng = np.random.default_rng(0)
sizes = [5, 7, 9]
ids = np.stack([rng.integers(0, size, 8 * num_batches) for size in sizes], axis=1)
labels = (rng.random(8 * num_batches) < 0.5).astype("float32")
model = build_model("dnn", sizes, scale=2, multi_embedding=True, hidden_units=(4, 4))
compile_model(model, PaperRecipe(), jit_compile=True)
model.fit(ids, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)
