"""Prepared data beyond one machine: an Apache Beam / tf.Transform pipeline that writes the folder `PreparedData.load`
opens (the same vocabulary files and encoded shards as `prepare_dataset`), on the local runner or on Dataflow, Flink
and Spark. Needs the `[beam]` extra: `pip install "tf-multiembed[beam]"`. See docs/beam.md.

Example:
    >>> from tf_multiembed.data.beam import prepare_with_beam
    >>> folder = prepare_with_beam("movielens", "../shared/data/ml-100k", "/tmp/ml-beam")  # doctest: +SKIP

Command line (runner flags after the pipeline's own):
    python -m tf_multiembed.data.beam --schema=criteo --input='day_*.gz' --output_dir=gs://bucket/criteo \\
        --runner=DataflowRunner --project=my-project --region=us-central1 --temp_location=gs://bucket/tmp
"""

from tf_multiembed.data.beam.pipeline import BeamSettings, PrepareData, prepare_with_beam

__all__ = ["BeamSettings", "PrepareData", "prepare_with_beam"]
