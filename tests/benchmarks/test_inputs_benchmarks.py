"""Issue 20's speed benchmarks with the new inputs: the in-memory training inputs of `benchmarks.common` (today's
Criteo-shaped ids, and the same plus two float numeric fields per treatment and a 20-slot bag), the paired
new / criteo ratios, and the short modes of speed/throughput.py and data/ingest.py comparing both input sets in
one run (the full runs are the lead's, on a quiet machine: docs/benchmarks.md and docs/data.md)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import common

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"
SIZES = [30, 50, 7, 400]


def test_numeric_and_bag_inputs_extend_the_criteo_ones_and_build_the_model_train_py_builds():
    from tf_multiembed.layers import MultiEmbedding
    from tf_multiembed.models import NumericInputs, build_model

    plain = common.training_inputs(SIZES, 256, np.random.default_rng(3))
    extra = common.training_inputs(SIZES, 256, np.random.default_rng(3), inputs="numeric_and_bag")
    assert plain["bag_sizes"] is None and plain["model_inputs"] is None and plain["features"].shape == (256, 4)
    ids = extra["features"]["feature_ids"]
    assert ids.shape == (256, 4 + 2 + 20) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[:, :4], plain["features"])  # the same Criteo ids and labels
    np.testing.assert_array_equal(extra["labels"], plain["labels"])
    bag = ids[:, 6:]
    lengths = (bag >= 0).sum(axis=1)
    assert 4.3 < lengths.mean() < 5.7 and bag.max() <= 5000  # Poisson(5) values of 5,000 ranks
    assert ((bag >= 0) == (np.arange(20) < lengths[:, None])).all()  # values first, then -1 padding
    # 16 buckets (15 learned boundaries) and the missing id 0 per bucketized field; 5,000 bag values and OOV.
    assert extra["vocabulary_sizes"] == SIZES + [17, 17, 5001] and extra["bag_sizes"] == [1] * 6 + [20]
    for key in ("numeric_values", "dense_values"):
        values = extra["features"][key]
        assert values.shape == (256, 2) and values.dtype == np.float32 and np.isnan(values).any()
    assert [entry["name"] for entry in extra["model_inputs"]["embedded"]] == ["embed_std", "embed_log"]
    assert [entry["log1p"] for entry in extra["model_inputs"]["dense"]] == [False, True]
    with pytest.raises(ValueError, match="`inputs` must be one of"):
        common.training_inputs(SIZES, 8, inputs="numeric")

    model = build_model("dcnv2", extra["vocabulary_sizes"], scale=2, multi_embedding=True,
                        numeric_inputs=NumericInputs.from_dict(extra["model_inputs"]), bag_sizes=extra["bag_sizes"])
    assert sorted(tensor.name for tensor in model.inputs) == ["dense_values", "feature_ids", "numeric_values"]
    embedding = next(layer for layer in model.layers if isinstance(layer, MultiEmbedding))
    assert list(embedding.bag_sizes) == [1] * 6 + [20] and embedding.num_columns == 26
    probabilities = model(extra["features"], training=False)
    assert probabilities.shape == (256, 1) and np.isfinite(probabilities.numpy()).all()


def test_combine_rounds_pairs_each_input_set_with_its_criteo_twin():
    def row(mode, inputs, speed):
        return {"model": "me_dcnv2_10x10", "mode": mode, "inputs": inputs, "examples_per_s": speed}

    rounds = [[row("sparse", "criteo", 5000.0), row("sparse", "numeric_and_bag", 4500.0)],
              [row("sparse", "numeric_and_bag", 3000.0), row("sparse", "criteo", 4000.0)],
              [row("sparse", "criteo", 6000.0), row("sparse", "numeric_and_bag", 5700.0)]]
    criteo, extra = common.combine_rounds(rounds, batch_size=2048)
    assert criteo["inputs"] == "criteo" and "over_criteo_inputs" not in criteo and criteo["examples_per_s"] == 5000
    # Paired per round: 0.9, 0.75, 0.95.
    assert extra["over_criteo_inputs"] == pytest.approx({"median": 0.9, "min": 0.75, "max": 0.95})
    assert extra["examples_per_s"] == 4500.0 and "sparse_over_dense" not in extra


def test_same_width_inputs_add_five_categorical_fields_and_pair_with_numeric_and_bag():
    plain = common.training_inputs(SIZES, 128, np.random.default_rng(3))
    wide = common.training_inputs(SIZES, 128, np.random.default_rng(3), inputs="criteo_same_width")
    extra = common.training_inputs(SIZES, 128, np.random.default_rng(3), inputs="numeric_and_bag")
    # As many interaction fields as numeric_and_bag (4 + 2 bucketized + 2 embedded + 1 bag), all single ids.
    assert wide["features"].shape == (128, 4 + 5) and wide["bag_sizes"] is None and wide["model_inputs"] is None
    assert wide["vocabulary_sizes"] == SIZES + [17, 17, 17, 17, 5001]
    assert len(extra["vocabulary_sizes"]) + len(extra["model_inputs"]["embedded"]) == len(wide["vocabulary_sizes"])
    np.testing.assert_array_equal(wide["features"][:, :4], plain["features"])
    assert (wide["features"][:, 4:] < np.array([17, 17, 17, 17, 5001])).all()

    def row(inputs, speed):
        return {"model": "me_dcnv2_10x10", "mode": "sparse", "inputs": inputs, "examples_per_s": speed}

    rounds = [[row("criteo", 1000.0), row("criteo_same_width", 800.0), row("numeric_and_bag", 760.0)],
              [row("numeric_and_bag", 700.0), row("criteo_same_width", 700.0), row("criteo", 900.0)]]
    _, same_width, new = common.combine_rounds(rounds, batch_size=2048)
    assert same_width["over_criteo_inputs"] == pytest.approx({"median": (0.8 + 700 / 900) / 2, "min": 700 / 900,
                                                             "max": 0.8})
    assert "over_same_width_inputs" not in same_width
    assert new["over_same_width_inputs"] == pytest.approx({"median": 0.975, "min": 0.95, "max": 1.0})


def _run(script, *arguments, timeout=600):
    process = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], capture_output=True, text=True,
                             timeout=timeout)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    return process.stdout


def test_throughput_short_mode_times_both_input_sets_and_reports_their_ratio(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("before\n<!-- throughput_inputs:begin -->\n(to be measured)\n<!-- throughput_inputs:end -->\n")
    _run("speed/throughput.py", "--models=dcnv2", "--scales=2", "--embeddings=me", "--modes=sparse",
         "--inputs=criteo,numeric_and_bag", "--steps=1", "--timed_epochs=1", "--batch_size=64", "--input_batches=0",
         "--threads=2", "--noisolate", "--table=inputs", f"--results_dir={tmp_path}", f"--docs={docs}")
    rows = json.loads((tmp_path / "throughput_inputs.json").read_text())["rows"]
    criteo, extra = sorted(rows, key=lambda row: row["inputs"])
    assert criteo["input_shapes"] == {"feature_ids": [39]} and criteo["bag_sizes"] is None
    assert extra["input_shapes"] == {"feature_ids": [39 + 2 + 20], "numeric_values": [2], "dense_values": [2]}
    assert extra["bag_sizes"] == [1] * 41 + [20] and extra["parameters"] > criteo["parameters"]
    assert extra["over_criteo_inputs"]["median"] == pytest.approx(extra["examples_per_s"] / criteo["examples_per_s"])
    table = docs.read_text()
    assert "| me_dcnv2_2x10 | numeric_and_bag |" in table and "(to be measured)" not in table
    assert "`feature_ids` [61]" in table


def test_ingest_short_mode_builds_both_input_sets_and_counts_the_new_fields(tmp_path):
    doc = tmp_path / "data.md"
    doc.write_text("<!-- ingest-inputs:start -->\n(to be measured)\n<!-- ingest-inputs:end -->\n")
    _run("data/ingest.py", "--rows=3000", "--inputs=criteo,numeric_and_bag", "--rounds=1", "--noinput_pipeline",
         f"--results_dir={tmp_path}", f"--work_dir={tmp_path / 'work'}", f"--update_doc={doc}")
    results = json.loads((tmp_path / "ingest_inputs.json").read_text())
    criteo, extra = results["files"]
    assert (criteo["inputs"], extra["inputs"]) == ("criteo", "numeric_and_bag") and criteo["rows"] == 3000
    assert criteo["treatments"] == {} and criteo["bags"] == {} and "over_criteo_inputs" not in criteo
    assert extra["treatments"] == {"bucket_a": "bucketized", "bucket_b": "bucketized", "embed_std": "embedded",
                                   "embed_log": "embedded", "dense_std": "dense", "dense_log": "dense"}
    assert extra["bags"] == {"tags": 20} and extra["float_columns"] == ["embed_std", "embed_log", "dense_std",
                                                                        "dense_log"]
    assert set(extra["numeric_missing"]) == set(extra["treatments"])
    assert all(50 < count < 250 for count in extra["numeric_missing"].values())  # 5% of 3,000 rows
    for step in ("count", "encode", "reader"):
        assert extra["over_criteo_inputs"][step]["median"] == pytest.approx(
            extra[step]["rows_per_s"] / criteo[step]["rows_per_s"])
    assert "input_pipelines" not in results
    # The input pipeline's child, here in this process (a child costs a TensorFlow import): its DNN is built from
    # the prepared data as train.py builds it.
    from benchmarks.data import ingest

    pipeline = ingest.child_input(extra["prepared_dir"], 256, 2)
    assert pipeline["model_inputs"] == {"feature_ids": [39 + 2 + 20], "numeric_values": [2], "dense_values": [2]}
    assert pipeline["train_rows"] == 2400 and pipeline["training_examples_per_s"] > 0
    table = doc.read_text()
    assert "| 3,000 | numeric_and_bag |" in table and "numeric_and_bag / criteo, rows/s per pass" in table
    assert "(to be measured)" not in table
