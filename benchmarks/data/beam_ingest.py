"""Beam build benchmark: per-core rates (rows/s) of the read+parse, analyze and transform phases on the local runner,
and the end-to-end time of the local runner on a Criteo-format file, for the Criteo-1TB projection of docs/beam.md.

Each measurement runs in a fresh process pinned to one core (`taskset -c 0`, one DirectRunner worker), times only
`pipeline.run()` (imports excluded), and is taken on a large and a small file: the marginal rate
`(rows_large - rows_small) / (time_large - time_small)` cancels the fixed costs of a run (pipeline start, tf.Transform
tracing, SavedModel writing) that a long run on a real cluster pays once. Three pipelines share their first stages:

- `parse`: read files into Arrow blocks, reshuffle them, parse (bad-input accounting, per-block token counts);
- `analyze`: the same, then tf.Transform's vocabulary analysis of the counts (`analyze.py`);
- `full`: the whole build (`PrepareData`): analyze, vocabularies, encoding, split, shards, manifest;
- `single_machine`: the baseline, `prepare_dataset` (the single-machine build) on the same files and core.

Phase rates: parse = marginal rate of `parse`; analyze = from the extra time of `analyze` over `parse`; transform
(encode + split + shard writing) = from the extra time of `full` over `analyze`.

Usage (about ten minutes; niced so that it does not starve other work; the machine's load is recorded):

    nice -n 10 python -m benchmarks.data.beam_ingest --rows=400000 --small_rows=100000 --update_doc=docs/beam.md
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from absl import app, flags  # noqa: E402

from benchmarks.common import CRITEO_SHAPE as SHAPE_FILE, REPO, RESULTS_DIR, write_between_markers  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("rows", 400_000, "Rows of the large file.", lower_bound=1)
flags.DEFINE_integer("small_rows", 100_000, "Rows of the small file (also the file of the end-to-end run).",
                     lower_bound=1)
flags.DEFINE_integer("repeats", 2, "Runs per measurement; the fastest counts.", lower_bound=1)
flags.DEFINE_string("work_dir", None, "Scratch folder (default: a temporary one, removed).")
flags.DEFINE_string("update_doc", None, "Markdown file with the beam-benchmark markers to rewrite.")
flags.DEFINE_list("child", None, "Internal: variant,input,output of one measured run in this process.")

RESULTS = RESULTS_DIR / "beam_ingest.json"
DOC_START, DOC_END = "<!-- beam-benchmark:start -->", "<!-- beam-benchmark:end -->"
VARIANTS = ("parse", "analyze", "full", "single_machine")


def _generator_config():
    from tf_multiembed.data.synthetic import SyntheticCriteoConfig

    if SHAPE_FILE.is_file():
        shape = json.loads(SHAPE_FILE.read_text())
        return SyntheticCriteoConfig(vocabulary_sizes=tuple(shape["vocabulary_sizes"]), num_numeric=13), SHAPE_FILE.name
    return SyntheticCriteoConfig(), "package default"


def _child(variant: str, path: str, output: str) -> dict:
    """Runs one pipeline variant in this process; returns its timing."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tf_multiembed.compat import import_tensorflow_transform

    import_tensorflow_transform()  # the first import goes through compat (it would set TF_USE_LEGACY_KERAS)
    import tensorflow_transform.beam as tft_beam

    from tf_multiembed.data.beam import pipeline as beam_pipeline
    from tf_multiembed.data.beam import analyze

    config, _ = _generator_config()
    schema = config.schema(min_count=10)
    if variant == "single_machine":
        from tf_multiembed.data import prepare_dataset

        started = time.perf_counter()
        prepare_dataset(schema, path, output, max_skipped_fraction=0.0, rows_per_shard=250_000)
        return {"variant": variant, "seconds": time.perf_counter() - started}
    settings = beam_pipeline.BeamSettings(rows_per_shard=250_000, max_skipped_fraction=0.0)
    options = PipelineOptions([], runner="DirectRunner", direct_num_workers=1, direct_running_mode="in_memory")
    pipeline = beam.Pipeline(options=options)
    if variant == "full":
        _ = pipeline | beam_pipeline.PrepareData(schema, path, output, settings)
    else:
        read = (pipeline
                | beam.Create([(0, path)])
                | beam.ParDo(beam_pipeline.ReadFile(schema, False)).with_outputs("stats", main="blocks"))
        parsed = (read.blocks | beam.Reshuffle()
                  | beam.ParDo(beam_pipeline.ParseBlock(schema, False, 5)).with_outputs("stats", "counts",
                                                                                         main="blocks"))
        if variant == "parse":
            _ = parsed.blocks | beam.Map(lambda block: block.num_rows) | beam.CombineGlobally(sum)
        else:
            with tft_beam.Context(temp_dir=os.path.join(output, "tmp")):
                _ = ((parsed.counts, analyze.tensor_adapter_config(schema))
                     | tft_beam.AnalyzeDataset(analyze.preprocessing_fn(schema)))
    started = time.perf_counter()
    pipeline.run().wait_until_finish()
    return {"variant": variant, "seconds": time.perf_counter() - started}


def _run_child(variant: str, path: pathlib.Path, work: pathlib.Path, pin: bool, repeats: int = 1) -> float:
    """The fastest of `repeats` runs (the least disturbed by other work on the machine)."""
    return min(_run_child_once(variant, path, work, pin) for _ in range(repeats))


def _run_child_once(variant: str, path: pathlib.Path, work: pathlib.Path, pin: bool) -> float:
    output = work / f"out-{variant}-{path.stem}"
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, __file__, f"--child={variant},{path},{output}"]
    if pin and shutil.which("taskset"):
        command = ["taskset", "-c", "0"] + command
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
                       PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{variant} on {path} failed:\n{completed.stderr[-4000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"{variant:8s} {path.name}: {result['seconds']:.1f} s", flush=True)
    return result["seconds"]


# The Criteo-1TB projection (docs/beam.md says what it assumes). Row count: the 24 day files of the Criteo Terabyte
# Click Logs. Prices: Dataflow batch list prices (us-central1) assumed when this was written; check the current ones.
CRITEO_1TB_ROWS = 4_373_472_329
VCPU_HOUR, GB_HOUR, GB_PER_VCPU, SHUFFLE_GB = 0.056, 0.003557, 4.0, 0.011
RAW_BYTES_PER_ROW = 300  # a Criteo line is about 300 bytes uncompressed (1.3 TB / 4.37 B rows)


def projection(rates: dict) -> dict:
    """vCPU-hours and dollars of the whole build on Criteo-1TB at the measured per-core rates (rows/s per vCPU), and
    an upper bound of the serial part: one worker reads a gzip day file (1/24 of the rows) at most at the read+parse
    rate's pace.

    Shuffled bytes: the raw row blocks once (the reshuffle after reading), the parsed blocks once (they wait for the
    vocabularies), and the encoded rows once (grouping into shards, 40 int32 each).
    """
    vcpu_hours = CRITEO_1TB_ROWS / rates["whole_build"] / 3600
    shuffled_gb = CRITEO_1TB_ROWS * (2 * RAW_BYTES_PER_ROW + 40 * 4) / 1e9
    compute = vcpu_hours * (VCPU_HOUR + GB_PER_VCPU * GB_HOUR)
    shuffle = shuffled_gb * SHUFFLE_GB
    return {"vcpu_hours": vcpu_hours, "shuffled_gb": shuffled_gb, "compute_dollars": compute,
            "shuffle_dollars": shuffle, "dollars": compute + shuffle,
            "hours_on_100_workers_of_8_vcpus": vcpu_hours / 800,
            "read_hours_per_day_file_at_most": CRITEO_1TB_ROWS / 24 / rates["read_parse"] / 3600}


def _table(results: dict) -> str:
    rates, end_to_end = results["per_core_rows_per_second"], results["end_to_end"]
    lines = ["| phase (one core, local runner) | rows/s per core |", "| --- | ---: |"]
    lines += [f"| {name.replace('_', ' ')} | {rates[name]:,.0f} |"
              for name in ("read_parse", "analyze", "transform", "whole_build", "single_machine_build")]
    projected = results["criteo_1tb_projection"]
    lines += ["", f"Criteo-1TB projection ({CRITEO_1TB_ROWS:,} rows) at the whole-build rate: "
                  f"{projected['vcpu_hours']:,.0f} vCPU-hours; on Dataflow batch list prices assumed here "
                  f"(${VCPU_HOUR}/vCPU-h, ${GB_HOUR}/GB-h with {GB_PER_VCPU} GB per vCPU, ${SHUFFLE_GB}/GB shuffled, "
                  f"{projected['shuffled_gb']:,.0f} GB shuffled): about ${projected['dollars']:,.0f} "
                  f"(compute ${projected['compute_dollars']:,.0f}, shuffle ${projected['shuffle_dollars']:,.0f}); "
                  f"{projected['hours_on_100_workers_of_8_vcpus']:.1f} h of work on 100 workers of 8 vCPUs, but "
                  f"reading one gzip day file takes one worker up to "
                  f"{projected['read_hours_per_day_file_at_most']:.1f} h (24 files: split them for more readers)."]
    lines += ["", f"Each time is the fastest of {results['repeats']} runs. "
                  f"End to end, local runner (DirectRunner, one worker, not pinned), {end_to_end['rows']:,} rows: "
                  f"{end_to_end['seconds']:.1f} s ({end_to_end['rows'] / end_to_end['seconds']:,.0f} rows/s). "
                  f"Load average at the start: {results['load_average_at_start']}; "
                  f"data: {results['rows']:,}-row and {results['small_rows']:,}-row synthetic Criteo-format files "
                  f"({results['vocabulary_source']}); command: `{results['command']}`."]
    return "\n".join(lines)


def main(argv):
    del argv
    args = FLAGS
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    from tf_multiembed.data.synthetic import SyntheticCriteo

    work = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="beam-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    config, source = _generator_config()
    generator = SyntheticCriteo(config)
    large, small = work / f"criteo-{args.rows}.tsv", work / f"criteo-{args.small_rows}.tsv"
    for path, rows in ((large, args.rows), (small, args.small_rows)):
        if not path.is_file():
            generator.write_tsv(path, rows, seed=1)
    load = os.getloadavg()
    times = {variant: {size: _run_child(variant, path, work, pin=True, repeats=args.repeats)
                       for size, path in (("large", large), ("small", small))} for variant in VARIANTS}
    extra_rows = args.rows - args.small_rows
    marginal = {variant: times[variant]["large"] - times[variant]["small"] for variant in VARIANTS}
    rates = {"read_parse": extra_rows / marginal["parse"],
             "analyze": extra_rows / max(marginal["analyze"] - marginal["parse"], 1e-9),
             "transform": extra_rows / max(marginal["full"] - marginal["analyze"], 1e-9),
             "whole_build": extra_rows / marginal["full"],
             "single_machine_build": extra_rows / marginal["single_machine"]}
    end_to_end = _run_child("full", small, work, pin=False)
    results = {"rows": args.rows, "small_rows": args.small_rows, "vocabulary_source": source,
               "seconds": times, "per_core_rows_per_second": rates,
               "end_to_end": {"rows": args.small_rows, "seconds": end_to_end}, "repeats": args.repeats,
               "load_average_at_start": [round(value, 2) for value in load], "cpu_count": os.cpu_count(),
               "criteo_1tb_projection": projection(rates),
               "command": f"nice -n 10 python -m benchmarks.data.beam_ingest --rows={args.rows} "
                          f"--small_rows={args.small_rows} --repeats={args.repeats}"}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(_table(results))
    if args.update_doc:
        write_between_markers(args.update_doc, DOC_START, DOC_END, _table(results))
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
