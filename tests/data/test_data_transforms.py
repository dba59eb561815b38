"""Transforms: golden Criteo buckets, and the Python and TensorFlow twins agreeing value for value."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.data import transforms


def _tensorflow_tokens(name, values, dtype=tf.float64):
    tokens, missing = transforms.get_transform(name).tensorflow(tf.constant(values, dtype=dtype))
    return [None if is_missing else token.decode() for token, is_missing in zip(tokens.numpy(), missing.numpy())]


@pytest.mark.parametrize("raw, expected", [
    ("", None),            # empty: missing (the schema turns it into its missing token)
    ("-5", "-7"),          # v <= 2: v - 2
    ("-1", "-3"),
    ("0", "-2"),
    ("1", "-1"),
    ("2", "0"),
    ("3", "1"),            # ln(3)^2 = 1.207
    ("7", "3"),            # ln(7)^2 = 3.787
    ("8", "4"),            # ln(8)^2 = 4.324
    ("1000", "47"),        # ln(1000)^2 = 47.717
    ("1000000000", "429"),  # ln(1e9)^2 = 429.48
    ("2.5", "0"),          # 2 < v < e: floor(0.84)
    ("1.5", "-1"),         # floor(1.5) - 2
    ("nan", None),
    ("inf", None),
])
def test_criteo_log_bucket_golden_values(raw, expected):
    assert transforms.get_transform("criteo_log_bucket").python(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "1,5", "0x10", " "])
def test_criteo_log_bucket_rejects_non_numbers(raw):
    with pytest.raises(ValueError, match="expected a number"):
        transforms.get_transform("criteo_log_bucket").python(raw)


def test_criteo_log_bucket_twins_agree_on_edge_values():
    values = [-1e6, -3, -2.5, -1, 0, 0.5, 1, 1.99, 2, 2.0000001, 2.5, 2.718281828459045, 3, 4, 5, 1000, 123456789,
              2.0**53, 2.0**60, 1e300, math.nan, math.inf, -math.inf]
    python = [transforms.criteo_log_bucket_value(value) for value in values]
    assert _tensorflow_tokens("criteo_log_bucket", values) == python
    assert python[:7] == ["-1000002", "-5", "-5", "-3", "-2", "-2", "-1"]
    assert python[-3:] == [None, None, None]


def test_criteo_log_bucket_twins_agree_next_to_every_bucket_boundary():
    # Integers next to exp(sqrt(k)) are where a one-ulp difference in log would flip the bucket.
    values = sorted({int(math.exp(math.sqrt(k))) + offset for k in range(1, 1350) for offset in (-2, -1, 0, 1, 2)
                     if 2 < int(math.exp(math.sqrt(k))) + offset < 2**53})
    python = [str(math.floor(math.log(value) ** 2)) for value in values]  # the paper's formula itself
    assert _tensorflow_tokens("criteo_log_bucket", values) == python


@pytest.mark.parametrize("dtype", [tf.float32, tf.int32, tf.int64])
def test_criteo_log_bucket_tensorflow_accepts_other_number_dtypes(dtype):
    assert _tensorflow_tokens("criteo_log_bucket", [-1, 0, 3, 1000], dtype=dtype) == ["-3", "-2", "1", "47"]


def test_thresholds_are_the_first_values_of_each_bucket():
    thresholds = transforms.criteo_log_thresholds()
    assert thresholds[0] == pytest.approx(math.e)
    for k, threshold in enumerate(thresholds[:200], start=1):
        assert math.floor(math.log(threshold) ** 2) == k
        assert math.floor(math.log(np.nextafter(threshold, 0)) ** 2) == k - 1


def test_identity_twins_agree():
    values = ["a", "", "NULL", " x ", "é"]
    identity = transforms.get_transform("identity")
    assert [identity.python(value) for value in values] == ["a", None, "NULL", " x ", "é"]
    assert _tensorflow_tokens("identity", values, dtype=tf.string) == ["a", None, "NULL", " x ", "é"]


def test_unknown_transform_names_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown transform 'log'.*criteo_log_bucket.*identity"):
        transforms.get_transform("log")


ODD_NUMBER_CELLS = ["+5", " 5", "5 ", "05", "1_000", "1e5", ".5", "5.", "inf", "nan", "NaN", "-inf", "Infinity", "-0",
                    "0x10", "1e400", "1e-400", "", "1.5e-3", "+.5e+2", "\u0665", "-1e300", "1e300", "abc", "2",
                    "9007199254740993", "-9007199254740993", "12345678901234567890123", "1e0000000005",
                    "2.0000000000000004", "-2.5", "3", "1000", "1e9"]


def test_arrow_twin_equals_the_python_twin_cell_for_cell():
    """The build's vectorized twin: the same token, missing value or refusal as the Python reference, on odd syntax
    (which it hands to Python) and on both sides of every 7th bucket boundary (which Arrow parses)."""
    import pyarrow as pa

    cells = list(ODD_NUMBER_CELLS)
    for threshold in transforms.criteo_log_thresholds()[::7]:
        for value in (threshold, np.nextafter(threshold, 0), np.nextafter(threshold, np.inf)):
            cells += [repr(float(value)), str(int(value))]
    transform = transforms.get_transform("criteo_log_bucket")
    tokens, unreadable = transform.arrow(pa.array(cells))
    for cell, token, refused in zip(cells, tokens.to_pylist(), unreadable):
        try:
            expected, expected_refusal = transform.python(cell) or "", False
        except ValueError:
            expected, expected_refusal = "", True
        assert (token, bool(refused)) == (expected, expected_refusal), cell
    identity_tokens, identity_refused = transforms.get_transform("identity").arrow(pa.array(["a", ""]))
    assert identity_tokens.to_pylist() == ["a", ""] and not identity_refused.any()
