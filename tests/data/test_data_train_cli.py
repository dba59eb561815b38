"""`python train.py` on Parquet and on TFRecord (tf.Example) inputs, as a user runs it: one epoch, an export, and a
raw row of the input served through the export's signature, with the prediction of the trained model itself."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from tf_multiembed.data import Schema, prepare_dataset, raw_features_from_cells
from tf_multiembed.serving.examples import raw_columns_from_files

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
NUM_ROWS = 600


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    users = [f"u{int(value) % 40}" for value in rng.zipf(1.4, NUM_ROWS)]
    ages = rng.integers(15, 80, NUM_ROWS)
    tags = [[["sport", "news", "music"][index] for index in rng.choice(3, rng.integers(0, 3), replace=False)]
            for _ in range(NUM_ROWS)]
    clicks = [int(rng.random() < (0.7 if "sport" in row_tags else 0.2)) for row_tags in tags]
    return clicks, users, ages, tags


def _write_input(reader, folder: pathlib.Path) -> pathlib.Path:
    clicks, users, ages, tags = _rows()
    if reader == "parquet":
        path = folder / "clicks.parquet"
        pq.write_table(pa.table({"clicked": clicks, "user": users, "age": ages.astype(np.float64),
                                 "tags": pa.array(tags, type=pa.list_(pa.string()))}), path, row_group_size=200)
        return path
    path = folder / "clicks.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for click, user, age, row_tags in zip(clicks, users, ages, tags):
            feature = {"clicked": tf.train.Feature(int64_list=tf.train.Int64List(value=[click])),
                       "user": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                       "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(age)])),
                       "tags": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode() for t in row_tags]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path


@pytest.mark.parametrize("reader", ["parquet", "tfrecord"])
def test_train_py_trains_one_epoch_on_typed_inputs_and_exports_a_model_that_serves_a_raw_row(reader, tmp_path):
    path = _write_input(reader, tmp_path)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({
        "name": f"clicks-{reader}", "reader": reader, "label": {"column": "clicked"}, "min_count": 2,
        "fields": [{"name": "user"}, {"name": "age", "kind": "numeric"},
                   {"name": "tags", "kind": "multi_categorical", "separator": "|", "max_values": 2}]}))
    command = [sys.executable, str(REPOSITORY / "train.py"), "--dataset=csv", f"--schema={schema_file}",
               f"--data_path={path}", f"--data_dir={tmp_path / 'cache'}", "--model=dnn", "--epochs=1",
               "--batch_size=64", f"--model_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}",
               "--export_name=clicks", "--verbose=0"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env={**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [entry["epoch"] for entry in results["epochs"]] == [1]
    versions = sorted((tmp_path / "export" / "clicks").iterdir())
    assert len(versions) == 1 and (versions[0] / "saved_model.pb").is_file()

    schema = Schema.from_file(schema_file)
    columns = raw_columns_from_files(schema, path, 4)  # the first rows as a client sends them
    features = {name: tf.constant(values) for name, values in raw_features_from_cells(schema, columns).items()}
    loaded = tf.saved_model.load(str(versions[0]))
    served = loaded.signatures["serving_default"](**features)["click_probability"].numpy()
    assert served.shape == (4,) and np.all((served > 0) & (served < 1)) and len(set(served.tolist())) > 1

    # The export encodes the raw rows as the build did: its encoder (vocabularies from its assets) gives the ids of
    # the cached prepared data train.py made.
    data = prepare_dataset(schema, path, tmp_path / "cache")
    assert data.report.rows_valid == NUM_ROWS and data.report.files_read == [str(path)]
    np.testing.assert_array_equal(loaded.encoder.serve(features).numpy(), data.feature_encoder()(features).numpy())
