"""The per-set projection's two levers, each against what it replaced, forward + backward in one process.

    python benchmarks/speed/layer_levers.py --threads=2      # [2048, 10 * 400]: ME-DNN / ME-DCNv2 10x10's projection
    python benchmarks/speed/layer_levers.py --features=1600  # 4 sets

- Batch norm: Keras' `BatchNormalization` (moments + `batch_normalization`, about ten element-wise passes each way)
  against `tf_multiembed.layers.batch_norm.fused_batch_norm` (TensorFlow's `FusedBatchNormV3`) on the same layer.
- Dropout: `tf.keras.layers.Dropout` (one float32 draw per activation) against `BitsDropout` (16 bits per draw).

Each candidate is a compiled `tf.function` computing the layer and the gradient of a sum through it, in training
mode; the figure is the median over `--repeats` timed rounds of `--steps` calls, the rounds of the two candidates of a
lever alternating, and the ratio is baseline / candidate. Writes benchmarks/results/layer_levers.json.
"""

import json
import os
import pathlib
import statistics
import sys
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from benchmarks.common import RESULTS_DIR  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402

FLAGS = flags.FLAGS
run_config.define_flags(["batch_size", "threads"])  # train.py's: the rows of the activations, the threads
flags.adopt_module_key_flags(run_config)
flags.DEFINE_integer("features", 4000, "Columns (sets x units: 10 x 400 for a 10-set projection).")
flags.DEFINE_integer("steps", 10, "Calls per timed round.")
flags.DEFINE_integer("repeats", 7, "Timed rounds per candidate.")
flags.DEFINE_bool("write", True, "Write benchmarks/results/layer_levers.json.")


def _gradient_step(layer_call, inputs):
    import tensorflow as tf

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer_call(inputs))
        return tape.gradient(loss, inputs)

    return step


def _time(step) -> float:
    started = time.perf_counter()
    for _ in range(FLAGS.steps):
        result = step()
    result.numpy()
    return (time.perf_counter() - started) / FLAGS.steps


def compare(name: str, baseline, candidate) -> dict:
    baseline(), candidate()  # tracing, first allocations
    times = {"baseline": [], "candidate": []}
    for round_index in range(FLAGS.repeats):
        order = ("baseline", "candidate") if round_index % 2 == 0 else ("candidate", "baseline")
        for which in order:
            times[which].append(_time(baseline if which == "baseline" else candidate))
    base, cand = statistics.median(times["baseline"]), statistics.median(times["candidate"])
    row = {"lever": name, "baseline_ms": 1000 * base, "candidate_ms": 1000 * cand, "speedup": base / cand}
    print(f"{name}: {1000 * base:.1f} ms -> {1000 * cand:.1f} ms ({base / cand:.2f}x)", flush=True)
    return row


def main(argv):
    del argv
    import tensorflow as tf

    from tf_multiembed.layers.batch_norm import fused_batch_norm
    from tf_multiembed.layers.dropout import BitsDropout
    from tf_multiembed.training.run import configure_threads

    configure_threads(FLAGS.threads)
    tf.keras.utils.set_random_seed(0)
    inputs = tf.random.normal([FLAGS.batch_size, FLAGS.features])
    batch_norm = tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    batch_norm.build((None, FLAGS.features))
    keras_dropout, bits_dropout = tf.keras.layers.Dropout(0.2), BitsDropout(0.2)
    rows = [compare("batch norm: Keras -> fused_batch_norm",
                    _gradient_step(lambda x: batch_norm(x, training=True), inputs),
                    _gradient_step(lambda x: fused_batch_norm(batch_norm, x, training=True), inputs)),
            compare("dropout 0.2: Keras Dropout -> BitsDropout",
                    _gradient_step(lambda x: keras_dropout(x, training=True), inputs),
                    _gradient_step(lambda x: bits_dropout(x, training=True), inputs))]
    if FLAGS.write:
        path = RESULTS_DIR / "layer_levers.json"
        path.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), "shape": [FLAGS.batch_size, FLAGS.features],
                                    "threads": FLAGS.threads, "steps": FLAGS.steps, "repeats": FLAGS.repeats,
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    app.run(main)
