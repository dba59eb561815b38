"""Ingest benchmark: throughput (rows/s) and peak memory of the streaming build on synthetic Criteo-format files.

For each file the build runs in a fresh process, phase by phase (pass 1 count, pass 2 encode, split), and the peak
resident set size of each phase is measured from Linux's VmHWM, reset at the start of the phase
(`/proc/self/clear_refs`). Three files show what memory depends on:

- `base`: N rows from the generator;
- `doubled`: the same N rows written twice (2N rows, the same distinct values): memory must stay flat;
- `fresh`: 2N new rows (2N rows, more distinct values from the Zipf tail): memory grows only with the vocabulary.

Usage (takes several minutes on 2 cores; run it niced so that it does not starve other work):

    nice -n 10 python benchmarks/ingest.py --rows 2000000 --update-doc docs/data.md

The vocabulary sizes come from ../shared/data/criteo_shape.json when present (Criteo-like, 1.14M values in all),
else from the package's default synthetic configuration.
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPE_FILE = REPO.parent / "shared" / "data" / "criteo_shape.json"
DOC_START, DOC_END = "<!-- ingest-benchmark:start -->", "<!-- ingest-benchmark:end -->"


def _generator_config():
    from tf_multiembed.data.synthetic import SyntheticCriteoConfig

    if SHAPE_FILE.is_file():
        shape = json.loads(SHAPE_FILE.read_text())
        return SyntheticCriteoConfig(vocabulary_sizes=tuple(shape["vocabulary_sizes"]), num_numeric=13), SHAPE_FILE.name
    return SyntheticCriteoConfig(), "package default"


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(name, function, rows, results):
    resettable = _reset_peak()
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - started
    results[name] = {"seconds": seconds, "rows_per_s": rows / seconds if seconds else float("inf"),
                     "rss_before_mb": before / 1024, "peak_rss_mb": _status_kb("VmHWM") / 1024,
                     "peak_is_per_phase": resettable}
    return value


def run_phases(path: str, work_dir: str) -> dict:
    """Child process: the three build phases on one file, measured."""
    from tf_multiembed.data import build, vocabulary
    from tf_multiembed.data.quality import BadInputTracker
    from tf_multiembed.data.records import make_reader

    config, _ = _generator_config()
    schema = config.schema(min_count=10)
    reader = make_reader(schema, path)
    work = pathlib.Path(work_dir)
    results = {}
    tracker = BadInputTracker()
    rows_estimate = sum(1 for _ in open(path, "rb"))
    counts = _measure("count", lambda: build.count_tokens(schema, reader, tracker), rows_estimate, results)
    results["distinct_values"] = sum(len(counter) for counter in counts)
    vocabularies = vocabulary.build_schema_vocabularies(schema, counts)
    del counts
    results["vocabulary_total"] = sum(len(tokens) + 1 for tokens in vocabularies.values())
    vocabulary.write_schema_vocabularies(schema, vocabularies, work / "vocab")
    num_rows = tracker.rows_valid
    _measure("encode", lambda: build.encode_rows(schema, reader, vocabularies, num_rows, work / "encoded.npy"),
             num_rows, results)
    del vocabularies
    _measure("split", lambda: build.write_split_shards(work / "encoded.npy", work, build.BuildSettings()),
             num_rows, results)
    results["rows"] = num_rows
    return results


def _tf_data_read_rate(path: pathlib.Path, cache_dir: pathlib.Path) -> float:
    """Rows/s of one epoch of `train_dataset` (batch 8192, shuffled) over a prepared copy of the file."""
    from tf_multiembed.data import prepare_dataset

    config, _ = _generator_config()
    data = prepare_dataset(config.schema(min_count=10), path, cache_dir)
    dataset = data.train_dataset(8192, seed=0)
    for _ in dataset.take(2):  # warm-up
        pass
    started = time.perf_counter()
    rows = sum(int(labels.shape[0]) for _, labels in dataset)
    return rows / (time.perf_counter() - started)


def _child(path, work_dir) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", str(path), str(work_dir)], check=True,
                            capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(output.stdout.strip().splitlines()[-1])


def _table(runs, rows, source, generation_rate, read_rate) -> str:
    lines = [f"Synthetic Criteo-format files (13 integer + 26 categorical columns; vocabulary sizes: {source}; "
             f"min count 10), measured by `benchmarks/ingest.py --rows {rows}` on this 2-core machine. Generation ran "
             f"at {generation_rate:,.0f} rows/s; one shuffled epoch of `train_dataset(8192)` read "
             f"{read_rate:,.0f} rows/s.", "",
             "| file | rows | distinct values | vocabulary rows | pass 1 count rows/s | peak RSS | "
             "pass 2 encode rows/s | peak RSS | split rows/s | peak RSS |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, result in runs.items():
        phases = [result[phase] for phase in ("count", "encode", "split")]
        cells = " | ".join(f"{phase['rows_per_s']:,.0f} | {phase['peak_rss_mb']:,.0f} MB" for phase in phases)
        lines.append(f"| {name} | {result['rows']:,} | {result['distinct_values']:,} | {result['vocabulary_total']:,} "
                     f"| {cells} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the base file (doubled: 2x)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary folder, removed)")
    parser.add_argument("--update-doc", default=None, help="markdown file whose benchmark section to rewrite")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_phases(*args.child)))
        return

    from tf_multiembed.data.synthetic import SyntheticCriteo

    config, source = _generator_config()
    generator = SyntheticCriteo(config)
    scratch = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="ingest-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        base = scratch / "base.tsv"
        started = time.perf_counter()
        generator.write_tsv(base, args.rows, seed=1)
        generation_rate = args.rows / (time.perf_counter() - started)
        doubled = scratch / "doubled.tsv"
        with open(doubled, "wb") as output:
            for _ in range(2):
                with open(base, "rb") as source_file:
                    shutil.copyfileobj(source_file, output, 1 << 24)
        fresh = scratch / "fresh.tsv"
        generator.write_tsv(fresh, 2 * args.rows, seed=1)
        runs = {}
        for name, path in (("base", base), ("doubled (base twice)", doubled), ("fresh (2x new rows)", fresh)):
            work = scratch / f"work-{path.stem}"
            work.mkdir(exist_ok=True)
            runs[name] = _child(path, work)
            shutil.rmtree(work)
            print(name, json.dumps(runs[name]), flush=True)
        read_rate = _tf_data_read_rate(base, scratch / "cache")
        table = _table(runs, args.rows, source, generation_rate, read_rate)
        print(table)
        if args.update_doc:
            doc = pathlib.Path(args.update_doc)
            text = doc.read_text(encoding="utf-8")
            start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
            doc.write_text(text[:start] + "\n" + table + "\n" + text[end:], encoding="utf-8")
    finally:
        if args.work_dir is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
