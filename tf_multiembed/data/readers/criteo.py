"""The Criteo Display Advertising Challenge layout (Kaggle `train.txt`, and the day files of the 1 TB log).

No header; 40 tab-separated columns per line: the label (0/1), I1..I13 (integers, may be empty or negative) and
C1..C26 (8-hex-digit hashed categories, may be empty). `tf_multiembed.data.schema.criteo_schema()` reads it with the
delimited reader; this module names its columns.
"""

from typing import Tuple

LABEL_COLUMN = "label"
NUM_NUMERIC = 13
NUM_CATEGORICAL = 26


def column_names(num_numeric: int = NUM_NUMERIC, num_categorical: int = NUM_CATEGORICAL) -> Tuple[str, ...]:
    """The column names of a Criteo-layout file: label, I1..I<num_numeric>, C1..C<num_categorical>.

    Example:
        >>> len(column_names())
        40
    """
    if num_numeric < 0 or num_categorical < 0 or num_numeric + num_categorical == 0:
        raise ValueError(f"A Criteo-layout file needs at least one field; got {num_numeric} numeric and "
                         f"{num_categorical} categorical.")
    return ((LABEL_COLUMN,) + tuple(f"I{i}" for i in range(1, num_numeric + 1))
            + tuple(f"C{i}" for i in range(1, num_categorical + 1)))
