"""In-process serving latency of the exported SavedModel (raw-feature signature) and throughput of concurrent callers.

Builds the synthetic data (train.py's default data set), trains ME-DCNv2 2x10 for a few steps (the weights do not
change the cost), exports it with `export_for_serving`, loads it with `tf.saved_model.load` as a server would, and
times `signatures["serving_default"]` on raw rows (strings and float64, the vocabulary lookups and bucketing
included):

- latency at batch 1 and 256: p50 and p99 over many calls, one caller;
- throughput with 1, 2, 4 and 8 concurrent callers (threads) at batch 1 and 256: requests/s and examples/s.

    nice python benchmarks/speed/serving_latency.py

TF Serving adds its own request decoding and batching on top; this isolates the model's graph. Prints a markdown
table and writes it into docs/serving.md between the `serving_latency` markers.
"""

import concurrent.futures
import os
import pathlib
import platform
import sys
import tempfile
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_multiembed.serving import export_for_serving  # noqa: E402
from tf_multiembed.serving.examples import raw_features_from_files  # noqa: E402
from tf_multiembed.training import distribute  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import config_from_flags, define_flags  # noqa: E402
from tf_multiembed.training.run import build_and_compile, configure_threads, prepare_data  # noqa: E402
from benchmarks.common import REPO, write_between_markers  # noqa: E402

RUN_SETTINGS = ("model", "scale", "synthetic_rows", "data_dir", "threads")
define_flags(RUN_SETTINGS)  # train.py's flags, names and defaults
flags.adopt_module_key_flags(run_config)
FLAGS = flags.FLAGS
flags.DEFINE_integer("calls", 300, "Timed calls per batch size for the latency figures.")
flags.DEFINE_float("seconds", 3.0, "Duration of each concurrency measurement.")
flags.DEFINE_list("callers", ["1", "2", "4", "8"], "Numbers of concurrent callers.")
flags.DEFINE_string("docs", str(REPO / "docs" / "serving.md"),
                    "Markdown file to update between the serving_latency markers ('' to skip).")

BEGIN, END = "<!-- serving_latency:begin -->", "<!-- serving_latency:end -->"
BATCH_SIZES = (1, 256)


def request_tensors(features, signature, batch_size):
    _, specs = signature.structured_input_signature
    rows = [index % len(next(iter(features.values()))) for index in range(batch_size)]
    return {name: tf.constant([values[row] for row in rows], dtype=specs[name].dtype)
            for name, values in features.items()}


def latency(serve, tensors):
    for _ in range(10):
        serve(**tensors)
    durations = []
    for _ in range(FLAGS.calls):
        start = time.perf_counter()
        serve(**tensors)["click_probability"].numpy()
        durations.append(time.perf_counter() - start)
    return np.percentile(durations, 50) * 1000, np.percentile(durations, 99) * 1000


def throughput(serve, tensors, callers: int):
    stop = time.perf_counter() + FLAGS.seconds

    def caller():
        count = 0
        while time.perf_counter() < stop:
            serve(**tensors)["click_probability"].numpy()
            count += 1
        return count

    with concurrent.futures.ThreadPoolExecutor(callers) as pool:
        started = time.perf_counter()
        counts = list(pool.map(lambda _: caller(), range(callers)))
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed


def update_docs(path: str, table: str) -> None:
    write_between_markers(path, BEGIN, END, table)


def main(argv):
    del argv
    config = config_from_flags(RUN_SETTINGS, verbose=0)
    configure_threads(config.threads)
    data, schema, input_paths = prepare_data(config)
    model = build_and_compile(config, data.vocabulary_sizes, data.field_names, distribute.create_strategy("default"))
    model.fit(data.train_dataset(2048, seed=0), steps_per_epoch=5, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as export_dir:
        path = export_for_serving(model, data.feature_encoder(), export_dir, "latency")
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
        features = raw_features_from_files(schema, input_paths, 256)
        lines = [f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} CPU cores, "
                 f"TensorFlow {tf.__version__}: {model.name} ({model.count_params():,} parameters, "
                 f"{len(features)} raw features), `tf.saved_model.load` + `signatures['serving_default']` in one "
                 f"process; latency over {FLAGS.calls} calls, throughput over {FLAGS.seconds:.0f} s per setting.",
                 "", "| batch | p50 latency (ms) | p99 latency (ms) | "
                 + " | ".join(f"{c} caller{'s' if c != '1' else ''}: requests/s (examples/s)" for c in FLAGS.callers)
                 + " |", "|---:|---:|---:|" + "---:|" * len(FLAGS.callers)]
        for batch_size in BATCH_SIZES:
            tensors = request_tensors(features, serve, batch_size)
            p50, p99 = latency(serve, tensors)
            rates = [throughput(serve, tensors, int(callers)) for callers in FLAGS.callers]
            lines.append(f"| {batch_size} | {p50:.2f} | {p99:.2f} | "
                         + " | ".join(f"{rate:,.0f} ({rate * batch_size:,.0f})" for rate in rates) + " |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if FLAGS.docs:
        update_docs(FLAGS.docs, table)


if __name__ == "__main__":
    app.run(main)
