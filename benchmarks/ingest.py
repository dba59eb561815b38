"""Ingest benchmark: the columnar build on synthetic Criteo-format files, against the floor of reading them, and the
input pipeline against training.

For each file (made by the package's generator with the 39 Criteo cardinalities of benchmarks/criteo_shape.py), in
a fresh child process per measurement:

- floor: `cat file > /dev/null` (the page cache's speed), and the build's own reader parsing every block of the file
  without counting (Arrow's CSV reader plus the checks that choose the fast path);
- build: pass 1 (count), the split order, pass 2 (encode and route rows to their splits), the shard files; per step
  its rows/s, seconds and peak resident memory (Linux VmHWM reset at the start of the step), and how many times the
  input was read (the input bytes each pass consumed over the file size);
- input pipeline: one epoch of `train_dataset(batch)` shuffled and unshuffled (input only), and, for comparison,
  the training throughput of a DNN (scale 2) on the same prepared data.

`--count-rows N` instead measures pass 1 alone on one N-row file generated with each categorical field's
cardinality multiplied by `--vocabulary-scale` (a long tail of distinct values, as in the real Criteo's 33M), with
the token counts' memory budget at its default: the bounded-memory claim for full Criteo (45.8M rows).

The machine is shared: rates are reported with the floor measured in the same run (our rate as a fraction of the
reader's), with the load average before and after. Usage (niced, so that other work goes first):

    nice -n 10 python benchmarks/ingest.py --rows 2000000 10000000 --update-doc docs/data.md
    nice -n 10 python benchmarks/ingest.py --count-rows 45000000 --vocabulary-scale 20
"""

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
DOC_START, DOC_END = "<!-- ingest-benchmark:start -->", "<!-- ingest-benchmark:end -->"


def _config(vocabulary_scale: int = 1):
    """(generator configuration, where its cardinalities come from); children need only its schema, not the
    generator's tables (hundreds of MB that would count against the build's memory)."""
    from tf_multiembed.data.synthetic import SyntheticCriteoConfig

    try:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from criteo_shape import criteo_vocabulary_sizes

        sizes, source = list(criteo_vocabulary_sizes()), "Criteo cardinalities (criteo_shape)"
    except (ImportError, OSError):
        sizes, source = list(SyntheticCriteoConfig().vocabulary_sizes), "the package's default cardinalities"
    sizes = sizes[:13] + [size * vocabulary_scale for size in sizes[13:]]
    return SyntheticCriteoConfig(vocabulary_sizes=tuple(sizes), num_numeric=13), source


def _generator(vocabulary_scale: int = 1):
    from tf_multiembed.data.synthetic import SyntheticCriteo

    config, source = _config(vocabulary_scale)
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


class _Steps:
    """Wraps build steps to record each one's seconds and peak RSS."""

    def __init__(self):
        self.results = {}

    def wrap(self, owner, name: str, label: str):
        function = getattr(owner, name)

        def measured(*args, **kwargs):
            _reset_peak()
            before = _status_mb("VmRSS")
            started, cpu = time.perf_counter(), time.process_time()
            value = function(*args, **kwargs)
            self.results[label] = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                                   "rss_before_mb": before, "peak_rss_mb": _status_mb("VmHWM")}
            return value

        setattr(owner, name, measured)


def child_build(path: str, work: str) -> dict:
    """The reader floor, then the whole build with per-step measurements."""
    from tf_multiembed.data import build as build_lib
    from tf_multiembed.data import transforms
    from tf_multiembed.data.quality import BadInputTracker
    from tf_multiembed.data.records import make_reader

    schema = _config()[0].schema(min_count=10)
    transforms.criteo_log_thresholds()  # computed once per process (0.5 s): not part of any pass
    size = os.path.getsize(path)
    results = {"file_bytes": size}
    _reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    tracker = BadInputTracker()
    for _ in make_reader(schema, path).read_blocks(tracker):
        pass
    seconds = time.perf_counter() - started
    results["reader"] = {"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                         "rows_per_s": tracker.lines_read / seconds, "peak_rss_mb": _status_mb("VmHWM")}
    steps = _Steps()
    steps.wrap(build_lib, "_count_pass", "count")
    steps.wrap(build_lib, "_inverse_order_path", "order")
    steps.wrap(build_lib, "_encode_pass", "encode")
    steps.wrap(build_lib._SplitRouter, "finish", "shards")
    folder = build_lib.build(schema, path, work, rebuild=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = manifest["report"]["lines_read"]
    for step in steps.results.values():
        step["rows_per_s"] = rows / step["seconds"]
    results.update(steps.results)
    results["rows"] = rows
    results["reads_of_input"] = sum(manifest["report"]["passes"][name]["input_bytes"]
                                    for name in ("count", "encode")) / size
    results["vocabulary_rows"] = sum(manifest["vocabulary_sizes"])
    results["prepared_dir"] = str(folder)
    return results


def child_count(path: str, work: str) -> dict:
    """Pass 1 alone (with the default memory budget of the token counts)."""
    from tf_multiembed.data import build as build_lib
    from tf_multiembed.data import transforms
    from tf_multiembed.data.counting import DEFAULT_MEMORY_BYTES
    from tf_multiembed.data.records import make_reader

    schema = _config()[0].schema(min_count=10)
    transforms.criteo_log_thresholds()
    counters = []

    class RecordedCounter(build_lib.TokenCounter):  # to report how often the counts spilled to disk
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            counters.append(self)

    build_lib.TokenCounter = RecordedCounter
    _reset_peak()
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    counted = build_lib._count_pass(schema, make_reader(schema, path), build_lib.BuildSettings(), pathlib.Path(work),
                                    os.path.getsize(path), DEFAULT_MEMORY_BYTES)
    seconds = time.perf_counter() - started
    return {"rows": counted.tracker.lines_read, "seconds": seconds,
            "rows_per_s": counted.tracker.lines_read / seconds, "rss_before_mb": before,
            "peak_rss_mb": _status_mb("VmHWM"), "count_memory_budget_mb": DEFAULT_MEMORY_BYTES >> 20,
            "spills": len(counters[0].spill_files),
            "vocabulary_rows": sum(len(tokens) + 1 for tokens in counted.vocabularies.values())}


def child_input(prepared_dir: str, batch_size: int, train_steps: int) -> dict:
    """Rows/s of one epoch of the input pipeline (shuffled, unshuffled), and of training a DNN on it."""
    import tensorflow as tf

    from tf_multiembed.data import PreparedData
    from tf_multiembed.models import build_model

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
    model = build_model("dnn", list(data.vocabulary_sizes), scale=2, multi_embedding=True,
                        field_names=list(data.field_names))
    model.compile(tf.keras.optimizers.Adam(1e-3), "binary_crossentropy")
    dataset = data.train_dataset(batch_size, seed=0, repeat=True)
    model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up: tracing
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=train_steps, epochs=1, verbose=0)
    results["training_examples_per_s"] = train_steps * batch_size / (time.perf_counter() - started)
    results["training_model"] = "dnn, multi-embedding, scale 2 (Adam, sparse updates)"
    return results


def _child(*arguments) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", *map(str, arguments)], check=True,
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


def _build_table(results: dict) -> str:
    lines = [f"Synthetic Criteo-format files (13 integer + 26 categorical columns, {results['source']}, min count 10), "
             f"`{results['command']}`, {results['date']}, {results['machine']['cpus']} cores, load average "
             f"{results['load_before'][0]:.1f} before and {results['machine']['load_average'][0]:.1f} after (the "
             f"machine was shared: compare the rates with the floor of the same run).", "",
             "| rows | file | `cat` rows/s | reader (floor) rows/s [CPU s/M] | pass 1 count rows/s (of floor) "
             "[CPU s/M] | peak RSS | order s (peak RSS) | pass 2 encode rows/s (of floor) [CPU s/M] | peak RSS | "
             "shards s (peak RSS) | reads of input |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cpu(step):  # CPU seconds (all threads) per million rows: what a quiet machine's cores would have to give
        return f"[{step['cpu_seconds'] / entry['rows'] * 1e6:.2f}]"

    for entry in results["files"]:
        floor = entry["reader"]["rows_per_s"]
        count, encode = entry["count"], entry["encode"]
        lines.append(
            f"| {entry['rows']:,} | {entry['file_bytes'] / 2 ** 30:.2f} GiB | {entry['cat_rows_per_s']:,.0f} | "
            f"{floor:,.0f} {cpu(entry['reader'])} | {count['rows_per_s']:,.0f} ({count['rows_per_s'] / floor:.0%}) "
            f"{cpu(count)} | {count['peak_rss_mb']:,.0f} MB | {entry['order']['seconds']:.1f} "
            f"({entry['order']['peak_rss_mb']:,.0f} MB) | {encode['rows_per_s']:,.0f} "
            f"({encode['rows_per_s'] / floor:.0%}) {cpu(encode)} | {encode['peak_rss_mb']:,.0f} MB | "
            f"{entry['shards']['seconds']:.1f} ({entry['shards']['peak_rss_mb']:,.0f} MB) | "
            f"{entry['reads_of_input']:.2f} |")
    pipeline = results["input_pipeline"]
    lines += ["", f"Input pipeline ({pipeline['train_rows']:,} training rows, batch {pipeline['batch_size']}): "
                  f"{pipeline['input_shuffled_rows_per_s']:,.0f} rows/s shuffled "
                  f"[{pipeline['input_shuffled_cpu_s_per_million']:.2f} CPU s/M], "
                  f"{pipeline['input_unshuffled_rows_per_s']:,.0f} rows/s unshuffled "
                  f"[{pipeline['input_unshuffled_cpu_s_per_million']:.2f} CPU s/M], input only; training "
                  f"({pipeline['training_model']}) {pipeline['training_examples_per_s']:,.0f} examples/s."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 10_000_000], help="rows per file")
    parser.add_argument("--count-rows", type=int, default=None, help="measure pass 1 alone on a file of this many "
                                                                      "rows (with --vocabulary-scale)")
    parser.add_argument("--vocabulary-scale", type=int, default=20, help="categorical cardinalities x this, for "
                                                                          "--count-rows")
    parser.add_argument("--count-file", default=None, help="with --count-rows: a file generated before with the same "
                                                           "settings (kept in --work-dir), not generated again")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--update-doc", default=None, help="markdown file whose benchmark section to rewrite")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table from results/ingest.json only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            print(json.dumps(child_build(*rest)))
        elif kind == "count":
            print(json.dumps(child_count(*rest)))
        else:
            print(json.dumps(child_input(rest[0], int(rest[1]), int(rest[2]))))
        return

    if args.table_only:
        table = _build_table(json.loads((RESULTS / "ingest.json").read_text()))
        print(table)
        if args.update_doc:
            from doc_tables import write_between_markers

            write_between_markers(args.update_doc, DOC_START, DOC_END, table)
        return
    command = "python benchmarks/ingest.py " + " ".join(argv if argv is not None else sys.argv[1:])
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
            output = RESULTS / f"ingest_count_{args.count_rows}.json"
        else:
            generator, source = _generator()
            results.update({"source": source, "files": []})
            for rows in args.rows:
                path = scratch / f"criteo-{rows}.tsv"
                generator.write_tsv(path, rows, seed=1)
                entry = _child("build", path, scratch / f"cache-{rows}")
                entry["cat_rows_per_s"] = _cat_rows_per_s(path, entry["rows"])
                results["files"].append(entry)
                print(json.dumps(entry), flush=True)
                if rows != args.rows[0]:
                    shutil.rmtree(scratch / f"cache-{rows}", ignore_errors=True)
                path.unlink()
            results["input_pipeline"] = _child("input", results["files"][0]["prepared_dir"], args.batch_size,
                                               args.train_steps)
            results["machine"] = _machine()
            output = RESULTS / "ingest.json"
            table = _build_table(results)
            print(table)
            if args.update_doc:
                from doc_tables import write_between_markers

                write_between_markers(args.update_doc, DOC_START, DOC_END, table)
        RESULTS.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {output}")
    finally:
        if args.work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
