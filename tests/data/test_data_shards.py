"""The prepared-data format (shards.py) and its input pipeline: a folder written by a plain Python writer opens like
a built one, the manifest is checked, datasets read blocks of rows with a known cardinality, shuffle windows, and
two MultiWorkerMirroredStrategy workers read disjoint shard files that together cover the training split once."""

import json
import os
import pathlib
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from data_test_files import write_lines
from tf_multiembed.data import PreparedData, prepare_dataset
from tf_multiembed.data import shards
from tf_multiembed.data.quality import IngestReport
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema
from tf_multiembed.data.vocabulary import write_vocabulary

ROWS_SCHEMA = Schema("rows", fields=(FieldSpec("row", min_count=1),), label=LabelSpec("y"),
                     vocabulary_order="sorted")


def _rows_file(path, num_rows):
    """A CSV whose `row` column is unique per row and sorts like the row number (so id - 1 = row)."""
    return write_lines(path, ["y,row"] + [f"{(row * 7) % 3 % 2},r{row:05d}" for row in range(num_rows)])


def _plain_python_folder(folder, ids, labels):
    """A prepared-data folder written without the build engine, as another writer (e.g. Beam) would."""
    schema = Schema("beamish", label=LabelSpec("y"), min_count=1,
                    fields=(FieldSpec("user"), FieldSpec("device", hash_buckets=16)))
    (folder / "vocab").mkdir(parents=True)
    write_vocabulary(folder / "vocab" / "user.txt", ["u1", "u2", "u3"])
    sizes = {"train": 5, "validation": 2, "test": 0}
    written, start = {}, 0
    for split, size in sizes.items():
        writer = shards.SplitWriter(folder, split, size, num_fields=2, rows_per_shard=3, rows_per_record=2)
        writer.write(ids[start:start + size], labels[start:start + size])
        written[split] = writer.close()
        start += size
    report = IngestReport([], [], [], 0, 7, 7, 0, {}, [], {}, dict(sizes)).to_dict()
    shards.write_manifest(folder, schema=schema, field_names=schema.field_names, vocabulary_sizes=[4, 17],
                          hash_buckets={"device": 16}, min_counts={"user": 1, "device": None}, splits=written,
                          rows_per_record=2, settings={"split": "random", "seed": 0, "split_fractions": [0.7, 0.3, 0],
                                                       "runner": "DirectRunner"},
                          report=report, engine="test-writer")
    return schema


def test_a_folder_written_to_the_format_by_plain_python_opens(tmp_path):
    ids = np.array([[1, 5], [2, 0], [3, 16], [0, 1], [1, 2], [2, 3], [3, 4]])
    labels = np.array([1, 0, 1, 0, 1, 1, 0])
    schema = _plain_python_folder(tmp_path / "prepared", ids, labels)
    data = PreparedData.load(tmp_path / "prepared")
    assert data.schema == schema and data.vocabulary_sizes == (4, 17) and data.hash_buckets == {"device": 16}
    assert data.split_rows == {"train": 5, "validation": 2, "test": 0}
    assert [shard.file for shard in data.shards["train"]] == ["shards/train-00000-of-00002.tfrecord",
                                                               "shards/train-00001-of-00002.tfrecord"]
    assert [(shard.rows, shard.records) for shard in data.shards["train"]] == [(3, 2), (2, 1)]
    np.testing.assert_array_equal(data.numpy_split("train")[0], ids[:5])
    np.testing.assert_array_equal(data.numpy_split("validation")[1], labels[5:])
    batches = [(batch.numpy(), label.numpy()) for batch, label in data.validation_dataset(4)]
    assert len(batches) == 1 and batches[0][0].tolist() == ids[5:].tolist()
    assert data.numpy_split("test")[0].shape == (0, 2) and list(data.test_dataset(4)) == []
    assert data.settings.seed == 0 and data.data_fingerprint is None and data.cache_key is None
    assert shards.describe_shard(data.directory, data.shards["train"][0].file, 2) == data.shards["train"][0]


def test_manifest_problems_are_named(tmp_path):
    folder = tmp_path / "prepared"
    schema = _plain_python_folder(folder, np.ones((7, 2), int), np.zeros(7, int))
    good = json.loads((folder / "manifest.json").read_text())

    def load_with(manifest):
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return PreparedData.load(folder)

    with pytest.raises(ValueError, match=r"format version 1 is not the supported 2; rebuild it"):
        load_with({**good, "format_version": 1})
    train = {**good["splits"]["train"], "rows": 6}
    with pytest.raises(ValueError, match=r"split 'train': rows 6 != the sum over its shards"):
        load_with({**good, "splits": {**good["splits"], "train": train}})
    with pytest.raises(ValueError, match=r"the manifest lacks \['report'\]"):
        load_with({key: value for key, value in good.items() if key != "report"})
    (folder / "vocab" / "user.txt").write_text("u1\n")
    splits = {split: [shards.ShardInfo(**shard) for shard in entry["shards"]] for split, entry in good["splits"].items()}
    with pytest.raises(ValueError, match=r"vocab/user.txt has 1 tokens, the vocabulary size 4 says 3"):
        shards.write_manifest(folder, schema=schema, field_names=good["field_names"], vocabulary_sizes=[4, 17],
                              hash_buckets={"device": 16}, min_counts=good["min_counts"], splits=splits,
                              rows_per_record=2, settings=good["settings"], report=good["report"])
    with pytest.raises(FileNotFoundError, match="not a finished prepared-data folder"):
        PreparedData.load(tmp_path)


def test_corrupt_shards_are_named_by_file_and_record(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(shards.frame_record(b"\x01\x00\x00\x00" * 3) * 2)
    assert len(list(shards.read_tfrecord(path))) == 2
    data = bytearray(path.read_bytes())
    data[-6] ^= 1  # a bit of the second record's payload
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"x.tfrecord: record 2: the data checksum does not match"):
        list(shards.read_tfrecord(path))
    path.write_bytes(bytes(data[:-3]))
    with pytest.raises(ValueError, match=r"x.tfrecord: record 2 is truncated"):
        list(shards.read_tfrecord(path))
    with pytest.raises(ValueError, match=r"not a whole number of rows of 2 ids and a label"):
        shards.parse_block(b"\x00" * 8, num_fields=2)


def test_finite_datasets_carry_their_cardinality_and_keras_does_not_warn(tmp_path):
    data = prepare_dataset(ROWS_SCHEMA, _rows_file(tmp_path / "rows.csv", 500), tmp_path / "cache",
                           rows_per_shard=128, rows_per_record=16)
    for dataset, batches in ((data.train_dataset(64, seed=0), 7), (data.train_dataset(64, drop_remainder=True), 6),
                             (data.validation_dataset(64), 1), (data.test_dataset(30), 2)):
        assert int(dataset.cardinality()) == batches == sum(1 for _ in dataset)
    assert int(data.train_dataset(64, repeat=True).cardinality()) == tf.data.INFINITE_CARDINALITY
    model = tf.keras.Sequential([tf.keras.Input((1,), dtype="int64"), tf.keras.layers.Embedding(501, 2),
                                 tf.keras.layers.Flatten(), tf.keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(data.train_dataset(64, seed=0), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert not [warning for warning in caught if "ran out of data" in str(warning.message)]


def test_shuffled_batches_mix_rows_of_many_records_reproducibly(tmp_path):
    data = prepare_dataset(ROWS_SCHEMA, _rows_file(tmp_path / "rows.csv", 2000), tmp_path / "cache",
                           rows_per_shard=400, rows_per_record=32)
    split_order = data.numpy_split("train")[0][:, 0]
    position = {int(row): index for index, row in enumerate(split_order)}
    first = [ids.numpy()[:, 0] for ids, _ in data.train_dataset(64, seed=3, shuffle_buffer_size=512)]
    again = [ids.numpy()[:, 0] for ids, _ in data.train_dataset(64, seed=3, shuffle_buffer_size=512)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert sorted(np.concatenate(first).tolist()) == sorted(split_order.tolist())
    records_in_batch = [len({position[int(row)] // 32 for row in batch}) for batch in first]
    assert np.mean(records_in_batch) > 10  # 64 rows drawn from a window of 16 records, not 2 whole records


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("localhost", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_two_workers_read_disjoint_shard_files_covering_the_training_split(tmp_path):
    data = prepare_dataset(ROWS_SCHEMA, _rows_file(tmp_path / "rows.csv", 1000), tmp_path / "cache",
                           rows_per_shard=200, rows_per_record=64)
    assert len(data.shards["train"]) == 4
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    script = pathlib.Path(__file__).with_name("multiworker_reader.py")
    repository = pathlib.Path(__file__).resolve().parents[2]
    processes = []
    for index in range(2):
        environment = {**os.environ, "PYTHONPATH": str(repository), "TF_CPP_MIN_LOG_LEVEL": "2",
                       "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen([sys.executable, str(script), str(data.directory),
                                           str(tmp_path / f"worker{index}.json")], env=environment,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for process in processes:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output.decode()[-3000:]
    seen = [json.loads((tmp_path / f"worker{index}.json").read_text())["rows"] for index in range(2)]
    shard_rows = [set(np.concatenate([shards.parse_block(payload, 1)[0][:, 0]
                                      for payload in shards.read_tfrecord(data.directory / shard.file)]).tolist())
                  for shard in data.shards["train"]]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(data.numpy_split("train")[0][:, 0].tolist())
    for rows in seen:  # each worker read whole files: sharded by file, not by element
        assert set(rows) in ({*shard_rows[0], *shard_rows[2]}, {*shard_rows[1], *shard_rows[3]})
