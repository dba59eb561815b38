"""Vocabularies: ordering, thresholds, caps, and plain-text files that StringLookup and lookup tables read alike."""

import pytest
import tensorflow as tf

from tf_multiembed.data import vocabulary


def test_min_count_and_frequency_order():
    counts = {"b": 3, "a": 3, "c": 1, "d": 5, None: 9, "": 4}
    assert vocabulary.build_vocabulary(counts, min_count=2) == ["d", "a", "b"]
    assert vocabulary.build_vocabulary(counts, min_count=1) == ["d", "a", "b", "c"]
    assert vocabulary.build_vocabulary(counts, min_count=6) == []


def test_sorted_order_and_token_cap():
    counts = {"b": 3, "a": 1, "c": 2, "10": 7, "9": 7}
    assert vocabulary.build_vocabulary(counts, order="sorted") == ["10", "9", "a", "b", "c"]  # text order
    assert vocabulary.build_vocabulary(counts, max_tokens=3) == ["10", "9", "b"]
    assert vocabulary.build_vocabulary(counts, order="sorted", max_tokens=3) == ["10", "9", "b"]
    with pytest.raises(ValueError, match="`order` must be one of"):
        vocabulary.build_vocabulary(counts, order="random")


def test_unstorable_tokens_are_left_out():
    counts = {"[UNK]": 5, "a\nb": 5, "ends\r": 5, "": 5, "ok": 1}
    assert vocabulary.build_vocabulary(counts) == ["ok"]
    with pytest.raises(ValueError, match=r"cannot be stored in a vocabulary file"):
        vocabulary.write_vocabulary("unused.txt", ["[UNK]"])


ODD_TOKENS = ["plain", " leading", "trailing ", "tab\tinside", "caf\u00e9", "\u4e2d\u6587", "x\x0by", "a\x85b",
              "u\u2028v", "1e3", "NULL"]


def test_odd_tokens_round_trip_and_match_string_lookup(tmp_path):
    path = tmp_path / "field.txt"
    vocabulary.write_vocabulary(path, ODD_TOKENS)
    assert vocabulary.read_vocabulary(path) == ODD_TOKENS
    probe = tf.constant(ODD_TOKENS + ["unseen", ""])
    expected = list(range(1, len(ODD_TOKENS) + 1)) + [0, 0]
    lookup = tf.keras.layers.StringLookup(vocabulary=str(path), num_oov_indices=1)
    assert lookup(probe).numpy().tolist() == expected
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(str(path), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                                      tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=1), default_value=0)
    assert table.lookup(probe).numpy().tolist() == expected


def test_repeated_tokens_and_missing_files_are_errors(tmp_path):
    with pytest.raises(ValueError, match="repeats tokens"):
        vocabulary.write_vocabulary(tmp_path / "v.txt", ["a", "a"])
    with pytest.raises(FileNotFoundError, match="missing.txt does not exist"):
        vocabulary.read_vocabulary(tmp_path / "missing.txt")


def test_empty_vocabulary_file_cannot_be_read_by_tensorflow(tmp_path):
    """Why RawFeatureEncoder treats a field without tokens as all-OOV instead of building a table for it."""
    path = tmp_path / "empty.txt"
    vocabulary.write_vocabulary(path, [])
    assert vocabulary.read_vocabulary(path) == []
    with pytest.raises(tf.errors.OutOfRangeError):
        tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(str(path), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                                          tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=1), default_value=0)
