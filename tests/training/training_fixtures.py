"""A tiny learnable click data set and model shared by the training tests (and their subprocess scripts), and
the SIGKILL of a running train.py after a step checkpoint (the resume tests)."""

import pathlib
import re
import signal
import subprocess
import time

import numpy as np
import tensorflow as tf

from tf_multiembed import compat

VOCABULARY_SIZES = (12, 9, 7, 5)


def click_data(num_rows: int, seed: int = 0):
    """Ids `[n, 4]` and 0/1 labels from a planted logistic model with one pairwise interaction."""
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, size, num_rows) for size in VOCABULARY_SIZES], axis=1).astype(np.int64)
    planted = np.random.default_rng(1234)
    weights = [planted.normal(size=size) for size in VOCABULARY_SIZES]
    logit = sum(weight[ids[:, field]] for field, weight in enumerate(weights))
    logit += 0.8 * weights[0][ids[:, 0]] * weights[1][ids[:, 1]]
    labels = (rng.random(num_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return ids, labels


def batches(ids, labels, batch_size: int, shuffle_seed=None) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(ids), seed=shuffle_seed, reshuffle_each_iteration=False)
    return dataset.batch(batch_size)


def tiny_model(seed: int = 0, **kwargs) -> tf.keras.Model:
    """ME-DNN with 2 sets of width 4 and a 16-16 MLP (built in the current strategy scope)."""
    from tf_multiembed.models import build_model

    tf.keras.utils.set_random_seed(seed)
    options = dict(scale=2, embedding_dim=4, hidden_units=(16, 16))
    options.update(kwargs)
    return build_model("dnn", list(VOCABULARY_SIZES), **options)


def rows_changed_by_one_fit_step(embedding_updates: str, l2: float = 1e-3):
    """(looked-up rows, rows whose embedding weights changed, rows whose Adam first moment changed) after one
    `model.fit` step of the tiny model on 8 rows, with the given `CoupledL2Adam` embedding update mode."""
    from tf_multiembed.training import PaperRecipe, compile_model

    ids, labels = click_data(8, seed=5)
    model = compile_model(tiny_model(0), PaperRecipe(learning_rate=0.01, l2=l2, embedding_updates=embedding_updates))
    table = model.get_layer("multi_embedding").embeddings
    before = np.array(table)
    model.fit(ids, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    offsets = np.concatenate([[0], np.cumsum(VOCABULARY_SIZES)[:-1]])
    looked_up = set((ids + offsets).ravel().tolist())
    changed = set(np.flatnonzero(np.any(np.array(table) != before, axis=1)).tolist())
    moment = np.array(compat.adam_slots(model.optimizer, table)[0])  # the table's Adam first moment
    return looked_up, changed, set(np.flatnonzero(np.any(moment != 0, axis=1)).tolist())


def latest_checkpoint_step(run_dir: pathlib.Path) -> int:
    """The step of a run directory's latest checkpoint (0 before the first)."""
    index = run_dir / "checkpoints" / "checkpoint"
    match = re.search(r'model_checkpoint_path: ".*ckpt-(\d+)"', index.read_text()) if index.is_file() else None
    return int(match.group(1)) if match else 0


def kill_after_checkpoint(process: subprocess.Popen, run_dir: pathlib.Path, step: int, timeout: float = 240) -> int:
    """SIGKILLs a running train.py once its latest checkpoint reaches `step`; returns the step it was killed at.
    `process` must have been started with `stderr=subprocess.PIPE` (shown if it ends first)."""
    deadline = time.time() + timeout
    try:
        while latest_checkpoint_step(run_dir) < step:
            assert process.poll() is None, "train.py ended before its step checkpoints: " + \
                process.stderr.read().decode(errors="replace")[-3000:]
            assert time.time() < deadline, f"no step checkpoint within {timeout:.0f} s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return latest_checkpoint_step(run_dir)
