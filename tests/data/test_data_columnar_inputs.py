"""Parquet and TFRecord (tf.Example) inputs: the same rows as a CSV give the same prepared data, bad rows and records
are skipped and named by file and row/record number, and the serving examples read them."""

import re
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from data_test_files import write_lines
from engine_cases import canonical_outputs
from tf_multiembed.data import prepare_dataset, raw_features_from_cells
from tf_multiembed.data.quality import SkippedInputWarning
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema
from tf_multiembed.serving.examples import raw_columns_from_files

FIELDS = (FieldSpec("user", min_count=1), FieldSpec("price", kind="numeric", min_count=1),
          FieldSpec("tags", kind="multi_categorical", separator="|", max_values=2, min_count=1))
# label, user, price, tags (None = missing); prices are exact in float32, so TFRecord's float_list keeps them.
ROWS = [(1, "u1", 5.0, ["a", "b"]), (0, "u2", 2.5, []), (1, "caf\u00e9", None, ["b"]), (0, "u1", 1000.0, ["c", "a", "b"]),
        (1, None, -1.0, ["a"]), (0, "u3", 3.0, None), (1, "u2", 0.5, ["b", "b"]), (0, "u1", 1e9, ["a"])] * 4


def _schema(reader: str) -> Schema:
    return Schema(f"typed-{reader}", fields=FIELDS, label=LabelSpec("y"), reader=reader,
                  **({"delimiter": ","} if reader == "delimited" else {}))


def _number_text(value):
    return "" if value is None else (str(int(value)) if value == int(value) else repr(value))


def _write_csv(path):
    lines = ["y,user,price,tags"] + [f"{y},{user or ''},{_number_text(price)},{'|'.join(tags or [])}"
                                     for y, user, price, tags in ROWS]
    return write_lines(path, lines)


def _write_parquet(path, rows=ROWS, **types):
    y, user, price, tags = zip(*rows)
    table = pa.table({"y": pa.array(y, type=types.get("y", pa.int64())),
                      "user": pa.array(user, type=types.get("user", pa.string())),
                      "price": pa.array(price, type=types.get("price", pa.float64())),
                      "tags": pa.array(tags, type=types.get("tags", pa.list_(pa.string())))})
    pq.write_table(table, path, row_group_size=7)
    return path


def _example(y, user, price, tags, raw=None):
    feature = {"y": tf.train.Feature(int64_list=tf.train.Int64List(value=[y]))}
    if user is not None:
        feature["user"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()]))
    if price is not None:
        feature["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[price]))
    if tags is not None:
        feature["tags"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[tag.encode() for tag in tags]))
    feature.update(raw or {})
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_tfrecord(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.mark.parametrize("reader", ["parquet", "tfrecord"])
def test_typed_inputs_give_the_prepared_data_of_the_same_csv(reader, tmp_path):
    expected = prepare_dataset(_schema("delimited"), _write_csv(tmp_path / "rows.csv"), tmp_path / "csv", seed=4)
    if reader == "parquet":
        path = _write_parquet(tmp_path / "rows.parquet")
    else:
        path = _write_tfrecord(tmp_path / "rows.tfrecord", [_example(*row) for row in ROWS])
    data = prepare_dataset(_schema(reader), path, tmp_path / reader, seed=4)
    outputs, reference = canonical_outputs(data, tmp_path), canonical_outputs(expected, tmp_path)
    assert outputs["vocabularies"] == reference["vocabularies"] and outputs["splits"] == reference["splits"]
    assert data.report.lines_read == 32 and data.report.values_truncated == {"tags": 4}
    assert data.report.files_read == [str(path)] and data.data_fingerprint is not None


@pytest.mark.parametrize("reader", ["parquet", "tfrecord"])
def test_serving_examples_read_typed_inputs_and_encode_like_the_build(reader, tmp_path):
    if reader == "parquet":
        path = _write_parquet(tmp_path / "rows.parquet")
    else:
        path = _write_tfrecord(tmp_path / "rows.tfrecord", [_example(*row) for row in ROWS])
    data = prepare_dataset(_schema(reader), path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    columns = raw_columns_from_files(data.schema, path, 8)
    assert columns["price"][:3] == ["5", "2.5", ""] and columns["tags"][:2] == ["a|b", ""]
    online = data.feature_encoder()(raw_features_from_cells(data.schema, columns)).numpy()
    np.testing.assert_array_equal(online, data.numpy_split("train")[0][:8])


def _skipped(data_or_call):
    with pytest.warns(SkippedInputWarning) as record:
        data = data_or_call()
    return data, " ".join(str(warning.message) for warning in record)


def test_bad_parquet_rows_are_skipped_and_named_by_row(tmp_path):
    rows = list(ROWS)
    rows[2] = (None, "u1", 1.0, ["a"])          # row 3: no label
    rows[5] = (2, "u1", 1.0, ["a"])             # row 6: label 2
    path = _write_parquet(tmp_path / "bad.parquet", rows)
    data, message = _skipped(lambda: prepare_dataset(_schema("parquet"), path, tmp_path / "a",
                                                     max_skipped_fraction=0.2))
    assert data.report.skipped_by_reason == {"bad_label": 2} and data.report.rows_valid == 30
    assert re.search(r"bad.parquet:3: bad label \(label '', expected 0 or 1\)", message)
    assert re.search(r"bad.parquet:6: bad label \(label '2', expected 0 or 1\)", message)
    texts = [(1, b"u1", "7", [b"a"]), (0, b"\xff\xfe", "1", [b"a"]), (1, b"u2", "seven", [b"b"]),
             (0, b"u2", "3", [b"a"])] * 10
    path = _write_parquet(tmp_path / "typed.parquet", texts, user=pa.binary(), price=pa.string(),
                          tags=pa.list_(pa.binary()))
    data, message = _skipped(lambda: prepare_dataset(_schema("parquet"), path, tmp_path / "b",
                                                     max_skipped_fraction=0.5))
    assert data.report.skipped_by_reason == {"bad_encoding": 10, "non_numeric": 10}
    assert re.search(r"typed.parquet:2: not valid text in the file's encoding \(column 'user': utf-8 decoding "
                     r"failed: invalid start byte at byte 0\)", message)
    assert re.search(r"typed.parquet:3: not a number in a numeric field \(price: expected a number, got 'seven'\)",
                     message)
    single = Schema("single", fields=(FieldSpec("tags", min_count=1),), label=LabelSpec("y"), reader="parquet")
    data, message = _skipped(lambda: prepare_dataset(single, _write_parquet(tmp_path / "rows.parquet"), tmp_path / "c",
                                                     max_skipped_fraction=0.5))
    assert data.report.skipped_by_reason == {"multiple_values": 12}
    assert re.search(r"rows.parquet:1: several values in a single-valued field \(column 'tags': 2 values in a "
                     r"single-valued field\)",
                     message)
    lacking = Schema("lacking", fields=(FieldSpec("city"),), label=LabelSpec("y"), reader="parquet")
    with pytest.raises(ValueError, match=r"rows.parquet: the Parquet file lacks the columns \['city'\] that the "
                                         r"schema uses; it has \['y', 'user', 'price', 'tags'\]"):
        prepare_dataset(lacking, tmp_path / "rows.parquet", tmp_path / "d")


def test_bad_tfrecord_records_are_skipped_and_named_by_record(tmp_path):
    records = [_example(*row) for row in ROWS]
    records[2] = b"\x08\x96\x01not an example"
    records[4] = _example(1, None, 2.0, ["a"], {"user": tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[b"u1", b"u2"]))})
    records[6] = _example(0, None, 2.0, ["a"], {"user": tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))})
    path = _write_tfrecord(tmp_path / "bad.tfrecord", records)
    data, message = _skipped(lambda: prepare_dataset(_schema("tfrecord"), path, tmp_path / "a",
                                                     max_skipped_fraction=0.2))
    assert data.report.skipped_by_reason == {"bad_record": 2, "multiple_values": 1}
    assert data.report.rows_valid == 29 and data.report.lines_read == 32
    assert re.search(r"bad.tfrecord:3: not a readable tf.train.Example record \(not a tf.train.Example", message)
    assert re.search(r"bad.tfrecord:5: several values in a single-valued field \(column 'user': 2 values",
                     message)
    assert re.search(r"bad.tfrecord:7: not a readable tf.train.Example record \(feature 'user' is a int64_list, "
                     r"expected a bytes_list", message)
    path.write_bytes(path.read_bytes()[:-20])  # a truncated last record
    with pytest.raises(ValueError, match=r"bad.tfrecord: cannot read the file after record \d+"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prepare_dataset(_schema("tfrecord"), path, tmp_path / "b", max_skipped_fraction=0.2)
