"""The columnar build engine: block boundaries and both read paths, counts spilled to disk, progress logs, the ingest
report and fingerprint in the manifest, cache reuse against in-place edits, and leftovers of killed builds."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pytest

from data_test_files import SMALL_CRITEO_LINES, small_criteo_schema, write_lines
from engine_cases import CASES, canonical_outputs
from test_data_engine_goldens import GOLDENS
from tf_multiembed.data import PreparedData, prepare_dataset
from tf_multiembed.data import build as build_lib
from tf_multiembed.data.counting import TokenCounter, token_hashes
from tf_multiembed.data.readers import DelimitedReader
from tf_multiembed.data.schema import FieldSpec, LabelSpec, Schema


@pytest.mark.parametrize("name", ["bad_criteo_lines", "criteo_like_files", "quoted_csv", "avazu_like"])
def test_small_blocks_give_the_golden_outputs_and_use_both_read_paths(name, tmp_path, monkeypatch):
    """Blocks of about 256 bytes: lines cut at block ends, Arrow on clean pieces, the exact row path on pieces with a
    bad line, a quote, a byte-order mark or a carriage return; the outputs stay the recorded ones."""
    calls = {"arrow": 0, "rows": 0}
    arrow_block, row_block = DelimitedReader._arrow_block, DelimitedReader._row_block

    def counted_arrow(self, *args):
        block = arrow_block(self, *args)
        calls["arrow"] += block is not None
        return block

    def counted_rows(self, *args):
        calls["rows"] += 1
        return row_block(self, *args)

    monkeypatch.setattr(DelimitedReader, "_arrow_block", counted_arrow)
    monkeypatch.setattr(DelimitedReader, "_row_block", counted_rows)
    schema, paths, kwargs = CASES[name](tmp_path)
    settings = build_lib.BuildSettings(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = build_lib.build(schema, paths, tmp_path / "cache", settings, block_bytes=256)
    outputs, golden = canonical_outputs(PreparedData.load(folder), tmp_path), GOLDENS["cases"][name]
    for key in ("vocabularies", "report", "splits"):
        assert outputs[key] == golden[key], key
    if name in ("bad_criteo_lines", "quoted_csv", "criteo_like_files"):  # bad lines, quotes, a byte-order mark
        assert calls["rows"] > 0, calls
    if name in ("criteo_like_files", "avazu_like"):  # Arrow reads the clean pieces: most of them
        assert calls["arrow"] > 10 * calls["rows"], calls


def test_counts_spilled_to_disk_equal_counts_in_memory(tmp_path, caplog):
    schema, paths, kwargs = CASES["criteo_like_files"](tmp_path)
    settings = build_lib.BuildSettings(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_memory = PreparedData.load(build_lib.build(schema, paths, tmp_path / "a", settings))
        with caplog.at_level("INFO", logger="tf_multiembed.data"):
            spilled = PreparedData.load(build_lib.build(schema, paths, tmp_path / "b", settings, block_bytes=4096,
                                                        count_memory_bytes=2048))
    assert "token counts spilled" in caplog.text and "spilled token counts" in caplog.text
    assert canonical_outputs(spilled, tmp_path) == canonical_outputs(in_memory, tmp_path)


def test_token_counter_merges_spills_and_keeps_tokens_reaching_min_count(tmp_path):
    counter = TokenCounter(num_fields=2, work_dir=tmp_path, memory_bytes=1, partitions=4)
    for _ in range(3):  # every add spills
        counter.add([(0, pa.array(["a", "b", ""]), np.array([2, 1, 5])), (1, pa.array(["a"]), np.array([1]))])
    assert len(counter.spill_files) >= 3
    assert counter.result([3, 2]) == {0: {"a": 6, "b": 3, "": 15}, 1: {"a": 3}}
    assert not list(tmp_path.iterdir())  # spill files removed


def test_token_hashes_depend_on_the_text_only():
    tokens = pa.array(["", "a", "ab", "ba", "a", "", "x" * 100, "ab"])
    hashes = token_hashes(tokens)
    assert hashes[1] == hashes[4] and hashes[0] == hashes[5] and hashes[2] == hashes[7]
    assert len({int(value) for value in hashes[[0, 1, 2, 3, 6]]}) == 5
    np.testing.assert_array_equal(token_hashes(tokens.slice(3)), hashes[3:])  # an offset array


def test_progress_is_logged_with_rate_and_eta(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(build_lib, "PROGRESS_SECONDS", 0.0)
    path = write_lines(tmp_path / "data.tsv", SMALL_CRITEO_LINES * 200)
    with caplog.at_level("INFO", logger="tf_multiembed.data.build"):
        build_lib.build(small_criteo_schema(), path, tmp_path / "cache", block_bytes=1024)
    assert any(record.getMessage().startswith("pass 1 (count): ") and "lines/s, ETA " in record.getMessage()
               for record in caplog.records), caplog.text
    assert "pass 2 (encode): 1,200 lines in" in caplog.text


def test_ingest_report_and_fingerprint_are_in_the_manifest(tmp_path):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    data = prepare_dataset(small_criteo_schema(), path, tmp_path / "cache")
    manifest = json.loads((data.directory / "manifest.json").read_text())
    assert manifest["report"] == data.report.to_dict()
    assert set(data.report.passes) == {"count", "order", "encode", "shards"}
    for step in ("count", "encode"):
        assert data.report.passes[step]["lines"] == 6 and data.report.passes[step]["lines_per_s"] > 0
    assert data.report.passes["count"]["input_bytes"] == path.stat().st_size
    content = hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["inputs"][0]["sha256"] == content
    assert data.data_fingerprint == "sha256:" + hashlib.sha256(content.encode()).hexdigest()
    assert data.cache_key == manifest["cache_key"] and data.directory.name.endswith(data.cache_key[:16])
    assert manifest["min_counts"] == {"I1": 2, "I2": 2, "C1": 2, "C2": 2}


def test_an_input_edited_in_place_with_restored_times_is_rebuilt(tmp_path, monkeypatch):
    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    schema = small_criteo_schema(min_count=1)
    first = prepare_dataset(schema, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    first_labels = first.numpy_split("train")[1]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the change time moves, the content does not

    def must_not_build(*args, **kwargs):
        raise AssertionError("the cached build should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(build_lib, "_build_into", must_not_build)
        assert prepare_dataset(schema, path, tmp_path / "cache", split="time",
                               split_fractions=(1, 0, 0)).directory == first.directory
    flipped = [("1" if line[0] == "0" else "0") + line[1:] for line in SMALL_CRITEO_LINES]  # same size
    write_lines(path, flipped)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    again = prepare_dataset(schema, path, tmp_path / "cache", split="time", split_fractions=(1, 0, 0))
    assert again.directory == first.directory  # the same cache entry (same key), rebuilt
    np.testing.assert_array_equal(again.numpy_split("train")[1], 1 - first_labels)


KILLED_BUILD = """
import os, signal, sys
from tf_multiembed.data import build, prepare_dataset
from tf_multiembed.data.schema import criteo_schema

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

build._encode_pass = killed
prepare_dataset(criteo_schema(num_numeric=2, num_categorical=2, min_count=2), sys.argv[1], sys.argv[2])
"""


def test_leftovers_of_killed_builds_are_removed_and_live_builds_kept(tmp_path):
    import fcntl

    path = write_lines(tmp_path / "small.tsv", SMALL_CRITEO_LINES)
    cache = tmp_path / "cache"
    repository = pathlib.Path(__file__).resolve().parents[2]
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(path), str(cache)], capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(repository)}, timeout=120)
    assert killed.returncode == -9
    dead = [folder for folder in cache.iterdir() if ".partial-" in folder.name]
    assert len(dead) == 1 and (dead[0] / "vocab").is_dir()  # it died in pass 2
    live = cache / ".other-0123.partial-abc"
    live.mkdir()
    with open(live / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a build running in another process
        data = prepare_dataset(small_criteo_schema(), path, cache)
        assert not dead[0].exists() and live.exists()
    assert data.report.rows_valid == 6
    assert sorted(folder.name for folder in cache.iterdir()) == sorted([data.directory.name, live.name])
    build_lib.remove_dead_partials(cache)  # its lock is released now
    assert not live.exists()
