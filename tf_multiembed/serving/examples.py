"""Raw example rows for warm-up requests and checks: read from the data's own files, or made from vocabularies."""

import math
from typing import Any, Dict, List, Sequence, Union

from tf_multiembed import types
from tf_multiembed.data import raw_features_from_cells
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import vocabulary as vocabulary_lib
from tf_multiembed.data.quality import BadInputTracker
from tf_multiembed.data.records import make_reader


def raw_columns_from_files(schema: schema_lib.Schema, input_paths: Union[types.PathLike, Sequence[types.PathLike]],
                           num_rows: int) -> Dict[str, List[str]]:
    """The first `num_rows` rows of the input files as raw columns `{feature name: [cell, ...]}` (text cells, as the
    data's reader returns them; "" = missing).

    Example:
        >>> columns = raw_columns_from_files(criteo_schema(), "train.txt", 8)  # doctest: +SKIP
    """
    columns: Dict[str, List[str]] = {field.name: [] for field in schema.fields}
    taken = 0
    for chunk in make_reader(schema, input_paths).read(BadInputTracker()):
        position = {name: index for index, name in enumerate(chunk.column_names)}
        for row in chunk.rows:
            for field in schema.fields:
                columns[field.name].append(row[position[field.column]])
            taken += 1
            if taken >= num_rows:
                return columns
    if not taken:
        raise ValueError(f"raw_columns_from_files: no readable rows in {input_paths}.")
    return columns


def raw_features_from_files(schema: schema_lib.Schema, input_paths: Union[types.PathLike, Sequence[types.PathLike]],
                            num_rows: int) -> Dict[str, List[Any]]:
    """Like `raw_columns_from_files`, with numeric cells as floats (NaN = missing): the signature's input types."""
    features = raw_features_from_cells(schema, raw_columns_from_files(schema, input_paths, num_rows))
    return {name: values.tolist() for name, values in features.items()}


def raw_columns_from_vocabularies(schema: schema_lib.Schema, vocab_dir: types.PathLike,
                                  num_rows: int) -> Dict[str, List[Any]]:
    """Rows made of known vocabulary tokens for categorical features (made-up tokens for hash-bucket fields, which
    have no vocabulary) and small numbers (and one NaN) for numeric ones: warm-up input when no raw file is at hand.

    Example:
        >>> raw_columns_from_vocabularies(schema, data.vocab_dir, 4)  # doctest: +SKIP
    """
    numbers = [0.0, 1.0, 10.0, math.nan]
    columns: Dict[str, List[Any]] = {}
    for field in schema.fields:
        if field.kind == schema_lib.NUMERIC:
            columns[field.name] = [numbers[row % len(numbers)] for row in range(num_rows)]
            continue
        if field.hash_buckets is not None:
            columns[field.name] = [f"value{row}" for row in range(num_rows)]
            continue
        first_output = field.name if not field.is_list else f"{field.name}_0"
        tokens = vocabulary_lib.read_vocabulary(vocabulary_lib.vocabulary_path(vocab_dir, first_output)) or [""]
        columns[field.name] = [tokens[row % len(tokens)] for row in range(num_rows)]
    return columns
