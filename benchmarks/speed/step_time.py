"""Training-step time of vectorized ME vs SE (same total width) vs a naive per-set loop, on Criteo-shaped inputs.

One step = forward + backward + Adam update, batch 2048, 39 fields with the cardinalities of
benchmarks/criteo_shape.json (sum 1.14M rows) and Zipf(1.3) ids. All variants of one model run in the same
process and are reported as ratios to SE at the same total embedding width, so machine noise cancels out.

    python benchmarks/speed/step_time.py                          # paper-scale vocabularies
    python benchmarks/speed/step_time.py --vocabulary=small       # 1,000 rows per field: isolates the dense compute

Writes benchmarks/results/step_time_<vocabulary>.json and a markdown table to stdout.
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
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_multiembed.layers import MLP, MultiEmbedding, SetCross, SetFlatten, SetMLP  # noqa: E402
from tf_multiembed.models import build_model  # noqa: E402
from benchmarks.common import RESULTS_DIR, criteo_vocabulary_sizes, zipf_ids  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import define_flags  # noqa: E402

define_flags(["batch_size", "threads", "jit_compile"])  # train.py's flags, names and defaults
flags.adopt_module_key_flags(run_config)
FLAGS = flags.FLAGS
flags.DEFINE_enum("vocabulary", "criteo", ["criteo", "small"], "criteo_shape.json cardinalities, or 1,000 per field.")
flags.DEFINE_list("models", ["dnn", "dcnv2"], "Models to time.")
flags.DEFINE_list("num_sets", ["2", "4", "10"], "Numbers of sets M (SE runs at width M*10).")
flags.DEFINE_integer("steps", 5, "Timed steps per variant (after 2 warm-up steps).")

BASE_DIM = 10


def vocabulary_sizes(kind):
    return [1000] * 39 if kind == "small" else criteo_vocabulary_sizes()


def naive_loop_model(name, sizes, num_sets):
    """ME written as the reference does it: one embedding table and one interaction per set, in a Python loop."""
    inputs = tf.keras.Input(shape=(len(sizes),), dtype="int64")
    projected = []
    for m in range(num_sets):
        x = SetFlatten()(MultiEmbedding(sizes, num_sets=1, embedding_dim=BASE_DIM, name=f"embedding_{m}")(inputs))
        if name == "dcnv2":
            x = SetCross(num_layers=4)(x)
        projected.append(tf.keras.layers.Reshape((400,))(SetMLP((400,), 0.2)(x)))
    combined = tf.keras.layers.Average()(projected) if num_sets > 1 else projected[0]
    logit = MLP((400,), 0.2, output_units=1)(combined)
    return tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(logit))


def step_seconds(model, ids, labels, steps):
    """Median wall time and median process CPU time of one training step.

    CPU time (both threads together) is reported beside wall time because it is much less sensitive to other
    processes on a shared 2-core machine; on an idle machine wall ~ CPU / threads.
    """
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  jit_compile=FLAGS.jit_compile)
    for _ in range(2):
        model.train_on_batch(ids, labels)
    wall, cpu = [], []
    for _ in range(steps):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        model.train_on_batch(ids, labels)
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main(argv):
    del argv
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    sizes = vocabulary_sizes(FLAGS.vocabulary)
    ids = tf.constant(zipf_ids(sizes, FLAGS.batch_size))
    labels = tf.constant(np.random.default_rng(1).integers(0, 2, FLAGS.batch_size).astype("float32"))
    rows = []
    for name in FLAGS.models:
        for num_sets in (int(m) for m in FLAGS.num_sets):
            variants = {  # called within this iteration; the defaults bind its values
                "se": lambda name=name, m=num_sets: build_model(name, sizes, scale=m, multi_embedding=False),
                "me": lambda name=name, m=num_sets: build_model(name, sizes, scale=m, multi_embedding=True),
                "naive_me": lambda name=name, m=num_sets: naive_loop_model(name, sizes, m),
            }
            seconds, cpu = {}, {}
            for variant, factory in variants.items():
                tf.keras.backend.clear_session()
                seconds[variant], cpu[variant] = step_seconds(factory(), ids, labels, FLAGS.steps)
                print(f"{name} M={num_sets} {variant}: {seconds[variant] * 1000:.0f} ms/step wall, "
                      f"{cpu[variant] * 1000:.0f} ms CPU", flush=True)
            rows.append({
                "model": name, "num_sets": num_sets, "total_width": num_sets * BASE_DIM,
                **{f"{v}_examples_per_s": FLAGS.batch_size / s for v, s in seconds.items()},
                **{f"{v}_cpu_ms_per_step": 1000 * c for v, c in cpu.items()},
                "me_over_se_time": seconds["me"] / seconds["se"],
                "naive_over_me_time": seconds["naive_me"] / seconds["me"],
                "me_over_se_cpu": cpu["me"] / cpu["se"],
                "naive_over_me_cpu": cpu["naive_me"] / cpu["me"],
            })
    suffix = "_xla" if FLAGS.jit_compile else ""
    out = RESULTS_DIR / f"step_time_{FLAGS.vocabulary}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"vocabulary": FLAGS.vocabulary, "jit_compile": FLAGS.jit_compile, "sum_vocabulary": sum(sizes),
            "batch_size": FLAGS.batch_size,
            "threads": FLAGS.threads, "steps": FLAGS.steps, "tensorflow": tf.__version__, "rows": rows}
    out.write_text(json.dumps(meta, indent=2))
    print(f"\nvocabulary={FLAGS.vocabulary} (sum {sum(sizes):,}), batch {FLAGS.batch_size}, {FLAGS.threads} threads, "
          f"jit_compile={FLAGS.jit_compile}")
    print("| model | M | SE ex/s | ME ex/s | naive ME ex/s | ME/SE wall (CPU) | naive/ME wall (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['num_sets']} | {r['se_examples_per_s']:,.0f} | {r['me_examples_per_s']:,.0f} | "
              f"{r['naive_me_examples_per_s']:,.0f} | {r['me_over_se_time']:.2f} ({r['me_over_se_cpu']:.2f}) | "
              f"{r['naive_over_me_time']:.2f} ({r['naive_over_me_cpu']:.2f}) |")


if __name__ == "__main__":
    app.run(main)
