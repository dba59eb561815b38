"""Numeric treatments and bags on the whole road (docs/inputs.md): schema -> columnar build (statistics,
boundaries, float columns, padded bags) -> manifest -> tf.data -> model -> train.py -> export -> raw rows through
serving_default."""

import json
import math
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.data import Schema, prepare_dataset, raw_features_from_cells
from tf_multiembed.data.numeric import NumericStatistics, bucket_ids
from tf_multiembed.data.quality import BadInputError
from tf_multiembed.serving.requests import RequestBuilder

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
FIELDS = [{"name": "user"},
          {"name": "age", "kind": "numeric", "treatment": "bucketized", "boundaries": [25, 40]},
          {"name": "visits", "kind": "numeric", "treatment": "bucketized", "num_buckets": 2},
          {"name": "price", "kind": "numeric", "treatment": "embedded", "normalization": "log1p_standard"},
          {"name": "score", "kind": "numeric", "treatment": "dense"}]
HEADER = "click,user,age,visits,price,score"
LINES = ["1,a,20,1,0,0.5", "0,b,25,2,,1.5", "1,a,,3,3,", "0,c,40.5,4,7,2.5"]


def _schema(tmp_path, fields=FIELDS, name="numeric"):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"name": name, "label": {"column": "click"}, "fields": fields}))
    return Schema.from_file(path)


def _csv(tmp_path, lines, name="clicks.csv", header=HEADER):
    path = tmp_path / name
    path.write_text("\n".join([header] + list(lines)) + "\n")
    return path


def test_build_by_hand_ids_floats_statistics_and_missing_counts(tmp_path):
    schema = _schema(tmp_path)
    data = prepare_dataset(schema, _csv(tmp_path, LINES), tmp_path / "cache", split="time",
                           split_fractions=(1.0, 0.0, 0.0))
    assert data.field_names == ("user", "age", "visits") and data.float_columns == ("price", "score")
    # age: boundaries [25, 40] -> 3 buckets + missing = 4 ids; visits: median of [1, 2, 3, 4] = 2.5 -> 3 ids.
    assert data.vocabulary_sizes == (4, 4, 3)
    numeric = data.numeric
    assert numeric["bucketized"] == [{"name": "age", "missing_rows": 1, "boundaries": [25.0, 40.0]},
                                     {"name": "visits", "missing_rows": 0, "boundaries": [2.5]}]
    logs = np.log1p([0.0, 3.0, 7.0])  # price: log1p, missing row left out
    (price,), (score,) = numeric["embedded"], numeric["dense"]
    assert price["missing_rows"] == 1 and price["log1p"] is True
    np.testing.assert_allclose([price["mean"], price["std"]], [logs.mean(), logs.std()], rtol=1e-12)
    np.testing.assert_allclose([score["mean"], score["std"]], [1.5, math.sqrt(2 / 3)], rtol=1e-12)
    assert data.report.numeric_missing == {"age": 1, "visits": 0, "price": 1, "score": 1}

    features, labels = data.numpy_split("train")
    # ids: age 20 -> 1, 25 -> 2 (a value on a boundary goes up), missing -> 0, 40.5 -> 3; visits 1,2 -> 1; 3,4 -> 2.
    np.testing.assert_array_equal(features["feature_ids"][:, 1:], [[1, 1], [2, 1], [0, 2], [3, 2]])
    np.testing.assert_array_equal(features["numeric_values"][:, 0], np.array([0, np.nan, 3, 7], np.float32))
    np.testing.assert_array_equal(features["dense_values"][:, 0], np.array([0.5, 1.5, np.nan, 2.5], np.float32))
    np.testing.assert_array_equal(labels, [1, 0, 1, 0])
    (batch, batch_labels), = data.dataset("train", batch_size=4).take(1)
    np.testing.assert_array_equal(batch["numeric_values"].numpy(), features["numeric_values"])
    np.testing.assert_array_equal(batch["feature_ids"].numpy(), features["feature_ids"])

    # The in-graph encoder (what the export runs) gives the same ids and floats from the raw cells.
    columns = dict(zip(HEADER.split(",")[1:], zip(*[line.split(",")[1:] for line in LINES])))
    encoded = data.feature_encoder()(raw_features_from_cells(schema, columns))
    np.testing.assert_array_equal(encoded["feature_ids"].numpy(), features["feature_ids"])
    np.testing.assert_array_equal(encoded["dense_values"].numpy(), features["dense_values"])
    assert data.model_inputs["embedded"] == [{"name": "price", "mean": price["mean"], "std": price["std"],
                                              "log1p": True}]


def test_quantile_boundaries_are_exact_quantiles_of_a_bounded_sample():
    schema = Schema.from_dict({"name": "q", "label": {"column": "y"}, "fields": [
        {"name": "v", "kind": "numeric", "treatment": "bucketized", "num_buckets": 4}]})
    values = np.random.default_rng(1).normal(size=1000)
    exact = NumericStatistics(schema)
    for block in np.array_split(values, 7):
        exact.add(schema.fields[0], block)
    boundaries = exact.result()["bucketized"][0]["boundaries"]
    np.testing.assert_allclose(boundaries, np.quantile(values, [0.25, 0.5, 0.75]))  # fewer values than the sample
    sampled = NumericStatistics(schema, sample_size=200)
    for block in np.array_split(values, 7):
        sampled.add(schema.fields[0], block)
    approximate = sampled.result()["bucketized"][0]["boundaries"]
    assert len(approximate) == 3 and np.max(np.abs(np.array(approximate) - boundaries)) < 0.25
    assert bucket_ids(np.array([-10.0, boundaries[1], 10.0, np.nan]), boundaries).tolist() == [1, 3, 4, 0]


def test_text_nan_and_infinity_in_a_numeric_column_are_counted_skips_or_a_named_error(tmp_path):
    schema = _schema(tmp_path)
    lines = LINES + ["1,a,abc,1,1,1", "0,b,30,nan,1,1", "1,c,30,1,inf,1"]
    path = _csv(tmp_path, lines)
    data = prepare_dataset(schema, path, tmp_path / "cache", max_skipped_fraction=0.5)
    assert data.report.skipped_by_reason == {"non_numeric": 1, "non_finite": 2}
    assert any(f"{path}:6: " in line and "age: 'abc' is not a number" in line for line in data.report.first_bad_lines)
    strict_path = _csv(tmp_path, LINES + ["0,b,30,nan,1,1"], name="strict.csv")
    with pytest.raises(BadInputError, match=r"strict\.csv:6: NaN or infinity in a numeric field \(visits: 'nan' is "
                                            r"not a finite number\)"):
        prepare_dataset(schema, strict_path, tmp_path / "cache", strict=True)


def test_request_builder_names_the_numeric_feature_that_got_text(tmp_path):
    builder = RequestBuilder.from_schema(_schema(tmp_path))
    with pytest.raises(TypeError, match="feature 'price', row 0: expected a number .* received the text 'cheap'"):
        builder.rest_rows([{"user": "a", "age": 30, "visits": 1, "price": "cheap", "score": 1.0}])
    assert math.isnan(builder.rest_rows([{"user": "a", "age": None, "visits": 1, "price": 2, "score": ""}])
                      ["instances"][0]["score"])


def test_request_builder_joins_a_bag_given_as_a_list_and_names_a_value_holding_the_separator(tmp_path):
    builder = RequestBuilder.from_schema(_schema(tmp_path, BAG_FIELDS, name="bags"))
    assert builder.rest_rows([{"user": "a", "tags": ["rock", "jazz"]}])["instances"] == [
        {"user": "a", "tags": "rock|jazz"}]
    with pytest.raises(ValueError, match=r"feature 'tags', row 0: the value 'a\|b' of 'tags' contains the field's "
                                         r"separator '\|'"):
        builder.rest_rows([{"user": "a", "tags": ["a|b"]}])


def test_statistics_and_sample_do_not_depend_on_blocks_or_merge_order():
    """The pass-1 accumulators are exact sums and a keyed sample, so any cut of the rows into blocks, merged in any
    order (as the Beam pipeline merges its workers' blocks), gives the same result bit for bit; the sample (8 of 300
    values here) too. The sum-of-squares form is exact, so a large offset costs no precision."""
    schema = Schema.from_dict({"name": "m", "label": {"column": "y"}, "fields": [
        {"name": "v", "kind": "numeric", "treatment": "bucketized", "num_buckets": 4},
        {"name": "w", "kind": "numeric", "treatment": "embedded"}]})
    rng = np.random.default_rng(3)
    values = {"v": rng.normal(size=300), "w": 1e9 + rng.normal(size=300)}
    values["v"][::7] = np.nan
    lines = np.arange(2, 302)

    def statistics(cuts, order):
        parts = []
        for block in np.split(np.arange(300), cuts):
            part = NumericStatistics(schema, seed=5, sample_size=8)
            for field in schema.fields:
                part.add(field, values[field.name][block], "f.csv", lines[block])
            parts.append(part)
        merged = NumericStatistics(schema, seed=5, sample_size=8)
        for index in order:
            merged.merge(pickle.loads(pickle.dumps(parts[index])))  # as Beam ships them between workers
        return merged.result()

    reference = statistics([], [0])
    assert statistics([100, 250], [2, 0, 1]) == statistics([13, 14, 200], [3, 1, 2, 0]) == reference
    (entry,) = reference["embedded"]
    assert entry["mean"] == 1e9 + float(np.mean(values["w"] - 1e9)) and entry["missing_rows"] == 0
    np.testing.assert_allclose(entry["std"], np.std(values["w"] - 1e9), rtol=1e-12)  # float sums of squares: 0 or junk
    assert reference["bucketized"][0]["missing_rows"] == 43
    other_seed = NumericStatistics(schema, seed=6, sample_size=8)
    for field in schema.fields:
        other_seed.add(field, values[field.name], "f.csv", lines)
    assert other_seed.result()["bucketized"] != reference["bucketized"]


BAG_HEADER = "click,user,tags"
BAG_FIELDS = [{"name": "user"}, {"name": "tags", "kind": "bag", "separator": "|", "max_values": 3}]


def test_a_bag_shares_one_vocabulary_pads_with_minus_one_and_counts_its_cap(tmp_path):
    schema = _schema(tmp_path, BAG_FIELDS, name="bags")
    lines = ["1,a,rock|jazz", "0,b,", "1,a,jazz|pop|rock|folk|jazz", "0,c,jazz"]
    data = prepare_dataset(Schema.from_dict({**schema.to_dict(), "vocabulary_order": "sorted"}),
                           _csv(tmp_path, lines, header=BAG_HEADER), tmp_path / "cache", split="time",
                           split_fractions=(1.0, 0.0, 0.0))
    assert data.field_names == ("user", "tags_0", "tags_1", "tags_2")
    # Values kept: rock, jazz, jazz, pop, rock, jazz (the 4th and 5th values of line 3 dropped) -> sorted
    # vocabulary jazz=1, pop=2, rock=3; size 4 for every slot column.
    assert data.vocabulary_sizes[1:] == (4, 4, 4) and data.report.values_truncated == {"tags": 1}
    ids, _ = data.numpy_split("train")
    np.testing.assert_array_equal(ids[:, 1:], [[3, 1, -1], [-1, -1, -1], [1, 2, 3], [1, -1, -1]])
    names, sizes, bags = data.model_fields()
    assert names == ("user", "tags") and sizes == (data.vocabulary_sizes[0], 4) and bags == (1, 3)
    columns = dict(zip(["user", "tags"], zip(*[line.split(",")[1:] for line in lines])))
    encoded = data.feature_encoder()(raw_features_from_cells(data.schema, columns))
    np.testing.assert_array_equal(encoded.numpy(), ids)


@pytest.mark.parametrize("field, message", [
    ({"name": "t", "kind": "bag", "max_values": 1}, "a bag field needs `max_values` >= 2"),
    ({"name": "t", "kind": "bag", "max_values": 4, "pooling": "max"}, "`pooling` must be one of ['mean', 'sum']"),
    ({"name": "t", "pooling": "sum"}, "`pooling` applies to bag fields only"),
])
def test_bad_bag_settings_name_the_field(tmp_path, field, message):
    with pytest.raises(ValueError) as error:
        _schema(tmp_path, [field])
    assert message in str(error.value) and "field 't'" in str(error.value)


def _training_rows(count=800, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        age = int(rng.integers(15, 70))
        price = rng.lognormal(2.0, 1.0)
        score = rng.random()
        tags = rng.choice(["rock", "jazz", "pop", "folk"], int(rng.integers(0, 6)))
        click = int(rng.random() < 0.1 + 0.4 * (age > 40) + 0.2 * (score > 0.5) + 0.2 * ("jazz" in tags))
        lines.append(",".join([str(click), f"u{int(rng.integers(0, 30))}", "" if index % 13 == 0 else str(age),
                               str(int(rng.poisson(3))), "" if index % 11 == 0 else f"{price:.3f}",
                               "" if index % 17 == 0 else f"{score:.4f}", "|".join(tags)]))
    return lines


def test_train_py_exports_a_model_whose_raw_rows_serve_the_offline_predictions(tmp_path):
    # Every new kind at once: bucketized (given and learned), embedded, dense numeric fields and a bag.
    schema = _schema(tmp_path, FIELDS + [{"name": "tags", "kind": "bag", "separator": "|", "max_values": 4}],
                     name="numeric-e2e")
    header = HEADER + ",tags"
    lines = _training_rows()
    path = _csv(tmp_path, lines, header=header)
    command = [sys.executable, str(REPOSITORY / "train.py"), "--dataset=csv", f"--schema={tmp_path / 'schema.json'}",
               f"--data_path={path}", f"--data_dir={tmp_path / 'cache'}", "--model=dcnv2", "--scale=2",
               "--split=time", "--epochs=1", "--batch_size=64", f"--model_dir={tmp_path / 'run'}",
               f"--export_dir={tmp_path / 'export'}", "--export_name=clicks", "--verbose=0"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (version,) = sorted((tmp_path / "export" / "clicks").iterdir())
    loaded = tf.saved_model.load(str(version))

    # The test split of a time split without a time column is the file's last 10% of rows, in order.
    data = prepare_dataset(schema, path, tmp_path / "cache", split="time")
    features, _ = data.numpy_split("test")
    test_lines = lines[-data.split_rows["test"]:]
    columns = dict(zip(header.split(",")[1:], zip(*[line.split(",")[1:] for line in test_lines])))
    raw = {name: tf.constant(values) for name, values in raw_features_from_cells(schema, columns).items()}
    encoded = loaded.encoder.serve(raw)
    for key in ("feature_ids", "numeric_values", "dense_values"):
        np.testing.assert_array_equal(encoded[key].numpy(), features[key])
    served = loaded.signatures["serving_default"](**raw)["click_probability"].numpy()

    # Offline: the trained Keras model (the export's own weights) on the prepared rows.
    from tf_multiembed.models import NumericInputs, build_model

    names, sizes, bags = data.model_fields()
    assert bags == (1, 1, 1, 4) and data.report.values_truncated["tags"] > 0
    model = build_model("dcnv2", sizes, scale=2, field_names=names, bag_sizes=bags,
                        numeric_inputs=NumericInputs.from_dict(data.model_inputs))
    assert model.get_layer("numeric_embedding").means == [data.numeric["embedded"][0]["mean"]]
    offline = _predict_with_export_weights(model, loaded, features)
    np.testing.assert_allclose(served, offline, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(served, 6).tolist())) > 1

    # A client that only has the export builds requests with a bag given as a list.
    builder = RequestBuilder.from_saved_model(version)
    row = {name: values[0] for name, values in columns.items()}
    assert builder.rest_rows([{**row, "tags": ["jazz", "rock"]}])["instances"][0]["tags"] == "jazz|rock"

    # The collapse report reads the export: the categorical and bucketized fields' tables and cross-kernel pairs.
    from tf_multiembed.diagnostics.loading import load_for_diagnostics
    from tf_multiembed.diagnostics.report import diagnose

    report = diagnose(load_for_diagnostics(version), "export")
    assert report.pairwise.projected_abundance.shape == (2, 4, 4)


def _predict_with_export_weights(model, loaded, features):
    """The Keras model with the exported variables copied in by object-graph path, applied offline."""
    from tf_multiembed import artifacts

    paths = artifacts.model_variable_paths(model)
    exported = loaded.model_variables
    copied = 0
    for variable in model.variables:
        key = paths.get(id(variable))
        if key is not None:
            variable.assign(exported[key.replace("/", ".")].numpy())
            copied += 1
    assert copied == len(model.weights)  # every weight and batch-norm statistic came from the export
    return model.predict(features, verbose=0)[:, 0]
