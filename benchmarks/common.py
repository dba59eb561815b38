"""What the benchmarks share, in one module (standard library and NumPy only, so the reference's scratch Python
can import it too):

- where things are: `REPO`, `RESULTS_DIR` (benchmarks/results), `CRITEO_SHAPE` (the 39 Criteo cardinalities,
  shipped so every benchmark runs from a bare clone), and `write_between_markers` for the tables in docs/;
- the Criteo-shaped inputs: `criteo_vocabulary_sizes`, `zipf_ids`, and `training_inputs` (the in-memory training data
  of a benchmark, today's Criteo fields or those plus issue 20's numeric and bag fields: `INPUT_SETS`);
- timing one training variant (`time_training`: `model.fit` with the paper's recipe on in-memory Zipf ids), paired
  ratios and rounds, a deliberate CPU load, and running measured processes in a scheduler group of their own
  (speed/throughput.py, speed/gpu.py, speed/reference_side_by_side.py).

Why the scheduler group: Linux puts every login session into its own "autogroup" and shares the CPUs between groups
equally, whatever the processes' nice values. On a 2-core machine that other sessions also use, a benchmark started
normally gets a fraction of the cores and its figures measure the neighbours (issue 13: figures of earlier sessions
were 1.4-2.5x too slow for that reason). `isolated_child_kwargs` starts a measured child in a new session whose
autogroup it gives the highest priority (root only; otherwise the child runs at normal priority), and
`scheduling_report` records what the child got, so every result says how it was measured.
"""

import contextlib
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
CRITEO_SHAPE = REPO / "benchmarks" / "criteo_shape.json"


def criteo_vocabulary_sizes():
    """The 39 per-field vocabulary sizes (13 bucketed integers, then 26 categoricals; sum 1,142,531)."""
    return json.loads(CRITEO_SHAPE.read_text())["vocabulary_sizes"]


def zipf_ids(sizes, rows, rng=None):
    """`[rows, len(sizes)]` int64 ids, Zipf(1.3)-distributed and clipped to each field's size (rng: seed 0)."""
    rng = np.random.default_rng(0) if rng is None else rng
    columns = [np.minimum(rng.zipf(1.3, rows) - 1, size - 1) for size in sizes]
    return np.stack(columns, axis=1).astype("int64")


CRITEO_INPUTS, NUMERIC_AND_BAG_INPUTS = "criteo", "numeric_and_bag"
SAME_WIDTH_INPUTS = "criteo_same_width"
# The benchmarks' input sets: today's Criteo-shaped fields, and the same plus issue 20's extra inputs (two float
# numeric fields per treatment and one bag of mean length 5: tf_multiembed.data.synthetic.ExtraInputs). The new
# inputs put five more fields into every set's interaction (2 bucketized, 2 embedded, the bag; the dense ones go to
# the logit); `criteo_same_width` is today's input path at that width (five more single-id categorical fields), so
# numeric_and_bag / criteo_same_width is the cost of the new input path alone and criteo_same_width / criteo that of
# the wider interaction.
INPUT_SETS = (CRITEO_INPUTS, NUMERIC_AND_BAG_INPUTS, SAME_WIDTH_INPUTS)


def training_inputs(vocabulary_sizes: Sequence[int], rows: int, rng: Optional[np.random.Generator] = None,
                    inputs: str = CRITEO_INPUTS) -> Dict[str, Any]:
    """A benchmark's in-memory training data and `build_model`'s input arguments for an input set (`INPUT_SETS`).

    Returns `features` (`criteo`: the `[rows, N]` Zipf ids; `numeric_and_bag`: a dict of `feature_ids` (the ids, the
    two bucketized fields' ids and the bag's padded slots), `numeric_values` and `dense_values`, as
    `PreparedData.train_dataset` yields them), `labels` (25% ones), and `vocabulary_sizes`, `bag_sizes` (None
    without a bag) and `model_inputs` (`NumericInputs.from_dict` form, None without float fields) as train.py
    passes them to `build_model` from `PreparedData.model_fields()` / `model_inputs`. The extra fields' statistics
    and boundaries come from the build's own pass-1 code over these rows (`ExtraInputs.model_arrays`). The ids and
    labels are drawn first, so they are the same for both input sets.

    Example:
        >>> data = training_inputs([10, 20], 64, inputs="numeric_and_bag")  # doctest: +SKIP
        >>> data["features"]["feature_ids"].shape, data["bag_sizes"][-1]  # doctest: +SKIP
        ((64, 24), 20)
    """
    if inputs not in INPUT_SETS:
        raise ValueError(f"training_inputs: `inputs` must be one of {list(INPUT_SETS)}, got {inputs!r}.")
    rng = np.random.default_rng(0) if rng is None else rng
    ids = zipf_ids(vocabulary_sizes, rows, rng)
    labels = (rng.random(rows) < 0.25).astype("float32")
    data = {"features": ids, "labels": labels, "vocabulary_sizes": [int(size) for size in vocabulary_sizes],
            "bag_sizes": None, "model_inputs": None}
    if inputs == CRITEO_INPUTS:
        return data
    from tf_multiembed.data.synthetic import ExtraInputs, SyntheticCriteoConfig

    extra = ExtraInputs()
    if inputs == SAME_WIDTH_INPUTS:  # the bucketized fields' and the bag's sizes, and two more like the bucketized
        sizes = [extra.num_buckets + 1] * 4 + [extra.bag_vocabulary + 1]
        data.update(features=np.concatenate([ids, zipf_ids(sizes, rows, rng)], axis=1),
                    vocabulary_sizes=data["vocabulary_sizes"] + sizes)
        return data
    arrays = extra.model_arrays(*extra.sample(rows, rng, missing_rate=SyntheticCriteoConfig().missing_rate))
    sizes = data["vocabulary_sizes"] + arrays["vocabulary_sizes"]
    data.update(features={"feature_ids": np.concatenate([ids, arrays["bucket_ids"], arrays["bag_ids"]], axis=1),
                          "numeric_values": arrays["numeric_values"], "dense_values": arrays["dense_values"]},
                vocabulary_sizes=sizes, bag_sizes=[1] * (len(sizes) - 1) + [extra.bag_max_values],
                model_inputs=arrays["model_inputs"])
    return data


def write_between_markers(path, begin: str, end: str, table: str) -> None:
    """Replaces the text between `begin` and `end` in the document at `path` with `table`."""
    document = pathlib.Path(path)
    text = document.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} markers to write the table between.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    document.write_text(f"{head}{begin}\n{table}\n{end}{tail}", encoding="utf-8")


AUTOGROUP = "/proc/self/autogroup"


def _raise_priority() -> None:  # runs in the child between fork and exec
    try:
        with open(AUTOGROUP, "w") as handle:
            handle.write("-20")
        os.nice(-20)
    except OSError:
        pass  # not permitted (not root) or no autogroups: the child runs at normal priority


def isolated_child_kwargs(isolate: bool = True) -> dict:
    """`subprocess` keyword arguments that run a measured child in its own session at the highest priority."""
    return {"start_new_session": True, "preexec_fn": _raise_priority} if isolate else {}


def scheduling_report() -> dict:
    """This process's scheduling priority and the machine's load, to store with a measurement."""
    try:
        with open(AUTOGROUP) as handle:
            autogroup = handle.read().strip()
    except OSError:
        autogroup = "unavailable"
    return {"nice": os.nice(0), "autogroup": autogroup, "load_average_1m": round(os.getloadavg()[0], 2),
            "cpu_count": os.cpu_count()}


LOADS = {
    # One core busy in the interpreter: takes CPU time, little memory traffic.
    "spin": "while True: pass",
    # One core streaming a 256 MB array: takes CPU time and memory bandwidth, evicts the caches (like a neighbour's
    # training step does).
    "memory": "import numpy as np\na = np.ones(64 << 20, np.float32)\nwhile True: a += 1.0",
}


@contextlib.contextmanager
def cpu_load(processes: int, kind: str = "spin"):
    """Runs `processes` CPU-bound loops of `kind` (see LOADS), one core each, beside the block: a loaded machine,
    on purpose.

    They are started in this session, at normal priority, so a measured child must not be isolated
    (`isolated_child_kwargs(False)`) for the load to reach it. Each loop ends with the block.

    Example:
        >>> with cpu_load(1, "memory"):  # doctest: +SKIP
        ...     figures = time_training("dcnv2", True, 10, "sparse", sizes)
    """
    if kind not in LOADS:
        raise ValueError(f"cpu_load: kind must be one of {sorted(LOADS)}, got {kind!r}.")
    loops = [subprocess.Popen([sys.executable, "-c", LOADS[kind]]) for _ in range(processes)]
    try:
        yield loops
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def define_scheduling_flags() -> None:
    """The flags of how a benchmark's children run: --isolate, --load, --load_kind (shared by the benchmarks)."""
    from absl import flags

    flags.DEFINE_bool("isolate", True, "Run each measured child in its own session at the highest scheduling "
                      "priority (root only): other sessions on the machine then barely disturb it.")
    flags.DEFINE_integer("load", 0, "Busy loops (one core each) running beside every measurement, a loaded machine "
                         "on purpose; needs --noisolate, or the isolated child would not feel them.", lower_bound=0)
    flags.DEFINE_enum("load_kind", "spin", sorted(LOADS), "What the busy loops do (benchmarks.common.LOADS).")


def check_scheduling_flags(flag_values) -> None:
    """Refuses --load with --isolate (the load would not reach the measured children)."""
    from absl import app

    if flag_values.load and flag_values.isolate:
        raise app.UsageError("--load needs --noisolate: a child isolated at the highest priority would not feel it.")


def scheduling_conditions(load: int, load_kind: str, isolate: bool) -> str:
    """How the children of a measurement ran, in words, for the tables.

    Example:
        >>> scheduling_conditions(1, "memory", False)
        '1 memory busy loop(s) beside each measurement, children not isolated'
    """
    if load:
        return f"{load} {load_kind} busy loop(s) beside each measurement, children not isolated"
    return f"children {'isolated' if isolate else 'not isolated'}, no added load"


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Median, min and max of the ratios of paired measurements (round by round), so drifts of the machine cancel.

    Example:
        >>> paired_ratio([4.0, 3.0, 9.0], [2.0, 3.0, 3.0])
        {'median': 2.0, 'min': 1.0, 'max': 3.0}
    """
    if len(numerators) != len(denominators) or not numerators:
        raise ValueError(f"paired_ratio: needs the same number (> 0) of both, got {len(numerators)} and "
                         f"{len(denominators)}.")
    ratios = [numerator / denominator for numerator, denominator in zip(numerators, denominators)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def combine_rounds(measured: Sequence[Sequence[dict]], batch_size: int) -> list:
    """One row per (model, mode, inputs) from rounds of `time_training` rows: the row of the median round, with every
    round's examples/s, their median, for a sparse row with a dense twin the paired sparse / dense ratios, and for a
    row of another input set than `criteo` with a `criteo` twin the paired ratios `over_criteo_inputs` (and a
    `numeric_and_bag` row with a `criteo_same_width` twin `over_same_width_inputs`).

    Example:
        >>> rows = combine_rounds([[{"model": "m", "mode": "sparse", "examples_per_s": 4.0},
        ...                         {"model": "m", "mode": "dense", "examples_per_s": 2.0}],
        ...                        [{"model": "m", "mode": "sparse", "examples_per_s": 3.0},
        ...                         {"model": "m", "mode": "dense", "examples_per_s": 3.0}]], batch_size=2048)
        >>> rows[0]["sparse_over_dense"], rows[0]["rounds_examples_per_s"]
        ({'median': 1.5, 'min': 1.0, 'max': 2.0}, [4.0, 3.0])
    """
    keyed = [{(row["model"], row["mode"], row.get("inputs", CRITEO_INPUTS)): row for row in rows} for rows in measured]
    combined = []
    for key in keyed[0]:
        speeds = [rounds[key]["examples_per_s"] for rounds in keyed]
        by_speed = sorted((rounds[key] for rounds in keyed), key=lambda row: row["examples_per_s"])
        middle = by_speed[(len(speeds) - 1) // 2]
        row = {**middle, "rounds_examples_per_s": speeds, "examples_per_s": statistics.median(speeds)}
        row["step_s"] = batch_size / row["examples_per_s"]
        for twin, name, applies in (((key[0], "dense", key[2]), "sparse_over_dense", key[1] == "sparse"),
                                    ((key[0], key[1], CRITEO_INPUTS), "over_criteo_inputs", key[2] != CRITEO_INPUTS),
                                    ((key[0], key[1], SAME_WIDTH_INPUTS), "over_same_width_inputs",
                                     key[2] == NUMERIC_AND_BAG_INPUTS)):
            if applies and twin in keyed[0]:
                row[name] = paired_ratio(speeds, [rounds[twin]["examples_per_s"] for rounds in keyed])
        combined.append(row)
    return combined


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_training(model_name: str, multi_embedding: bool, scale: int, embedding_updates: str,
                  vocabulary_sizes: Sequence[int], *, batch_size: int = 2048, steps: int = 5, timed_epochs: int = 3,
                  jit_compile: bool = False, mixed_precision: str = "", strategy=None,
                  seed: Optional[int] = 0, inputs: str = CRITEO_INPUTS) -> dict:
    """Trains one zoo variant with `model.fit` for one warm-up epoch and `timed_epochs` timed epochs of `steps` steps
    and returns its figures (the median time per step of the timed epochs, examples/s, peak RSS, the model's input
    shapes and bag sizes).

    The data is `batch_size * 8` rows of `training_inputs(vocabulary_sizes, ..., inputs=inputs)` (Zipf(1.3) ids, and
    with `numeric_and_bag` issue 20's numeric and bag fields) held in memory, so the input pipeline costs nothing.
    Epoch-level
    timing only: a per-batch callback would block Keras on every step and hide its overlap of host work with the
    device's computation.

    Example:
        >>> time_training("dcnv2", True, 10, "sparse", criteo_vocabulary_sizes())["examples_per_s"]  # doctest: +SKIP
    """
    import tensorflow as tf

    from tf_multiembed.models import NumericInputs, build_model
    from tf_multiembed.training import PaperRecipe, compile_model

    tf.keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    data = training_inputs(vocabulary_sizes, batch_size * 8, np.random.default_rng(0), inputs)
    dataset = tf.data.Dataset.from_tensor_slices((data["features"], data["labels"])).batch(batch_size).cache().repeat()
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build_model(model_name, data["vocabulary_sizes"], scale=int(scale), multi_embedding=multi_embedding,
                            numeric_inputs=NumericInputs.from_dict(data["model_inputs"]), bag_sizes=data["bag_sizes"])
        compile_model(model, PaperRecipe(embedding_updates=embedding_updates), jit_compile=jit_compile)
    epoch_seconds = []

    class EpochTimer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.start)

    model.fit(dataset, steps_per_epoch=steps, epochs=1 + timed_epochs, callbacks=[EpochTimer()], verbose=0)
    step = statistics.median(epoch_seconds[1:]) / steps
    return {"model": model.name, "mode": embedding_updates, "parameters": int(model.count_params()), "step_s": step,
            "examples_per_s": batch_size / step, "peak_rss_mb": peak_rss_mb(),
            "vocabulary_rows": int(sum(vocabulary_sizes)), "jit_compile": bool(jit_compile),
            "mixed_precision": mixed_precision or "float32", "first_epoch_s": epoch_seconds[0], "inputs": inputs,
            "input_shapes": {str(tensor.name).split(":")[0]: list(tensor.shape)[1:] for tensor in model.inputs},
            "bag_sizes": data["bag_sizes"]}

