"""Value transforms with Python, Arrow and TensorFlow twins: the offline build and the serving graph encode
identically.

A transform turns one raw value into a vocabulary token, or reports it missing:

- the Python twin takes the raw text of a file cell and returns a token, `None` for a missing value, or raises
  `ValueError` for a value it cannot read (the build then skips that row as bad input); it is the reference;
- the Arrow twin does the same for a whole array of cells at once (what the build runs): it returns the tokens
  ("" where missing or unreadable) and which cells are unreadable; cells whose syntax it does not handle itself go
  through the Python twin, so the two agree on every string (tested on edge cases);
- the TensorFlow twin takes a batch of raw values `[B]` and returns `(tokens: tf.string [B], missing: tf.bool [B])`.

Transforms:

- `identity` (categorical): the text itself; the empty string is missing.
- `criteo_log_bucket` (numeric): the paper's Criteo integer discretisation, `floor(ln(v)^2)` for v > 2 and
  `floor(v) - 2` otherwise (`v - 2` for the integers of Criteo); empty text and non-finite numbers are missing.

Example:
    >>> get_transform("criteo_log_bucket").python("1000")
    '47'
"""

import dataclasses
import functools
import math
import struct
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import tensorflow as tf

# Above 2**53 a float64 no longer holds every integer; the exact threshold table stops there and both twins fall
# back to the formula (TensorFlow's float64 log may differ from libm's by one ulp there, which no CTR log reaches).
_EXACT_LIMIT = float(2**53)


def _double_bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", value))[0]


def _bits_double(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", bits))[0]


def _log_squared_floor(value: float) -> int:
    return math.floor(math.log(value) ** 2)


@functools.lru_cache(maxsize=1)
def criteo_log_thresholds() -> Tuple[float, ...]:
    """The smallest float64 `v > 2` with `floor(ln(v)^2) >= k`, for k = 1, 2, ... up to 2**53.

    `floor(math.log(v) ** 2)` is monotone in v, so a bucket is the number of thresholds <= v. The TensorFlow twin
    looks buckets up in this table instead of computing `tf.math.log`, whose float64 result differs from the C
    library's by one ulp for about 5% of inputs and would flip the bucket of integers lying next to a boundary.
    """
    thresholds: List[float] = []
    k = 1
    while True:
        if _log_squared_floor(_EXACT_LIMIT) < k:
            return tuple(thresholds)
        low, high = _double_bits(2.0), _double_bits(_EXACT_LIMIT)  # f(low) < k <= f(high)
        while high - low > 1:  # positive doubles order like their bit patterns
            middle = (low + high) // 2
            if _log_squared_floor(_bits_double(middle)) >= k:
                high = middle
            else:
                low = middle
        thresholds.append(_bits_double(high))
        k += 1


def criteo_log_bucket_value(value: float) -> Optional[str]:
    """The Criteo bucket token of one number, or None when it is missing (NaN or infinite).

    Example:
        >>> [criteo_log_bucket_value(v) for v in (-1, 0, 1, 2, 3, 1000)]
        ['-3', '-2', '-1', '0', '1', '47']
    """
    if not math.isfinite(value):
        return None
    if value > 2:
        return str(_log_squared_floor(value))
    return str(math.floor(value) - 2)


def _criteo_log_bucket_python(raw: str) -> Optional[str]:
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    return criteo_log_bucket_value(value)


def _criteo_log_bucket_tensorflow(values: "tf.Tensor") -> Tuple["tf.Tensor", "tf.Tensor"]:
    import tensorflow as tf  # the TensorFlow twins import it when they run, so the offline build never loads it

    values = tf.cast(values, tf.float64)
    missing = tf.logical_not(tf.math.is_finite(values))
    safe = tf.where(missing, tf.zeros_like(values), values)
    above_two = safe > 2.0
    thresholds = tf.constant(criteo_log_thresholds(), dtype=tf.float64)
    flat = tf.reshape(safe, [1, -1])
    table_bucket = tf.reshape(tf.searchsorted(thresholds[tf.newaxis, :], flat, side="right", out_type=tf.int64),
                              tf.shape(values))
    # Beyond the table (v > 2**53) use the formula itself; `tf.where` keeps log's NaN for v <= 0 out of the result.
    formula_bucket = tf.cast(tf.floor(tf.square(tf.math.log(tf.maximum(safe, 3.0)))), tf.int64)
    log_bucket = tf.where(safe > _EXACT_LIMIT, formula_bucket, table_bucket)
    small_bucket = tf.cast(tf.floor(safe), tf.int64) - 2
    bucket = tf.where(above_two, log_bucket, small_bucket)
    return tf.strings.as_string(bucket), missing


# Numbers in this syntax parse to the same float64 in Arrow (fast_float, correctly rounded) as in Python's float();
# anything else (spaces, underscores, "infinity", other digits) is parsed by Python's float() itself.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?$"


def blank_cells(values: pa.Array) -> np.ndarray:
    """bool `[n]`: the cells that are empty or whitespace only (a null is not blank text).

    Example:
        >>> blank_cells(pa.array(["1", " ", "", None])).tolist()
        [False, True, True, False]
    """
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), False).to_numpy(zero_copy_only=False)


def parse_numbers(values: pa.Array, blank: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """`(float(value) as float64 [n], readable bool [n])` of an Arrow string array: exactly Python's `float()`
    (NaN where it raises, "" included), computed by Arrow for plain decimal syntax and by Python for the rest.
    `blank`: the caller's `blank_cells(values)`, when it has them already.

    Example:
        >>> parse_numbers(pa.array(["1.5", " 2", "x", ""]))[1].tolist()
        [True, True, False, False]
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    plain = pc.match_substring_regex(values, _PLAIN_NUMBER).to_numpy(zero_copy_only=False)
    numbers = pc.cast(pc.if_else(pa.array(plain), values, "0"), pa.float64()).to_numpy(zero_copy_only=False).copy()
    readable = plain.copy()
    # The rest by Python's float(), once per distinct text; blank text (float() refuses it) needs no Python.
    blank = blank_cells(values) if blank is None else blank
    numbers[blank] = math.nan
    parsed: Dict[str, Tuple[float, bool]] = {}
    for index in np.flatnonzero(~plain & ~blank):
        text = values[int(index)].as_py()
        if text not in parsed:
            try:
                parsed[text] = (float(text), True)
            except ValueError:
                parsed[text] = (math.nan, False)
        numbers[index], readable[index] = parsed[text]
    return numbers, readable


def _criteo_log_bucket_arrow(values: pa.Array) -> Tuple[pa.Array, np.ndarray]:
    numbers, readable = parse_numbers(values)
    finite = readable & np.isfinite(numbers)
    safe = np.where(finite, numbers, 0.0)
    buckets = np.where(safe > 2, np.searchsorted(np.asarray(criteo_log_thresholds()), safe, side="right"),
                       np.floor(np.clip(safe, -_EXACT_LIMIT, 2.0)) - 2).astype(np.int64)
    tokens = pc.cast(pa.array(buckets), pa.string())
    extreme = np.flatnonzero(finite & (np.abs(safe) > _EXACT_LIMIT))  # beyond the table: the formula itself
    if len(extreme):
        texts = tokens.to_pylist()
        for index in extreme:
            texts[index] = criteo_log_bucket_value(float(safe[index]))
        tokens = pa.array(texts, type=pa.string())
    empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
    return pc.if_else(pa.array(finite), tokens, ""), ~readable & ~empty


def _identity_arrow(values: pa.Array) -> Tuple[pa.Array, np.ndarray]:
    return values, np.zeros(len(values), dtype=bool)


def _identity_python(raw: str) -> Optional[str]:
    return raw if raw != "" else None


def _identity_tensorflow(values: "tf.Tensor") -> Tuple["tf.Tensor", "tf.Tensor"]:
    import tensorflow as tf

    return values, tf.equal(values, "")


@dataclasses.dataclass(frozen=True)
class Transform:
    """A named raw-value transform with its Python and TensorFlow twins.

    Attributes:
        name: the name used in schemas.
        input_kind: "string" (raw text, served as `tf.string`) or "number" (served as a float).
        python: raw cell text -> token, None when missing; raises ValueError on unreadable input.
        arrow: Arrow string array of cells -> (tokens, "" where missing or unreadable; unreadable bool [n]).
        tensorflow: raw batch `[B]` -> `(tokens tf.string [B], missing tf.bool [B])`.
    """

    name: str
    input_kind: str
    python: Callable[[str], Optional[str]]
    arrow: Callable[[pa.Array], Tuple[pa.Array, np.ndarray]]
    tensorflow: Callable[[object], Tuple[object, object]]


TRANSFORMS = {
    "identity": Transform("identity", "string", _identity_python, _identity_arrow, _identity_tensorflow),
    "criteo_log_bucket": Transform("criteo_log_bucket", "number", _criteo_log_bucket_python,
                                   _criteo_log_bucket_arrow, _criteo_log_bucket_tensorflow),
}


def get_transform(name: str) -> Transform:
    """The transform registered under `name`; raises ValueError listing the known names otherwise."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise ValueError(f"Unknown transform {name!r}; expected one of {sorted(TRANSFORMS)}.") from None

