"""Speed and peak memory of a warm start's table remap (issue 21): a Criteo-shaped `[1.1M, 100]` float32 table and its
two Adam moments, read from a checkpoint and remapped into the new model's variables (`training/warm_start.py`).

    python benchmarks/speed/remap_memory.py                 # fractions 0.25, 0.5, 1 of the Criteo shape, a process each
    python benchmarks/speed/remap_memory.py --fraction=1    # one size, in this process

Per size: the 39 vocabularies of benchmarks/criteo_shape.json scaled by the fraction; the new day evicts 2% of each
field's tokens and adds 5% new ones. Timed: the row mapping (`row_mapping`: reading both vocabularies and matching
them with Arrow), then for the table and each moment `remap_rows`: the source read from the checkpoint, then slices
of 16 MB of its rows gathered and scattered into the new variable. Peak memory: the process's resident anonymous
memory sampled every millisecond during the remap, minus that just before it (the new model's three variables
already allocated, as in a warm start): what the remap itself adds. The results go to
benchmarks/results/remap_memory.json.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import CRITEO_SHAPE, RESULTS_DIR  # noqa: E402

flags.DEFINE_float("fraction", None, "Measure one size (this fraction of the Criteo shape) in this process.")
flags.DEFINE_list("fractions", ["0.25", "0.5", "1"], "Sizes to measure, one child process each.")
FLAGS = flags.FLAGS
WIDTH = 100


def _rss() -> int:
    """The process's resident anonymous memory (what it allocated; not the page cache of files it read or mapped)."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("RssAnon:"))


class _PeakSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = _rss(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)


def measure(fraction: float) -> dict:
    import tensorflow as tf

    from tf_multiembed.training import warm_start as warm_start_lib

    shape = json.loads(CRITEO_SHAPE.read_text())
    old_sizes = [max(2, int(round(size * fraction))) for size in shape["vocabulary_sizes"]]
    rng = np.random.default_rng(0)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="remap-"))
    old_dir, new_dir = folder / "old", folder / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    new_sizes = []
    for name, size in zip(shape["field_names"], old_sizes):
        tokens = [f"{name}_{index}" for index in range(size - 1)]
        evicted = set(rng.choice(len(tokens), size=len(tokens) // 50, replace=False).tolist())
        new = [token for index, token in enumerate(tokens) if index not in evicted]
        new += [f"{name}_new{index}" for index in range(len(tokens) // 20)]
        (old_dir / f"{name}.txt").write_text("".join(f"{token}\n" for token in tokens))
        (new_dir / f"{name}.txt").write_text("".join(f"{token}\n" for token in new))
        new_sizes.append(len(new) + 1)
    old_rows, new_rows = sum(old_sizes), sum(new_sizes)

    # The source checkpoint: the table and its two moments, as a run's latest checkpoint holds them.
    holder = tf.Module()
    holder.table, holder.momentum, holder.velocity = (
        tf.Variable(tf.random.uniform([old_rows, WIDTH])) for _ in range(3))
    prefix = tf.train.Checkpoint(model=holder).write(str(folder / "ckpt"))
    del holder
    keys = [f"model/{name}/.ATTRIBUTES/VARIABLE_VALUE" for name in ("table", "momentum", "velocity")]

    class Source:
        field_names, vocabulary_sizes, vocab_dir = tuple(shape["field_names"]), tuple(old_sizes), old_dir

        def vocabulary_columns(self):
            return list(self.field_names)

    # The new model's table and moments, initialised (their pages resident, as a built model's are).
    targets = [tf.Variable(tf.random.uniform([new_rows, WIDTH])) for _ in range(3)]
    table_bytes = new_rows * WIDTH * 4
    baseline = _rss()
    sampler = _PeakSampler()
    sampler.start()
    started = time.perf_counter()
    source_rows, target_rows = warm_start_lib.row_mapping(Source(), new_dir, new_sizes)
    mapped = time.perf_counter()
    for key, target in zip(keys, targets):  # as warm_start_model does: slices of the source read from the checkpoint
        warm_start_lib.remap_rows(warm_start_lib.checkpoint_tensor(prefix, key, tf.float32), target, source_rows,
                                  target_rows)
    finished = time.perf_counter()
    sampler.running = False
    sampler.join()
    result = {"fraction": fraction, "old_rows": old_rows, "new_rows": new_rows, "width": WIDTH,
              "rows_carried_over": int(len(source_rows)), "table_mb": round(table_bytes / 2**20, 1),
              "mapping_seconds": round(mapped - started, 2), "remap_seconds": round(finished - mapped, 2),
              "total_seconds": round(finished - started, 2),
              "peak_extra_mb": round((sampler.peak - baseline) / 2**20, 1),
              "peak_extra_over_table": round((sampler.peak - baseline) / table_bytes, 2)}
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv) -> None:
    del argv
    args = FLAGS
    if args.fraction is not None:
        print(json.dumps(measure(args.fraction)), flush=True)
        return
    results = []
    for fraction in (float(value) for value in args.fractions):
        output = subprocess.run([sys.executable, __file__, f"--fraction={fraction}"], capture_output=True, text=True,
                                check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                                 "CUDA_VISIBLE_DEVICES": ""})
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    path = RESULTS_DIR / "remap_memory.json"
    path.write_text(json.dumps({"cpu_threads": os.cpu_count(), "results": results}, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    app.run(main)
