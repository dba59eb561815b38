"""`python -m tf_multiembed.data.beam`: run the Beam build from the command line.

The pipeline's own flags come first; every other flag (`--runner`, `--project`, `--flink_master`, ...) goes to
Beam's `PipelineOptions`. Without `--runner`, the local DirectRunner runs it.

Examples:
    python -m tf_multiembed.data.beam --schema=movielens --input=../shared/data/ml-100k --output_dir=/tmp/ml-beam
    python -m tf_multiembed.data.beam --schema=criteo --input='gs://bucket/criteo/day_*.gz' \\
        --output_dir=gs://bucket/criteo-prepared --runner=DataflowRunner --project=my-project \\
        --region=us-central1 --temp_location=gs://bucket/tmp --setup_file=./setup.py
"""

import logging

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("schema", None, "A built-in schema ('criteo', 'avazu', 'movielens') or a JSON/YAML schema file.")
flags.DEFINE_list("input", None, "Input files or glob patterns (comma-separated; any Beam file system), or the "
                                 "MovieLens-100K folder.")
flags.DEFINE_string("output_dir", None, "The prepared-data folder to write (local or e.g. gs://bucket/folder).")
flags.DEFINE_integer("min_count", None, "Override every field's minimum count (e.g. 1 for tiny files).",
                     lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the split (a hash of seed, file base name and line number).", lower_bound=0)
flags.DEFINE_list("split_fractions", ["0.8", "0.1", "0.1"], "Train, validation and test shares.")
flags.DEFINE_bool("strict", False, "Fail at the first bad line or missing/empty input file.")
flags.DEFINE_float("max_skipped_fraction", 0.01, "Largest share of bad lines accepted.", lower_bound=0, upper_bound=1)
flags.DEFINE_integer("rows_per_shard", 1_000_000, "About how many rows each shard file holds.", lower_bound=1)
flags.DEFINE_bool("overwrite", False, "Replace a finished prepared-data folder at --output_dir.")
flags.mark_flags_as_required(["schema", "input", "output_dir"])


def main(argv):
    from apache_beam.options.pipeline_options import PipelineOptions

    from tf_multiembed.data import resolve_schema
    from tf_multiembed.data.beam.pipeline import BeamSettings, prepare_with_beam

    beam_args = list(argv[1:])
    if not any(arg.startswith("--runner") for arg in beam_args):
        beam_args += ["--runner=DirectRunner", "--direct_num_workers=1", "--direct_running_mode=in_memory"]
    schema = resolve_schema(FLAGS.schema)
    if FLAGS.min_count is not None:
        schema = schema.with_min_count(FLAGS.min_count)
    settings = BeamSettings(seed=FLAGS.seed,  # BeamSettings checks that there are three fractions
                            split_fractions=tuple(float(value) for value in FLAGS.split_fractions),  # type: ignore[arg-type]
                            strict=FLAGS.strict, max_skipped_fraction=FLAGS.max_skipped_fraction,
                            rows_per_shard=FLAGS.rows_per_shard)
    inputs = FLAGS.input[0] if len(FLAGS.input) == 1 else FLAGS.input
    folder = prepare_with_beam(schema, inputs, FLAGS.output_dir, settings, PipelineOptions(beam_args),
                               overwrite=FLAGS.overwrite)
    print(f"Prepared data: {folder}", flush=True)


def run():
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    app.run(main, flags_parser=lambda argv: FLAGS(argv, known_only=True))


if __name__ == "__main__":
    run()
