"""Training throughput (examples/s) and peak memory at Criteo scale: SE vs ME, sparse vs dense embedding updates.

Every variant runs in its own process (so its peak RSS is its own): the model of the zoo, compiled with the paper's
recipe (`compile_model`: coupled-L2 Adam 1e-3 / 1e-6, no metric in the step, so XLA variants compile the same step)
and trained with `model.fit` for warm-up plus timed steps of batch 2048, on the 39 cardinalities of
benchmarks/criteo_shape.json (1.14M rows) with Zipf(1.3) ids held in memory. The figure is the median time per step
of the timed epochs.
The same script also times the real input pipeline alone (`PreparedData.train_dataset` on the synthetic data set of
train.py), so the two can be compared: the input path must not be the bottleneck.

    python benchmarks/speed/throughput.py                                  # the float32 table of docs/benchmarks.md
    python benchmarks/speed/throughput.py --models=dcnv2 --scales=10 --embeddings=me --modes=sparse --nowrite

`--inputs=criteo,numeric_and_bag` times every variant on today's Criteo-shaped inputs and on the same plus issue 20's
numeric and bag fields (`benchmarks.common.training_inputs`), the order of the input sets reversed every other
round; the table then gives each row's inputs and the paired ratio new / criteo of every round (issue 20's target:
ME-DCNv2 10x10 within 10%).

The commands of every table in docs/benchmarks.md are written above it. Each writes
benchmarks/results/throughput_<table>.json and its table between the `throughput_<table>` markers.
"""

import json
import os
import pathlib
import platform
import subprocess
import sys
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from benchmarks.common import REPO, RESULTS_DIR, criteo_vocabulary_sizes, write_between_markers  # noqa: E402
from benchmarks.common import (CRITEO_INPUTS, INPUT_SETS, NUMERIC_AND_BAG_INPUTS,  # noqa: E402
                               check_scheduling_flags, combine_rounds, cpu_load, define_scheduling_flags,
                               isolated_child_kwargs, peak_rss_mb, scheduling_conditions, scheduling_report,
                               time_training)

from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import define_flags  # noqa: E402

define_flags(["batch_size", "threads", "jit_compile", "mixed_precision"])  # train.py's flags, names and defaults
flags.adopt_module_key_flags(run_config)
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["dnn", "dcnv2", "xdeepfm"], "Models to time.")
flags.DEFINE_list("scales", ["1", "4", "10"], "Scale factors: SE width 10*s, ME s sets of width 10.")
flags.DEFINE_list("embeddings", ["se", "me"], "Embedding kinds (ME at scale 1 is SE at scale 1 and is skipped).")
flags.DEFINE_list("modes", ["sparse", "dense"], "Embedding update modes of CoupledL2Adam.")
flags.DEFINE_list("inputs", [CRITEO_INPUTS], "Input sets to time every variant on (benchmarks.common.INPUT_SETS): "
                  "criteo (today's 39 fields) and/or numeric_and_bag (the same plus two float numeric fields per "
                  "treatment and one bag of mean length 5, issue 20) and/or criteo_same_width (today's inputs with "
                  "the five more fields numeric_and_bag adds to the interactions); every other row gets the paired "
                  "ratio to its criteo twin, numeric_and_bag also to its criteo_same_width twin.")
flags.register_validator("inputs", lambda value: bool(value) and set(value) <= set(INPUT_SETS),
                         f"--inputs takes one or more of {','.join(INPUT_SETS)}.")
flags.DEFINE_integer("steps", 5, "Steps per epoch: one warm-up epoch, then --timed_epochs timed ones.")
flags.DEFINE_integer("timed_epochs", 3, "Timed epochs; the figure is their median time per step.")
flags.DEFINE_integer("vocabulary_multiplier", 1, "Multiply every vocabulary size by this (memory grows with it).")
flags.DEFINE_integer("input_batches", 200, "Batches read by the input-pipeline measurement (0 skips it).")
flags.DEFINE_integer("rounds", 1, "Rounds over all variants, the order of --modes reversed every other round; the "
                     "figures are medians over rounds, sparse / dense the median of the rounds' paired ratios.",
                     lower_bound=1)
define_scheduling_flags()
flags.DEFINE_string("variant", "", "Internal: run one variant 'model:se|me:scale:mode:inputs' in this process.")
flags.DEFINE_string("table", "float32", "Name of this table: results/throughput_<table>.json and the docs markers "
                    "`throughput_<table>:begin/end`.")
flags.DEFINE_bool("write", True, "Write the JSON results and the docs table.")
flags.DEFINE_string("results_dir", str(RESULTS_DIR), "Folder of the results JSON.")
flags.DEFINE_bool("docs_only", False, "Measure nothing: rewrite the docs table of --table from its results JSON (e.g. "
                  "after the reference figures changed).")
flags.DEFINE_string("docs", str(REPO / "docs" / "benchmarks.md"),
                    "Markdown file with the tables.")


def _configure_tensorflow():
    import tensorflow as tf

    from tf_multiembed.training.run import configure_threads

    configure_threads(FLAGS.threads)
    return tf


def run_variant(spec: str) -> dict:
    """Builds, compiles and times one variant in this process; returns its figures."""
    _configure_tensorflow()
    name, embedding, scale, mode, inputs = spec.split(":")
    sizes = [size * FLAGS.vocabulary_multiplier for size in criteo_vocabulary_sizes()]
    figures = time_training(name, embedding == "me", int(scale), mode, sizes, batch_size=FLAGS.batch_size,
                            steps=FLAGS.steps, timed_epochs=FLAGS.timed_epochs, jit_compile=FLAGS.jit_compile,
                            mixed_precision=FLAGS.mixed_precision, inputs=inputs)
    return {**figures, "scheduling": scheduling_report()}


def run_input_only() -> dict:
    """Examples/s of reading and batching train.py's synthetic data through `PreparedData.train_dataset` alone."""
    _configure_tensorflow()
    from tf_multiembed.training.run import RunConfig, prepare_data

    data, _, _ = prepare_data(RunConfig())
    dataset = data.train_dataset(FLAGS.batch_size, shuffle=True, seed=0, repeat=True).take(FLAGS.input_batches)
    iterator = iter(dataset)
    next(iterator)  # opening files, first shuffle buffer
    started = time.perf_counter()
    examples = sum(int(ids.shape[0]) for ids, _ in iterator)
    return {"model": "input pipeline only", "examples_per_s": examples / (time.perf_counter() - started),
            "peak_rss_mb": peak_rss_mb(), "scheduling": scheduling_report()}


def _child(spec: str) -> dict:
    passed = [f"--{name}={getattr(FLAGS, name)}" for name in (
        "batch_size", "steps", "timed_epochs", "threads", "vocabulary_multiplier", "mixed_precision",
        "input_batches")] + (["--jit_compile"] if FLAGS.jit_compile else [])
    process = subprocess.run([sys.executable, __file__, f"--variant={spec}", *passed], capture_output=True,
                             text=True, **isolated_child_kwargs(FLAGS.isolate))
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"Variant {spec} failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(lines[-1])


def _inputs(row) -> str:
    return row.get("inputs", CRITEO_INPUTS)


def markdown(rows, input_row, measured: str, conditions: str) -> str:
    baseline = next((row for row in rows if row["model"] == "se_dnn_k10" and row["mode"] == "dense"
                     and _inputs(row) == CRITEO_INPUTS), None)
    rounds = len(rows[0].get("rounds_examples_per_s", [0]))
    with_inputs = any(_inputs(row) != CRITEO_INPUTS for row in rows)  # the input-set columns, only when compared
    same_width = any("over_same_width_inputs" in row for row in rows)
    lines = [f"Measured {measured} on {platform.machine()} with {os.cpu_count()} CPU cores, "
             f"{FLAGS.threads or os.cpu_count()} TensorFlow threads, batch {FLAGS.batch_size}, median over "
             f"{FLAGS.timed_epochs} epochs of {FLAGS.steps} steps after one warm-up epoch"
             + (f" and over {rounds} rounds" if rounds > 1 else "")
             + f", criteo_shape cardinalities x{FLAGS.vocabulary_multiplier} "
             f"({rows[0]['vocabulary_rows']:,} rows), Zipf(1.3) ids, XLA {'on' if FLAGS.jit_compile else 'off'}, "
             f"{FLAGS.mixed_precision or 'float32'}; {conditions}.",
             "",
             "| model |" + (" inputs |" if with_inputs else "") + " parameters | update | step (ms) | examples/s | "
             "sparse / dense" + (" (range)" if rounds > 1 else "") + " |"
             + (" / criteo inputs" + (" (range)" if rounds > 1 else "") + " |" if with_inputs else "")
             + (" / same-width inputs |" if same_width else "")
             + " peak RSS (MB) |",
             "|---|" + ("---|" if with_inputs else "") + "---:|---|---:|---:|---:|" + ("---:|" if with_inputs else "")
             + ("---:|" if same_width else "")
             + "---:|"]

    def ratio(row, key):
        if key not in row:
            return ""
        value = row[key]
        return f"{value['median']:.2f}" + (f" ({value['min']:.2f}-{value['max']:.2f})" if rounds > 1 else "")

    for row in rows:
        lines.append(f"| {row['model']} |" + (f" {_inputs(row)} |" if with_inputs else "")
                     + f" {row['parameters']:,} | {row['mode']} | {1000 * row['step_s']:.0f} | "
                     f"{row['examples_per_s']:,.0f} | {ratio(row, 'sparse_over_dense')} |"
                     + (f" {ratio(row, 'over_criteo_inputs')} |" if with_inputs else "")
                     + (f" {ratio(row, 'over_same_width_inputs')} |" if same_width else "")
                     + f" {row['peak_rss_mb']:,.0f} |")
    extra = next((row for row in rows if _inputs(row) == NUMERIC_AND_BAG_INPUTS and "input_shapes" in row), None)
    if extra:
        shapes = ", ".join(f"`{name}` {shape}" for name, shape in extra["input_shapes"].items())
        lines += ["", f"Inputs `{_inputs(extra)}`: {shapes} (a bag of {extra['bag_sizes'][-1]} padded slots, mean "
                      f"length 5; two bucketized fields in `feature_ids`, two embedded and two dense numeric fields)."]
    if input_row:
        fastest = max(row["examples_per_s"] for row in rows)
        lines += ["", f"Input pipeline alone (`PreparedData.train_dataset`, synthetic data of train.py, shuffled): "
                      f"{input_row['examples_per_s']:,.0f} examples/s = {input_row['examples_per_s'] / fastest:.1f}x "
                      f"the fastest training variant above."]
    if baseline:
        lines.append(f"\nSame-script baseline: se_dnn_k10 dense {baseline['examples_per_s']:,.0f} examples/s.")
    return "\n".join(lines)


def _measure_all():
    """Every requested variant in its own child, --rounds times, then the input pipeline alone:
    (rows per round, input row or None)."""
    measured = []
    for index in range(FLAGS.rounds):
        modes = FLAGS.modes if index % 2 == 0 else FLAGS.modes[::-1]
        input_sets = FLAGS.inputs if index % 2 == 0 else FLAGS.inputs[::-1]
        rows = []
        for name in FLAGS.models:
            for scale in FLAGS.scales:
                for embedding in FLAGS.embeddings:
                    if embedding == "me" and scale == "1" and "se" in FLAGS.embeddings:
                        continue
                    for mode in modes:
                        for inputs in input_sets:
                            row = _child(f"{name}:{embedding}:{scale}:{mode}:{inputs}")
                            print(f"round {index + 1}: {row['model']:>18} {mode:>6} {inputs:>15}: "
                                  f"{row['examples_per_s']:>8,.0f} examples/s, peak RSS {row['peak_rss_mb']:,.0f} MB",
                                  flush=True)
                            rows.append(row)
        measured.append(rows)
    return measured, (_child("input") if FLAGS.input_batches else None)


def main(argv):
    del argv
    if FLAGS.variant:
        figures = run_input_only() if FLAGS.variant == "input" else run_variant(FLAGS.variant)
        print(json.dumps(figures), flush=True)
        return
    results = pathlib.Path(FLAGS.results_dir) / f"throughput_{FLAGS.table}.json"
    markers = f"<!-- throughput_{FLAGS.table}:begin -->", f"<!-- throughput_{FLAGS.table}:end -->"
    if FLAGS.docs_only:
        saved = json.loads(results.read_text())
        conditions = saved.get("conditions", scheduling_conditions(0, "spin", True))
        rows = saved["rows"]
        if "rounds_examples_per_s" not in rows[0]:  # results of one round, written before rounds existed
            rows = combine_rounds([rows], FLAGS.batch_size)
        write_between_markers(FLAGS.docs, *markers, markdown(rows, saved["input"],
                                                             saved.get("measured", "(date not recorded)"), conditions))
        return
    check_scheduling_flags(FLAGS)
    with cpu_load(FLAGS.load, FLAGS.load_kind):
        measured, input_row = _measure_all()
    rows = combine_rounds(measured, FLAGS.batch_size)
    when = time.strftime("%Y-%m-%d")
    conditions = scheduling_conditions(FLAGS.load, FLAGS.load_kind, FLAGS.isolate)
    table = markdown(rows, input_row, when, conditions)
    print(table)
    if FLAGS.write:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"argv": sys.argv[1:], "measured": when, "conditions": conditions,
                                       "rows": rows, "input": input_row}, indent=1))
        write_between_markers(FLAGS.docs, *markers, table)


if __name__ == "__main__":
    app.run(main)
