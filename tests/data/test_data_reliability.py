"""Issue 22, the data side: an empty Parquet file beside good ones, TFRecord inputs that are truncated, lack a
feature or lack the label, a prepared folder whose shard was truncated or damaged, and a full disk while preparing
data. Each case as a user meets it: the command, the one-line error naming the file and what to do (or the counted
fallback the docs promise), and nothing half-written left behind."""

import errno
import os
import pathlib
import re
import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from data_test_files import write_lines
from tf_multiembed.data import PreparedData, prepare_dataset
from tf_multiembed.data import shards as shards_lib
from tf_multiembed.data.quality import BadInputError, SkippedInputWarning
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema

FIELDS = (FieldSpec("user", min_count=1), FieldSpec("city", min_count=1))


def _schema(reader: str, label: str = "clicked") -> Schema:
    return Schema(f"clicks-{reader}", fields=FIELDS, label=LabelSpec(label), reader=reader,
                  **({"delimiter": ",", "has_header": True} if reader == "delimited" else {}))


def _rows(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(int(rng.random() < 0.3), f"u{int(rng.integers(0, 20))}", ["paris", "lyon"][int(rng.integers(0, 2))])
            for _ in range(count)]


def _example(clicked, user, city, with_label=True) -> bytes:
    feature = {"user": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
               "city": tf.train.Feature(bytes_list=tf.train.BytesList(value=[city.encode()]))}
    if with_label:
        feature["clicked"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[clicked]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_tfrecord(path, records) -> pathlib.Path:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


# --- item 6: a 0-byte .parquet beside good files ----------------------------------------------------------------

def test_an_empty_parquet_file_beside_good_ones_is_skipped_and_listed(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    for part, seed in (("a", 0), ("b", 1)):
        clicked, user, city = zip(*_rows(50, seed))
        pq.write_table(pa.table({"clicked": list(clicked), "user": list(user), "city": list(city)}),
                       folder / f"part-{part}.parquet")
    (folder / "part-c.parquet").write_bytes(b"")  # a writer that died before its first byte
    with pytest.warns(SkippedInputWarning, match=r"empty input files skipped: \[.*part-c.parquet'\]"):
        data = prepare_dataset(_schema("parquet"), str(folder / "*.parquet"), tmp_path / "cache")
    assert data.report.files_empty == [str(folder / "part-c.parquet")]
    assert data.report.rows_valid == 100 and sum(data.split_rows.values()) == 100
    assert data.report.files_read == [str(folder / f"part-{part}.parquet") for part in "abc"]
    with pytest.raises(BadInputError, match=r"part-c.parquet has no data lines"):  # strict mode refuses it, as CSV
        prepare_dataset(_schema("parquet"), str(folder / "*.parquet"), tmp_path / "strict", strict=True)


# --- item 7: TFRecord inputs ----------------------------------------------------------------------------------

def test_a_truncated_tfrecord_names_the_records_read_before_the_cut(tmp_path):
    path = _write_tfrecord(tmp_path / "clicks.tfrecord", [_example(*row) for row in _rows(320)])
    path.write_bytes(path.read_bytes()[:-20])  # the last record cut: 319 whole records before it
    with pytest.raises(BadInputError) as caught:
        prepare_dataset(_schema("tfrecord"), path, tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read the file after record 319: truncated record at ")
    assert message.endswith("(a truncated or corrupt file; replace it, or leave it out of the inputs).")
    assert "\n" not in message
    assert not list((tmp_path / "cache").iterdir())  # no folder, finished or partial


def test_a_tfrecord_schema_naming_a_feature_no_record_has_is_refused(tmp_path):
    path = _write_tfrecord(tmp_path / "clicks.tfrecord", [_example(*row) for row in _rows(64)])
    schema = Schema("clicks-tfrecord", fields=FIELDS + (FieldSpec("device", min_count=1),),
                    label=LabelSpec("clicked"), reader="tfrecord")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before the fix: a warning and a build
        with pytest.raises(BadInputError) as caught:
            prepare_dataset(schema, path, tmp_path / "cache")
    assert str(caught.value) == (f"{path}: none of its 64 records has the features ['device'] that the schema uses; "
                                 f"its records have ['city', 'clicked', 'user']. Fix the schema's column names, or "
                                 f"leave the file out of the inputs.")


def test_a_tfrecord_without_the_label_feature_is_one_error_naming_it(tmp_path):
    path = _write_tfrecord(tmp_path / "clicks.tfrecord",
                           [_example(*row, with_label=False) for row in _rows(640)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before the fix: 640 "bad label ('')" skips
        with pytest.raises(BadInputError) as caught:
            prepare_dataset(_schema("tfrecord"), path, tmp_path / "cache")
    assert str(caught.value) == (f"{path}: no record among the first 640 has the label feature 'clicked' (its "
                                 f"records have ['city', 'user']); name the label feature in the schema's label "
                                 f"column.")


def test_good_tfrecords_still_build_with_sparse_features(tmp_path):
    """A feature absent from some records (a missing value) is not a missing feature."""
    records = [_example(*row) for row in _rows(40)]
    sparse = tf.train.Example.FromString(records[0])
    del sparse.features.feature["city"]
    records[0] = sparse.SerializeToString()
    data = prepare_dataset(_schema("tfrecord"), _write_tfrecord(tmp_path / "clicks.tfrecord", records),
                           tmp_path / "cache")
    assert data.report.rows_valid == 40 and data.report.rows_skipped == 0


# --- item 5: a truncated or damaged shard in a prepared folder ----------------------------------------------------

REPO = pathlib.Path(__file__).resolve().parents[2]
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ENVIRONMENT.pop("TF_CONFIG", None)


def _prepared(tmp_path) -> PreparedData:
    path = tmp_path / "clicks.csv"
    if not path.exists():
        write_lines(path, ["clicked,user,city"] + [f"{clicked},{user},{city}" for clicked, user, city in _rows(400)])
    return prepare_dataset(_schema("delimited"), path, tmp_path / "cache", rows_per_shard=160, rows_per_record=16)


def test_train_on_a_prepared_folder_with_a_truncated_shard_stops_before_training_naming_it(tmp_path):
    data = _prepared(tmp_path)
    shard = data.directory / data.shards["test"][0].file
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:size - 100])
    completed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--dataset=prepared", f"--data_path={data.directory}", "--model=dnn",
         "--scale=2", "--embedding_dim=4", "--batch_size=64", "--epochs=1", "--verbose=0", "--model_dir=run",
         "--export_dir="], cwd=tmp_path, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)
    assert completed.returncode != 0
    assert (f"{shard}: {size - 100} bytes, but the manifest's 40 rows in 3 records take {size} bytes (truncated); "
            f"the prepared data is damaged. Prepare it again (prepare_dataset with rebuild=True, or the Beam "
            f"pipeline), or restore the folder from a copy.") in completed.stderr
    assert "DataLossError" not in completed.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training


def test_the_shard_check_reads_small_folders_through_and_big_ones_by_size(tmp_path, monkeypatch):
    data = _prepared(tmp_path)
    shard = data.directory / data.shards["train"][1].file
    content = bytearray(shard.read_bytes())
    record_bytes = shards_lib.shard_bytes(16, 1, 2)
    content[record_bytes + 20] ^= 0xFF  # a flipped bit in the second record's payload: the size is unchanged
    shard.write_bytes(bytes(content))
    damaged = (f"{shard}: record 2: the data checksum does not match (corrupt file); the prepared data is damaged. "
               f"Prepare it again")
    with pytest.raises(shards_lib.ShardError, match=re.escape(damaged)):
        PreparedData.load(data.directory)  # "auto": a small folder is read through
    monkeypatch.setattr(shards_lib, "FULL_VERIFY_BYTES", 0)  # as for a folder past the limit
    assert PreparedData.load(data.directory).split_rows == data.split_rows  # sizes only: one stat per shard
    with pytest.raises(shards_lib.ShardError, match=re.escape(damaged)):
        PreparedData.load(data.directory, verify="full")
    shard.unlink()
    with pytest.raises(shards_lib.ShardError, match=re.escape(f"{shard}: missing; the prepared data is damaged.")):
        PreparedData.load(data.directory, verify="sizes")


def test_a_cached_build_with_a_damaged_shard_is_rebuilt_not_trusted(tmp_path, caplog):
    data = _prepared(tmp_path)
    expected = data.numpy_split("validation")
    shard = data.directory / data.shards["validation"][0].file
    shard.write_bytes(shard.read_bytes()[:-7])
    again = _prepared(tmp_path)
    assert again.directory == data.directory
    assert f"not reusing {data.directory}: {shard}: " in caplog.text
    np.testing.assert_array_equal(again.numpy_split("validation")[0], expected[0])
    np.testing.assert_array_equal(again.numpy_split("validation")[1], expected[1])


# --- item 3: a full disk while preparing data ---------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 5 MB file system (tmpfs; needs root, as CI runs): the data folder of the issue's report."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 5 MB tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 5 MB tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        unmounted = subprocess.run(["umount", str(folder)], capture_output=True, text=True)
        if unmounted.returncode != 0:  # a file left open there (a failure of the test): unmount anyway
            subprocess.run(["umount", "-l", str(folder)], check=True)
        assert unmounted.returncode == 0, f"files left open on the small disk: {unmounted.stderr.strip()}"


def _many_clicks(path: pathlib.Path, rows: int) -> pathlib.Path:
    """A CSV of `rows` rows (about 12 bytes each) with a small vocabulary: pass 1 writes almost nothing."""
    rng = np.random.default_rng(0)
    clicked, user, city = rng.integers(0, 2, rows), rng.integers(0, 50, rows), rng.integers(0, 2, rows)
    lines = [f"{c},u{u},{('paris', 'lyon')[t]}" for c, u, t in zip(clicked, user, city)]
    path.write_text("clicked,user,city\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_train_with_a_small_data_dir_stops_with_one_line_naming_the_folder_and_the_bytes(tmp_path, small_disk):
    _many_clicks(tmp_path / "clicks.csv", 300_000)
    (tmp_path / "schema.json").write_text(
        '{"name": "clicks", "delimiter": ",", "has_header": true, "label": {"column": "clicked"}, "fields": '
        '[{"name": "user", "kind": "categorical"}, {"name": "city", "kind": "categorical"}]}')
    completed = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--dataset=custom", "--schema=schema.json", "--data_path=clicks.csv",
         f"--data_dir={small_disk}", "--model=dnn", "--epochs=1", "--verbose=0", "--export_dir="],
        cwd=tmp_path, env=ENVIRONMENT, capture_output=True, text=True, timeout=600)
    assert completed.returncode not in (0, -7, 135)  # -7 / 135: the SIGBUS of the report
    found = re.search(rf"{re.escape(str(small_disk))}: preparing 300,000 rows \(the split order, the encoded rows "
                      rf"and their shards\) needs about ([\d,]+) bytes, ([\d,]+) are free; free space there or choose "
                      rf"another data folder \(train.py --data_dir, prepare_dataset's cache_dir\)\.$",
                      completed.stderr, re.MULTILINE)  # one line (a traceback above it until train.py prints it)
    assert found, completed.stderr[-2000:]
    needed, free = (int(number.replace(",", "")) for number in found.groups())
    assert free < 5 << 20 < needed
    assert list(small_disk.iterdir()) == []  # no partial build, nothing half-written
    assert "Bus error" not in completed.stderr


def test_the_split_order_on_a_full_disk_raises_instead_of_killing_the_process(small_disk):
    # 2M rows: an 8 MB memory map on a 5 MB disk. In a subprocess, so that a SIGBUS fails the test, not the suite.
    script = ("import sys\nfrom tf_multiembed.data import splits\n"
              "try:\n    splits.random_order(2_000_000, 0, path=sys.argv[1])\n"
              "except OSError as error:\n    print('OSError', error.errno, error.filename)\n")
    completed = subprocess.run([sys.executable, "-c", script, str(small_disk / "order.npy")], env=ENVIRONMENT,
                               capture_output=True, text=True, timeout=120, cwd=REPO)
    assert completed.returncode == 0, (completed.returncode, completed.stderr[-2000:])
    assert completed.stdout.strip() == f"OSError {errno.ENOSPC} {small_disk / 'order.npy'}"
    assert list(small_disk.iterdir()) == []


def test_a_write_that_runs_out_of_space_is_reported_and_leaves_nothing(tmp_path, small_disk, monkeypatch):
    """The space check passes (another writer fills the disk after it): the write that fails is reported, the
    unfinished build removed, and a later build with space is whole."""
    from tf_multiembed.data import space

    path = _many_clicks(tmp_path / "clicks.csv", 300_000)  # order and inverse fit (2.4 MB), the bucket files not
    monkeypatch.setattr(space, "free_bytes", lambda folder: 1 << 40)
    with pytest.raises(space.DiskSpaceError) as caught:
        prepare_dataset(_schema("delimited"), path, small_disk)
    message = str(caught.value)
    assert re.fullmatch(rf"{re.escape(str(small_disk))}: no space left on the device writing "
                        rf"{re.escape(str(small_disk))}/\S+ \([\d,]+ bytes free now\); the unfinished data "
                        rf"was removed\. Free space there or choose another data folder \(train.py --data_dir, "
                        rf"prepare_dataset's cache_dir\)\.", message), message
    assert caught.value.errno == errno.ENOSPC and "\n" not in message
    assert list(small_disk.iterdir()) == []
    monkeypatch.undo()
    data = prepare_dataset(_schema("delimited"), path, tmp_path / "cache")  # the same build with room is whole
    assert sum(data.split_rows.values()) == 300_000


def test_the_space_check_names_the_folder_the_bytes_needed_and_free(tmp_path, monkeypatch):
    """No tiny disk needed: the free-space probe says 1,000 bytes."""
    from tf_multiembed.data import space

    path = write_lines(tmp_path / "clicks.csv", ["clicked,user,city"] + [f"{c},{u},{t}" for c, u, t in _rows(100)])
    monkeypatch.setattr(space, "free_bytes", lambda folder: 1000)
    with pytest.raises(space.DiskSpaceError) as caught:
        prepare_dataset(_schema("delimited"), path, tmp_path / "cache")
    # 100 rows, 2 fields, random split: the order and its inverse 2 x (400 + 128) bytes; then the inverse 528, the
    # bucket rows 100 x 16 and the first bucket's shards (4 records x 16 + 100 x 12 = 1,264): 3,392; plus a 4 KB
    # block per file (3 shards, 2, 1 bucket): 3,392 + 24,576 = 27,968.
    assert str(caught.value) == (f"{tmp_path / 'cache'}: preparing 100 rows (the split order, the encoded rows and "
                                 f"their shards) needs about 27,968 bytes, 1,000 are free; free space there or choose "
                                 f"another data folder (train.py --data_dir, prepare_dataset's cache_dir).")
    assert [folder.name for folder in (tmp_path / "cache").iterdir()] == []


def test_the_synthetic_data_set_on_a_full_disk_is_reported_and_leaves_nothing(small_disk):
    from tf_multiembed.data import space
    from tf_multiembed.data.synthetic import synthetic_criteo_file

    with pytest.raises(space.DiskSpaceError, match=re.escape(
            f"{small_disk}: no space left on the device writing the synthetic data set (50,000 rows) (")):
        synthetic_criteo_file(small_disk, num_rows=50_000)  # about 8 MB of text
    assert list(small_disk.iterdir()) == []


def test_the_split_order_without_preallocation_writes_its_blocks_and_keeps_its_values(tmp_path, monkeypatch):
    """Where a file system cannot preallocate, the blocks are written as zeros first (ENOSPC then comes from
    ordinary writes); the permutation and its .npy header are those of the reference."""
    from tf_multiembed.data import splits

    def unsupported(descriptor, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    order = splits.random_order(70_000, 3, path=str(tmp_path / "order.npy"))
    np.testing.assert_array_equal(order, np.random.default_rng(3).permutation(70_000))
    del order
    np.testing.assert_array_equal(np.load(tmp_path / "order.npy"), np.random.default_rng(3).permutation(70_000))
