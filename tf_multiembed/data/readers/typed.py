"""Typed values (Parquet columns, tf.Example features) as the text cells every reader gives the schema.

The rules, the same for Parquet and TFRecord inputs and for the serving examples read from them:

- text (string, or bytes that are valid UTF-8) is kept as it is; bytes that are not UTF-8 skip the row
  ("bad_encoding"); a null, or an empty list, is an empty cell (a missing value);
- integers and booleans become decimal text ("7", "0"/"1"); floats are widened to float64 and written as integers
  when they are whole numbers below 2**53 ("1.0" -> "1", so a float 0/1 label reads as a binary label), else as
  Python's `repr` ("0.5", "nan", "inf"), which parses back to the same float64;
- lists: a multi-valued field joins the values' texts with its separator; a single-valued field takes a list of at
  most one value, and a longer one skips the row ("multiple_values");
- other types (dates, structs, ...) are an error that names the file and the column.
"""

import math
from typing import Any, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_WHOLE_LIMIT = float(2 ** 53)


def number_text(value: Any) -> str:
    """The text of one number under the rules above."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isfinite(value) and value == math.floor(value) and abs(value) < _WHOLE_LIMIT:
        return str(int(value))
    return repr(value)


def value_text(value: Any) -> Tuple[Optional[str], Optional[str]]:
    """(text, None) of one scalar value (bytes, str, number, None), or (None, detail) when it is not readable."""
    if value is None:
        return "", None
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8"), None
        except UnicodeDecodeError as error:
            return None, f"utf-8 decoding failed: {error.reason} at byte {error.start}"
    if isinstance(value, str):
        return value, None
    return number_text(value), None


def _float_texts(values: pa.Array) -> pa.Array:
    encoded = pc.dictionary_encode(values.cast(pa.float64()))
    texts = pa.array([number_text(value) for value in encoded.dictionary.to_pylist()], type=pa.string())
    return texts.take(encoded.indices)


def scalar_texts(values: pa.Array, where: str) -> Tuple[pa.Array, Optional[List[Tuple[int, str]]]]:
    """(text array with "" for nulls, [(index, detail)] of unreadable values or None) of a flat typed array."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        return scalar_texts(values.dictionary_decode(), where)
    bad = None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = values.cast(pa.string())
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        try:
            texts = values.cast(pa.binary()).cast(pa.string())
        except pa.ArrowInvalid:  # some value is not UTF-8: convert value by value
            converted = [value_text(value) for value in values.to_pylist()]
            bad = [(index, detail) for index, (_, detail) in enumerate(converted) if detail is not None]
            texts = pa.array([text or "" for text, _ in converted], type=pa.string())
    elif pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        texts = values.cast(pa.int64()).cast(pa.string())
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        texts = _float_texts(values)
    elif pa.types.is_null(kind):
        texts = pa.array([""] * len(values), type=pa.string())
    else:
        raise ValueError(f"{where} has type {kind}, which is not text, a number or a list of them; convert it "
                         f"(e.g. timestamps to integers) before preparing the data.")
    return texts.fill_null(""), bad


def column_texts(values: pa.Array, where: str, separator: Optional[str]) -> Tuple[pa.Array, List[Tuple[int, str,
                                                                                                          str]]]:
    """(text per row, [(row, reason, detail)] of rows to skip) of one column; `separator` is the field's separator
    when it is multi-valued, else None."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    bad: List[Tuple[int, str, str]] = []
    if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
        texts, unreadable = scalar_texts(values, where)
        bad.extend((row, "bad_encoding", f"{where}: {detail}") for row, detail in unreadable or ())
        return texts, bad
    values = values.cast(pa.list_(values.type.value_type)) if pa.types.is_large_list(values.type) else values
    lengths = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(values)
    flat_texts, unreadable = scalar_texts(flat, where)
    if unreadable:
        row_of_value = np.repeat(np.arange(len(values)), lengths)
        bad.extend((int(row_of_value[index]), "bad_encoding", f"{where}: {detail}") for index, detail in unreadable)
    if separator is not None:
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        texts = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat_texts), separator)
        return texts.fill_null(""), bad
    bad.extend((int(row), "multiple_values", f"{where}: {int(lengths[row])} values in a single-valued field")
               for row in np.flatnonzero(lengths > 1))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    taken = pa.array(np.where(lengths > 0, np.minimum(starts, max(len(flat_texts) - 1, 0)), 0))
    texts = flat_texts.take(taken) if len(flat_texts) else pa.array([""] * len(values), type=pa.string())
    texts = pc.if_else(pa.array(lengths > 0), texts, "")
    return texts, bad
