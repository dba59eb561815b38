"""Training throughput (examples/s) of train.py's road for DNN and DCNv2, SE vs ME, on the synthetic data.

Every variant goes through what `python train.py` uses: `run.prepare_data` (synthetic Criteo-shaped data, cached),
`run.build_and_compile` (paper recipe: coupled-L2 Adam with every embedding row decayed each step, exact AUC and
log loss as compiled metrics) and `model.fit` on `PreparedData.train_dataset`. Only training steps are timed
(after warm-up steps that include tracing), with a batch-level callback; validation is not part of the figure.
Ratios to SE at the same scale cancel most of the machine's noise.

    nice python benchmarks/train_throughput.py                    # dnn, dcnv2 x SE/ME x scale 2 and 4
    nice python benchmarks/train_throughput.py --scales=2 --steps=10

Prints a markdown table and writes it into docs/training.md between the `train_throughput` markers.
"""

import os
import pathlib
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_multiembed.training import distribute  # noqa: E402
from tf_multiembed.training.run import RunConfig, build_and_compile, prepare_data  # noqa: E402
from doc_tables import write_between_markers  # noqa: E402  (benchmarks/ is on sys.path)

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["dnn", "dcnv2"], "Models to time.")
flags.DEFINE_list("scales", ["2", "4"], "Scale factors (SE width 10*s vs ME s sets of width 10).")
flags.DEFINE_integer("batch_size", 2048, "Examples per step (the paper's).")
flags.DEFINE_integer("steps", 12, "Timed steps per variant.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (tracing, allocation).")
flags.DEFINE_integer("synthetic_rows", 200_000, "Rows of the synthetic data (train.py's default).")
flags.DEFINE_string("data_dir", "runs/data", "Prepared-data cache (shared with train.py).")
flags.DEFINE_string("docs", str(pathlib.Path(__file__).resolve().parents[1] / "docs" / "training.md"),
                    "Markdown file to update between the train_throughput markers ('' to skip).")

BEGIN, END = "<!-- train_throughput:begin -->", "<!-- train_throughput:end -->"


class _StepTimer(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.durations = []
        self._start = None

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.durations.append(time.perf_counter() - self._start)


def time_variant(data, name: str, scale: int, multi_embedding: bool):
    config = RunConfig(model=name, scale=scale, multi_embedding=multi_embedding, batch_size=FLAGS.batch_size,
                       verbose=0)
    info = distribute.create_strategy("default")
    model = build_and_compile(config, data.vocabulary_sizes, data.field_names, info)
    timer = _StepTimer()
    steps = FLAGS.warmup_steps + FLAGS.steps
    model.fit(data.train_dataset(FLAGS.batch_size, seed=0).repeat(), steps_per_epoch=steps, epochs=1,
              callbacks=[timer], verbose=0)
    timed = timer.durations[FLAGS.warmup_steps:]
    median = statistics.median(timed)
    return {"model": model.name, "parameters": model.count_params(), "median_step_s": median,
            "examples_per_s": FLAGS.batch_size / median}


def markdown(rows) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()} CPU cores, "
             f"TensorFlow {tf.__version__}, batch {FLAGS.batch_size}, median of {FLAGS.steps} steps after "
             f"{FLAGS.warmup_steps} warm-up steps, synthetic data ({FLAGS.synthetic_rows:,} rows, 39 fields).",
             "",
             "| model | parameters | step (ms) | examples/s | vs SE at the same scale |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['parameters']:,} | {1000 * row['median_step_s']:.0f} | "
                     f"{row['examples_per_s']:,.0f} | {row['ratio']:.2f}x |")
    return "\n".join(lines)


def update_docs(path: str, table: str) -> None:
    write_between_markers(path, BEGIN, END, table)


def main(argv):
    del argv
    data, _, _ = prepare_data(RunConfig(synthetic_rows=FLAGS.synthetic_rows, data_dir=FLAGS.data_dir))
    rows = []
    for name in FLAGS.models:
        for scale in (int(value) for value in FLAGS.scales):
            single = time_variant(data, name, scale, multi_embedding=False)
            multi = time_variant(data, name, scale, multi_embedding=True)
            single["ratio"] = 1.0
            multi["ratio"] = multi["examples_per_s"] / single["examples_per_s"]
            rows += [single, multi]
            print(f"{single['model']}: {single['examples_per_s']:,.0f}/s   {multi['model']}: "
                  f"{multi['examples_per_s']:,.0f}/s", flush=True)
    table = markdown(rows)
    print(table)
    if FLAGS.docs:
        update_docs(FLAGS.docs, table)


if __name__ == "__main__":
    app.run(main)
