"""A new user's own files: Criteo/Avazu samples as CSV with a header (DeepCTR's `criteo_sample.txt` layout) read by
the built-in schemas, one clear error for a layout that fits neither, labels given as class names, and the hint a
build failing on its labels ends with."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.data import BadInputError, Schema, criteo_schema, prepare_dataset
from tf_multiembed.data.layout import match_layout
from tf_multiembed.data.quality import TooManyBadRowsError

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
CRITEO_COLUMNS = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
NUM_ROWS = 300


def _criteo_rows(num_rows=NUM_ROWS):
    """Rows of Criteo cells as DeepCTR's sample has them: floats in the integer columns, empty cells."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(num_rows):
        numeric = [rng.choice(["", "0", "1.0", "5.0", "260.0", "17668.0"]) for _ in range(13)]
        categorical = [rng.choice(["", "05db9164", "68fd1e64", "8cf07265"]) for _ in range(26)]
        rows.append([str(rng.integers(0, 2))] + numeric + categorical)
    return rows


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_criteo_csv_sample_with_header_reads_as_the_same_data_as_the_kaggle_tsv(tmp_path):
    rows = _criteo_rows()
    csv = _write(tmp_path / "criteo_sample.txt", [",".join(CRITEO_COLUMNS)] + [",".join(row) for row in rows])
    tsv = _write(tmp_path / "train.txt", ["\t".join(row) for row in rows])  # the Kaggle layout of the same rows
    sample = prepare_dataset("criteo", csv, tmp_path / "cache")
    kaggle = prepare_dataset("criteo", tsv, tmp_path / "cache")
    assert (sample.schema.delimiter, sample.schema.has_header) == (",", True)
    assert (kaggle.schema.delimiter, kaggle.schema.has_header) == ("\t", False)
    assert sample.report.rows_valid == NUM_ROWS and sample.report.rows_skipped == 0
    assert sample.field_names == criteo_schema().field_names
    assert sample.vocabulary_sizes == kaggle.vocabulary_sizes
    for split in ("train", "test"):
        for ours, theirs in zip(sample.numpy_split(split), kaggle.numpy_split(split)):
            np.testing.assert_array_equal(ours, theirs)


def test_train_py_reads_the_csv_sample_with_dataset_criteo_and_says_how(tmp_path):
    rows = _criteo_rows()
    _write(tmp_path / "criteo_sample.txt", [",".join(CRITEO_COLUMNS)] + [",".join(row) for row in rows])
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "train.py"), "--dataset=criteo", "--data_path=criteo_sample.txt",
         "--data_dir=cache", "--model=dnn", "--epochs=1", "--batch_size=64", "--model_dir=run", "--export_dir="],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert ("Note: criteo_sample.txt: read as comma-separated lines with a header line (it names the schema's "
            "columns), not as tab-separated lines without a header, 40 columns (label, I1, I2, ..., C25, C26).\n"
            ) in completed.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "finished" and results["data"]["ingest_report"]["rows_valid"] == NUM_ROWS


def test_a_layout_that_fits_neither_fails_once_saying_what_is_expected_and_how_to_describe_others(tmp_path):
    path = _write(tmp_path / "clicks.txt", ["1 u1 paris", "0 u2 lyon"])
    with pytest.raises(ValueError) as raised:
        prepare_dataset("criteo", path, tmp_path / "cache")
    assert str(raised.value) == (
        f"{path}: the first line does not fit the 'criteo' schema, which reads tab-separated lines without a header, "
        "40 columns (label, I1, I2, ..., C25, C26); it has 1 tab-separated cell(s): '1 u1 paris'. To read another "
        "layout, describe it in a schema file (e.g. `tf_multiembed.data.criteo_schema().to_file('my_schema.yaml')`, "
        "then edit delimiter, has_header, column_names and fields) and pass it as --dataset=custom "
        "--schema=my_schema.yaml or prepare_dataset('my_schema.yaml', ...); docs/data.md has the keys.")
    # The way out the message names: the schema written, edited, read back.
    criteo_schema().to_file(tmp_path / "my_schema.yaml")
    assert Schema.from_file(tmp_path / "my_schema.yaml") == criteo_schema()


def test_other_delimiters_and_avazu_headers_are_matched_and_a_schema_object_is_read_as_written(tmp_path):
    rows = _criteo_rows(3)
    semicolons = _write(tmp_path / "sample.csv", [";".join(row) for row in rows])
    schema, note = match_layout(criteo_schema(), semicolons)
    assert (schema.delimiter, schema.has_header, schema.column_names) == (";", False, criteo_schema().column_names)
    assert note == (f"{semicolons}: read as semicolon-separated lines without a header (40 columns), not "
                    "tab-separated.")
    kaggle = _write(tmp_path / "train.txt", ["\t".join(row) for row in rows])
    assert match_layout(criteo_schema(), kaggle) == (criteo_schema(), None)
    # Avazu samples without the `id` column (not a feature) and with a tab: the header names the needed columns.
    from tf_multiembed.data import avazu_schema

    columns = [column for column in avazu_schema().column_names if column != "id"]
    avazu = _write(tmp_path / "avazu_sample.tsv", ["\t".join(columns), "\t".join(["1"] * len(columns))])
    schema, note = match_layout(avazu_schema(), avazu)
    assert (schema.delimiter, schema.has_header, schema.column_names) == ("\t", True, None)
    # Given as a Schema object (not by name), the schema is read exactly as written: row by row, wrong column count.
    csv = _write(tmp_path / "criteo_sample.txt", [",".join(CRITEO_COLUMNS)] + [",".join(row) for row in rows])
    with pytest.raises(BadInputError, match="wrong_column_count.*Check the schema's reader settings"):
        prepare_dataset(criteo_schema(), csv, tmp_path / "cache")


def _clicks_schema(label):
    return Schema.from_dict({"name": "clicks", "label": label, "fields": [{"name": "user"}]})


def test_minus_one_one_labels_fail_with_the_threshold_hint_and_read_with_it(tmp_path):
    path = _write(tmp_path / "clicks.csv", ["label,user"] + [f"{1 if row % 3 else -1},u{row % 5}" for row in range(60)])
    with pytest.raises(TooManyBadRowsError) as raised:
        prepare_dataset(_clicks_schema({"column": "label"}), path, tmp_path / "cache")
    message = str(raised.value)
    assert message.endswith(
        "The label column 'label' holds numbers other than 0/1 (e.g. '-1'): use `rule: threshold` with a `threshold` "
        "(label = value >= threshold; `threshold: 0` for -1/1 labels, e.g. 4 for 1-5 ratings).")
    assert "delimiter" not in message
    data = prepare_dataset(_clicks_schema({"column": "label", "rule": "threshold", "threshold": 0}), path,
                           tmp_path / "cache")
    labels = np.concatenate([data.numpy_split(split)[1] for split in ("train", "validation", "test")])
    assert data.report.rows_valid == 60 and labels.sum() == 40


def test_class_name_labels_suggest_the_values_rule_which_reads_them(tmp_path):
    # UCI Adult's income column, with its spaces after the commas, and its test file's trailing dots.
    lines = ["age,income"] + [f"{20 + row}, {'>50K' if row % 4 == 0 else '<=50K'}" for row in range(80)]
    path = _write(tmp_path / "adult.csv", lines)
    schema = Schema.from_dict({"name": "adult", "label": {"column": "income"}, "fields": [{"name": "age"}]})
    with pytest.raises(BadInputError) as raised:
        prepare_dataset(schema, path, tmp_path / "cache")
    assert str(raised.value).endswith(
        "The label column 'income' holds class names (seen: '<=50K', '>50K'): list them with the values rule, "
        "`label: {column: income, positive: [<the clicked class>], negative: [<the others>]}` (values compared "
        "without surrounding spaces; any other value is then a bad label).")
    values = Schema.from_dict({"name": "adult", "label": {"column": "income", "positive": [">50K"],
                                                           "negative": ["<=50K"]}, "fields": [{"name": "age"}]})
    assert values.label.rule == "values"
    data = prepare_dataset(values, path, tmp_path / "cache")
    labels = np.concatenate([data.numpy_split(split)[1] for split in ("train", "validation", "test")])
    assert data.report.rows_valid == 80 and labels.sum() == 20
    dotted = _write(tmp_path / "adult_test.csv", lines + ["99, >50K."])
    data = prepare_dataset(values, dotted, tmp_path / "cache", max_skipped_fraction=0.05)
    assert data.report.skipped_by_reason == {"bad_label": 1}
    assert data.report.first_bad_lines == [
        f"{dotted}:82: bad label (income ' >50K.', neither positive ['>50K'] nor negative ['<=50K'])"]


def test_a_label_feature_missing_from_every_record_is_one_error(tmp_path):
    path = tmp_path / "clicks.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in range(50):
            feature = {"user": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"u{row % 7}".encode()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    schema = Schema.from_dict({"name": "t", "reader": "tfrecord", "label": {"column": "clicked"},
                               "fields": [{"name": "user"}]})
    with pytest.raises(BadInputError) as raised:
        prepare_dataset(schema, path, tmp_path / "cache")
    assert str(raised.value) == (
        f"{path}: no record among the first 50 has the label feature 'clicked' (its records have ['user']); name the "
        "label feature in the schema's label column.")


def test_a_label_column_empty_in_every_row_is_one_error(tmp_path):
    path = _write(tmp_path / "clicks.csv", ["clicked,user"] + [f",u{row % 7}" for row in range(40)])
    schema = Schema.from_dict({"name": "t", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
                               "fields": [{"name": "user"}]})
    with pytest.raises(BadInputError) as raised:
        prepare_dataset(schema, path, tmp_path / "cache")
    assert str(raised.value) == (
        f"{path}: the label column 'clicked' is empty in all of the first 40 rows: the file has no labels there. "
        "Name the file's label column in the schema's `label` (docs/data.md).")


@pytest.mark.parametrize("label, message", [
    ({"column": "y", "positive": ">50K", "negative": ["<=50K"]},
     "the values rule needs `positive` as a non-empty list of the column's values (strings), got '>50K'."),
    ({"column": "y", "positive": [">50K"]},
     "the values rule needs `negative` as a non-empty list of the column's values (strings), got None."),
    ({"column": "y", "positive": ["a", "b"], "negative": [" b"]},
     "the values ['b'] are listed as both positive and negative."),
    ({"column": "y", "rule": "threshold", "threshold": 1, "positive": ["a"]},
     "`positive` and `negative` apply to the values rule only."),
    ({"column": "y", "positive": [""], "negative": ["n"]},
     "`positive` lists the label column's values as text, e.g. [\">50K\"]; got ''."),
])
def test_values_rule_settings_are_checked_where_they_are_read(label, message):
    with pytest.raises(ValueError) as raised:
        Schema.from_dict({"name": "s", "label": label, "fields": [{"name": "x"}]}, source="s.yaml")
    assert str(raised.value) == f"s.yaml: label: {message}"


def test_values_rule_round_trips_and_other_rules_keep_their_plain_data():
    schema = Schema.from_dict({"name": "s", "label": {"column": "y", "positive": ["click", 1], "negative": ["no"]},
                               "fields": [{"name": "x"}]})
    assert schema.label.to_dict() == {"column": "y", "rule": "values", "threshold": None, "positive": ["click", "1"],
                                      "negative": ["no"]}
    assert Schema.from_dict(json.loads(schema.to_json())) == schema
    # The other rules' plain data (part of every build's cache key) is what it was before the values rule existed.
    assert criteo_schema().label.to_dict() == {"column": "label", "rule": "binary", "threshold": None}


def test_train_py_on_minus_one_one_labels_ends_with_the_threshold_hint(tmp_path):
    _write(tmp_path / "clicks.csv", ["label,user"] + [f"{1 if row % 3 else -1},u{row % 5}" for row in range(60)])
    (tmp_path / "clicks.yaml").write_text("name: clicks\nlabel: {column: label}\nfields:\n  - {name: user}\n")
    completed = subprocess.run(
        [sys.executable, str(REPOSITORY / "train.py"), "--dataset=custom", "--schema=clicks.yaml",
         "--data_path=clicks.csv", "--data_dir=cache", "--model_dir=run", "--export_dir="],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode != 0
    last = completed.stderr.strip().splitlines()[-1]  # the error line, however train.py frames it
    assert "20 of 60 lines (33.33%) were bad" in last and "delimiter" not in last
    assert last.endswith("The label column 'label' holds numbers other than 0/1 (e.g. '-1'): use `rule: threshold` "
                         "with a `threshold` (label = value >= threshold; `threshold: 0` for -1/1 labels, e.g. 4 for "
                         "1-5 ratings).")
