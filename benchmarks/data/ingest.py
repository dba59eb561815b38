"""Ingest benchmark: the columnar build on synthetic Criteo-format files, against the floor of reading them, and the
input pipeline against training.

For each file (made by the package's generator with the 39 Criteo cardinalities of benchmarks/criteo_shape.json), in
a fresh child process per measurement:

- floor: `cat file > /dev/null` (the page cache's speed), and the build's own reader parsing every block of the file
  without counting (Arrow's CSV reader plus the checks that choose the fast path);
- build: pass 1 (count), the split order, pass 2 (encode and route rows to their splits), the shard files; per step
  its rows/s and seconds (the build's own report), the whole build's CPU time and peak resident memory (Linux VmHWM
  reset at its start), and how many times the input was read (the input bytes each pass consumed over the file
  size);
- input pipeline: one epoch of `train_dataset(batch)` shuffled and unshuffled (input only), and, for comparison,
  the training throughput of a DNN (scale 2) on the same prepared data.

`--inputs=criteo,numeric_and_bag` builds, for each row count, a file of each input set (today's Criteo columns, and
the same plus issue 20's numeric and bag columns: `tf_multiembed.data.synthetic.ExtraInputs`), each `--rounds`
times, the order of the input sets reversed every other round, and reports each pass's rows/s as the median of the
rounds and the paired ratio new / criteo of every round (issue 20's target: within 20% per pass), with the ingest
report's counts of the new fields (missing numeric values, truncated bags). Its results go to ingest_inputs.json and
the `ingest-inputs` section of the document.

`--count_rows=N` instead measures pass 1 alone on one N-row file generated with each categorical field's
cardinality multiplied by `--vocabulary_scale` (a long tail of distinct values, as in the real Criteo's 33M), with
the token counts' memory budget at its default: the bounded-memory claim for full Criteo (45.8M rows).

The machine is shared: rates are reported with the floor measured in the same run (our rate as a fraction of the
reader's), with the load average before and after. Usage (niced, so that other work goes first):

    nice -n 10 python -m benchmarks.data.ingest --rows=2000000,10000000 --batch_size=8192 --update_doc=docs/data.md
    nice -n 10 python -m benchmarks.data.ingest --count_rows=45000000 --vocabulary_scale=20
    python -m benchmarks.data.ingest --rows=2000000 --inputs=criteo,numeric_and_bag --rounds=3 --update_doc=docs/data.md
"""

import json
import os
import statistics
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from absl import app, flags  # noqa: E402

from benchmarks.common import (CRITEO_INPUTS, INPUT_SETS, NUMERIC_AND_BAG_INPUTS, REPO,  # noqa: E402
                               RESULTS_DIR, criteo_vocabulary_sizes, paired_ratio, write_between_markers)
from tf_multiembed.training import config as run_config  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("rows", ["2000000", "10000000"], "Rows per file, one build each (per input set and round).")
flags.DEFINE_list("inputs", [CRITEO_INPUTS], "Input sets, a file of each per row count (benchmarks.common.INPUT_SETS): "
                  "criteo (today's 13 integer + 26 categorical columns) and/or numeric_and_bag (the same plus two "
                  "float numeric columns per treatment and one bag column of mean length 5, issue 20).")
flags.register_validator("inputs", lambda value: bool(value) and set(value) <= set(INPUT_SETS[:2]),
                         f"--inputs takes one or more of {','.join(INPUT_SETS[:2])}.")
flags.DEFINE_integer("rounds", 1, "Builds of each file, the order of the input sets reversed every other round; "
                     "rates are medians over rounds, new / criteo the median of the rounds' paired ratios.",
                     lower_bound=1)
flags.DEFINE_bool("input_pipeline", True, "Also measure the input pipeline and a DNN's training on the first row "
                  "count's prepared data of each input set.")
flags.DEFINE_string("results_dir", str(RESULTS_DIR), "Folder of the results JSON.")
flags.DEFINE_integer("count_rows", None, "Measure pass 1 alone on a file of this many rows (with "
                     "--vocabulary_scale).", lower_bound=1)
flags.DEFINE_integer("vocabulary_scale", 20, "Categorical cardinalities x this, for --count_rows.", lower_bound=1)
flags.DEFINE_string("count_file", None, "With --count_rows: a file generated before with the same settings (kept in "
                    "--work_dir), not generated again.")
run_config.define_flags(["batch_size"])  # train.py's: the input pipeline's and the comparison training's batch
flags.adopt_module_key_flags(run_config)
flags.DEFINE_integer("train_steps", 30, "Timed training steps of the comparison DNN.", lower_bound=1)
flags.DEFINE_string("work_dir", None, "Scratch folder (default: a temporary one, removed).")
flags.DEFINE_string("update_doc", None, "Markdown file whose benchmark section to rewrite.")
flags.DEFINE_bool("table_only", False, "Rewrite the table from results/ingest.json only.")
flags.DEFINE_list("child", None, "Internal: one measurement in this process (build|count|input and its arguments).")
DOC_START, DOC_END = "<!-- ingest-benchmark:start -->", "<!-- ingest-benchmark:end -->"
INPUTS_DOC_START, INPUTS_DOC_END = "<!-- ingest-inputs:start -->", "<!-- ingest-inputs:end -->"
PASSES = ("reader", "count", "encode")  # the per-pass rates of a build child (reader = the floor)


def _config(vocabulary_scale: int = 1, inputs: str = CRITEO_INPUTS):
    """(generator configuration, where its cardinalities come from); children need only its schema, not the
    generator's tables (hundreds of MB that would count against the build's memory)."""
    from tf_multiembed.data.synthetic import ExtraInputs, SyntheticCriteoConfig

    try:
        sizes, source = list(criteo_vocabulary_sizes()), "Criteo cardinalities (criteo_shape)"
    except (ImportError, OSError):
        sizes, source = list(SyntheticCriteoConfig().vocabulary_sizes), "the package's default cardinalities"
    sizes = sizes[:13] + [size * vocabulary_scale for size in sizes[13:]]
    extra = ExtraInputs() if inputs == NUMERIC_AND_BAG_INPUTS else None
    return SyntheticCriteoConfig(vocabulary_sizes=tuple(sizes), num_numeric=13, extra_inputs=extra), source


def _generator(vocabulary_scale: int = 1, inputs: str = CRITEO_INPUTS):
    from tf_multiembed.data.synthetic import SyntheticCriteo

    config, source = _config(vocabulary_scale, inputs)
    return SyntheticCriteo(config), source


# ----------------------------------------------------------------------------------------------------------------
# Child-process measurements.

def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # VmHWM := the current RSS


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def child_build(path: str, work: str, inputs: str = CRITEO_INPUTS) -> dict:
    """The reader floor, then the whole build; each step's seconds from the build's own report (public: the
    manifest's `report.passes`), CPU time and peak memory for the whole build, and what the report says of the
    numeric treatments and bags."""
    from tf_multiembed.data import build as build_lib
    from tf_multiembed.data import transforms
    from tf_multiembed.data.quality import BadInputTracker
    from tf_multiembed.data.records import make_reader

    schema = _config(inputs=inputs)[0].schema(min_count=10)
    transforms.criteo_log_thresholds()  # computed once per process (0.5 s): not part of any pass
    size = os.path.getsize(path)
    results = {"file_bytes": size, "inputs": inputs}
    _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    tracker = BadInputTracker()
    for _ in make_reader(schema, path).read_blocks(tracker):
        pass
    seconds = time.perf_counter() - started
    results["reader"] = {"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                         "rows_per_s": tracker.lines_read / seconds, "peak_rss_mb": _status_mb("VmHWM")}
    _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    folder = build_lib.build(schema, path, work, rebuild=True)
    results["build"] = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                        "peak_rss_mb": _status_mb("VmHWM")}
    manifest = build_lib.load_manifest(folder)
    report = manifest["report"]
    rows = report["lines_read"]
    for step in ("count", "order", "encode", "shards"):
        seconds = report["passes"][step]["seconds"]
        results[step] = {"seconds": seconds, "rows_per_s": rows / max(seconds, 1e-9)}
    results["rows"] = rows
    results["reads_of_input"] = sum(report["passes"][name]["input_bytes"] for name in ("count", "encode")) / size
    results["vocabulary_rows"] = sum(manifest["vocabulary_sizes"])
    results["prepared_dir"] = str(folder)
    results["treatments"] = {field.name: field.treatment for field in schema.treated_fields}
    results["bags"] = {field.name: field.max_values for field in schema.bag_fields}
    results["numeric_missing"] = report.get("numeric_missing", {})
    results["values_truncated"] = report.get("values_truncated", {})
    results["float_columns"] = list(manifest.get("float_columns", []))
    return results


def child_count(path: str, work: str) -> dict:
    """Pass 1 alone (with the default memory budget of the token counts), from the public pieces the build's pass 1
    is made of: the reader's blocks, `BlockParser.validate` and `count`, a `TokenCounter`."""
    from tf_multiembed.data import transforms
    from tf_multiembed.data.counting import DEFAULT_MEMORY_BYTES, TokenCounter
    from tf_multiembed.data.quality import BadInputTracker
    from tf_multiembed.data.records import BlockParser, make_reader

    schema = _config()[0].schema(min_count=10)
    transforms.criteo_log_thresholds()
    _reset_peak()
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    tracker = BadInputTracker()
    parser = BlockParser(schema, tracker)
    counter = TokenCounter(len(schema.fields), pathlib.Path(work) / "counts", memory_bytes=DEFAULT_MEMORY_BYTES)
    for block in make_reader(schema, path).read_blocks(tracker):
        counter.add(parser.count(parser.validate(block)))
    min_counts = schema.resolved_min_counts()
    counts = counter.result([min_counts[field.name] for field in schema.fields])
    seconds = time.perf_counter() - started
    return {"rows": tracker.lines_read, "seconds": seconds, "rows_per_s": tracker.lines_read / seconds,
            "rss_before_mb": before, "peak_rss_mb": _status_mb("VmHWM"),
            "count_memory_budget_mb": DEFAULT_MEMORY_BYTES >> 20, "spills": len(counter.spill_files),
            "vocabulary_rows": sum(len(tokens) + 1 for tokens in counts.values())}


def child_input(prepared_dir: str, batch_size: int, train_steps: int) -> dict:
    """Rows/s of one epoch of the input pipeline (shuffled, unshuffled), and of training a DNN on it (built as
    train.py builds it: `model_fields` and `model_inputs` of the prepared data)."""
    import tensorflow as tf

    from tf_multiembed.data import PreparedData
    from tf_multiembed.models import NumericInputs, build_model

    data = PreparedData.load(prepared_dir)
    results = {"batch_size": batch_size, "train_rows": data.split_rows["train"]}
    for label, dataset in (("shuffled", data.train_dataset(batch_size, seed=0)),
                           ("unshuffled", data.train_dataset(batch_size, shuffle=False))):
        for _ in dataset.take(3):  # warm-up: graph building, first file opens
            pass
        started, cpu = time.perf_counter(), time.process_time()
        rows = sum(int(labels.shape[0]) for _, labels in dataset)
        results[f"input_{label}_rows_per_s"] = rows / (time.perf_counter() - started)
        results[f"input_{label}_cpu_s_per_million"] = (time.process_time() - cpu) / rows * 1e6
    tf.keras.utils.set_random_seed(0)
    field_names, vocabulary_sizes, bag_sizes = data.model_fields()
    model = build_model("dnn", list(vocabulary_sizes), scale=2, multi_embedding=True, field_names=list(field_names),
                        numeric_inputs=NumericInputs.from_dict(data.model_inputs), bag_sizes=bag_sizes,
                        bag_combiner=data.schema.bag_pooling)
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    dataset = data.train_dataset(batch_size, seed=0, repeat=True)
    model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=train_steps, epochs=1, verbose=0)
    results["training_examples_per_s"] = train_steps * batch_size / (time.perf_counter() - started)
    results["training_model"] = "dnn, multi-embedding, scale 2 (Adam, sparse updates)"
    results["model_inputs"] = {str(tensor.name).split(":")[0]: list(tensor.shape)[1:] for tensor in model.inputs}
    return results


def _child(*arguments) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child=" + ",".join(map(str, arguments))], check=True,
                            capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)})
    return json.loads(output.stdout.strip().splitlines()[-1])


def _cat_rows_per_s(path: pathlib.Path, rows: int) -> float:
    started = time.perf_counter()
    subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)
    return rows / (time.perf_counter() - started)


# ----------------------------------------------------------------------------------------------------------------
# Reports.

def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average": list(os.getloadavg())}


def _inputs(entry: dict) -> str:
    return entry.get("inputs", CRITEO_INPUTS)


def _pipeline_line(pipeline: dict, label: str = "") -> str:
    return (f"Input pipeline{label} ({pipeline['train_rows']:,} training rows, batch {pipeline['batch_size']}): "
            f"{pipeline['input_shuffled_rows_per_s']:,.0f} rows/s shuffled "
            f"[{pipeline['input_shuffled_cpu_s_per_million']:.2f} CPU s/M], "
            f"{pipeline['input_unshuffled_rows_per_s']:,.0f} rows/s unshuffled "
            f"[{pipeline['input_unshuffled_cpu_s_per_million']:.2f} CPU s/M], input only; training "
            f"({pipeline['training_model']}) {pipeline['training_examples_per_s']:,.0f} examples/s.")


def _build_table(results: dict) -> str:
    with_inputs = any(_inputs(entry) != CRITEO_INPUTS for entry in results["files"])
    columns = "13 integer + 26 categorical columns" + (
        "; numeric_and_bag: plus 6 float numeric columns (2 bucketized with 16 learned buckets, 2 embedded, 2 dense) "
        "and a bag column (Poisson(5) values of 5,000, at most 20 kept)" if with_inputs else "")
    rounds = results.get("rounds", 1)
    lines = [f"Synthetic Criteo-format files ({columns}, {results['source']}, min count 10), "
             f"`{results['command']}`, {results['date']}, {results['machine']['cpus']} cores, load average "
             f"{results['load_before'][0]:.1f} before and {results['machine']['load_average'][0]:.1f} after (the "
             f"machine was shared: compare the rates with the floor of the same run)"
             + (f"; rates are medians over {rounds} builds of each file, input sets alternating" if rounds > 1 else "")
             + ".", "",
             "| rows |" + (" inputs |" if with_inputs else "") + " file | `cat` rows/s | reader (floor) rows/s "
             "[CPU s/M] | pass 1 count rows/s (of floor) | order s | pass 2 encode rows/s (of floor) | shards s | "
             "build [CPU s/M] | build peak RSS | reads of input |",
             "|---|" + ("---|" if with_inputs else "") + "---|---|---|---|---|---|---|---|---|---|"]

    def cpu(step):  # CPU seconds (all threads) per million rows: what a quiet machine's cores would have to give
        return f"[{step['cpu_seconds'] / entry['rows'] * 1e6:.2f}]"

    for entry in results["files"]:
        floor = entry["reader"]["rows_per_s"]
        count, encode = entry["count"], entry["encode"]
        # Results written before the build was measured as a whole hold per-step CPU and peak figures instead.
        build = entry.get("build") or {"cpu_seconds": sum(entry[step].get("cpu_seconds", 0.0) for step in
                                                          ("count", "order", "encode", "shards")),
                                       "peak_rss_mb": max(entry[step].get("peak_rss_mb", 0.0) for step in
                                                          ("count", "order", "encode", "shards"))}
        lines.append(
            f"| {entry['rows']:,} |" + (f" {_inputs(entry)} |" if with_inputs else "")
            + f" {entry['file_bytes'] / 2 ** 30:.2f} GiB | {entry['cat_rows_per_s']:,.0f} | "
            f"{floor:,.0f} {cpu(entry['reader'])} | {count['rows_per_s']:,.0f} ({count['rows_per_s'] / floor:.0%}) | "
            f"{entry['order']['seconds']:.1f} | {encode['rows_per_s']:,.0f} ({encode['rows_per_s'] / floor:.0%}) | "
            f"{entry['shards']['seconds']:.1f} | {cpu(build)} | {build['peak_rss_mb']:,.0f} MB | "
            f"{entry['reads_of_input']:.2f} |")
    for entry in results["files"]:
        if "over_criteo_inputs" not in entry:
            continue
        ratios = entry["over_criteo_inputs"]
        text = ", ".join(f"{label} **{ratios[step]['median']:.2f}**"
                         + (f" ({ratios[step]['min']:.2f}-{ratios[step]['max']:.2f})" if rounds > 1 else "")
                         for step, label in (("count", "pass 1"), ("encode", "pass 2"), ("reader", "reader floor")))
        missing = ", ".join(f"{name} {count:,}" for name, count in entry["numeric_missing"].items())
        lines += ["", f"{entry['rows']:,} rows, {_inputs(entry)} / criteo, rows/s per pass"
                      + (f" (median of {rounds} paired rounds, range)" if rounds > 1 else "") + f": {text}. "
                      f"Ingest report: missing numeric values {missing}; bag cells truncated "
                      f"{sum(entry['values_truncated'].values()):,}."]
    pipelines = results.get("input_pipelines") or (
        {CRITEO_INPUTS: results["input_pipeline"]} if results.get("input_pipeline") else {})
    lines += [""] if pipelines else []
    lines += [_pipeline_line(pipeline, f", {inputs}" if with_inputs else "") for inputs, pipeline in pipelines.items()]
    return "\n".join(lines)


def _median_round(entries: list) -> dict:
    """One file's builds (rounds) as one entry: the median round's, with every pass's rows/s the median of the rounds
    and the rounds' rates kept."""
    entries = sorted(entries, key=lambda entry: entry["build"]["seconds"])
    entry = dict(entries[(len(entries) - 1) // 2])
    entry["rounds_rows_per_s"] = {step: [round_[step]["rows_per_s"] for round_ in entries] for step in PASSES}
    for step in PASSES:
        entry[step] = {**entry[step], "rows_per_s": statistics.median(entry["rounds_rows_per_s"][step])}
    return entry


def _measure_files(args, scratch: pathlib.Path, results: dict) -> None:
    """Every row count: a file per input set, built --rounds times in children, alternating the input sets."""
    generators, input_sets = {}, list(args.inputs)
    for inputs in input_sets:
        generators[inputs], results["source"] = _generator(inputs=inputs)
    results.update(files=[], rounds=args.rounds, inputs=input_sets)
    first = int(args.rows[0])
    for rows in map(int, args.rows):
        paths = {inputs: scratch / f"{inputs}-{rows}.tsv" for inputs in input_sets}
        for inputs, path in paths.items():
            generators[inputs].write_tsv(path, rows, seed=1)
        builds: dict = {inputs: [] for inputs in input_sets}
        for index in range(args.rounds):
            for inputs in (input_sets if index % 2 == 0 else input_sets[::-1]):
                entry = _child("build", paths[inputs], scratch / f"cache-{inputs}-{rows}", inputs)
                builds[inputs].append(entry)
                print(json.dumps(entry), flush=True)
        for inputs, path in paths.items():
            entry = _median_round(builds[inputs])
            entry["cat_rows_per_s"] = _cat_rows_per_s(path, entry["rows"])
            if inputs != CRITEO_INPUTS and CRITEO_INPUTS in builds:
                entry["over_criteo_inputs"] = {step: paired_ratio(
                    [build[step]["rows_per_s"] for build in builds[inputs]],
                    [build[step]["rows_per_s"] for build in builds[CRITEO_INPUTS]]) for step in PASSES}
            results["files"].append(entry)
            if rows != first:
                shutil.rmtree(scratch / f"cache-{inputs}-{rows}", ignore_errors=True)
            path.unlink()
    if args.input_pipeline:
        results["input_pipelines"] = {
            inputs: _child("input", next(entry["prepared_dir"] for entry in results["files"]
                                         if _inputs(entry) == inputs), args.batch_size, args.train_steps)
            for inputs in input_sets}
        results["input_pipeline"] = results["input_pipelines"].get(CRITEO_INPUTS)


def main(argv):
    args = FLAGS
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            print(json.dumps(child_build(*rest)))
        elif kind == "count":
            print(json.dumps(child_count(*rest)))
        else:
            print(json.dumps(child_input(rest[0], int(rest[1]), int(rest[2]))))
        return

    results_dir = pathlib.Path(args.results_dir)
    compared = list(args.inputs) != [CRITEO_INPUTS]  # a comparison of input sets has its own results and section
    name, markers = (("ingest_inputs", (INPUTS_DOC_START, INPUTS_DOC_END)) if compared else
                     ("ingest", (DOC_START, DOC_END)))
    if args.table_only:
        table = _build_table(json.loads((results_dir / f"{name}.json").read_text()))
        print(table)
        if args.update_doc:
            write_between_markers(args.update_doc, *markers, table)
        return
    command = "python -m benchmarks.data.ingest " + " ".join(sys.argv[1:])  # argv: absl removed the flags
    scratch = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="ingest-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    results = {"command": command, "date": time.strftime("%Y-%m-%d"), "load_before": list(os.getloadavg())}
    try:
        if args.count_rows:
            path = pathlib.Path(args.count_file or scratch / f"count-{args.count_rows}.tsv")
            started = time.perf_counter()
            if args.count_file:
                source = _config(args.vocabulary_scale)[1]
            else:
                generator, source = _generator(args.vocabulary_scale)
                generator.write_tsv(path, args.count_rows, seed=1)
                del generator
            results.update({"source": f"{source}, categorical x{args.vocabulary_scale}",
                            "generation_seconds": time.perf_counter() - started, "file_bytes": path.stat().st_size})
            work = scratch / "count-work"
            work.mkdir(exist_ok=True)
            results["count"] = _child("count", path, work)
            results["machine"] = _machine()
            output = results_dir / f"ingest_count_{args.count_rows}.json"
        else:
            _measure_files(args, scratch, results)
            results["machine"] = _machine()
            output = results_dir / f"{name}.json"
            table = _build_table(results)
            print(table)
            if args.update_doc:
                write_between_markers(args.update_doc, *markers, table)
        results_dir.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
