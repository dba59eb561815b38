"""Vocabularies: per field, the tokens seen at least `min_count` times, saved as plain text (one token per line).

Line k (0-based) of `<vocab_dir>/<field_name>.txt` is id k + 1; anything else (unseen, rare, missing) is id 0. This
is exactly what `tf.keras.layers.StringLookup(vocabulary=path, num_oov_indices=1)` and a
`tf.lookup.TextFileInitializer` table with `value_index_offset=1` compute, so serving reuses the files as they are.
"""

import pathlib
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, cast

from tf_multiembed import types
from tf_multiembed.data import schema as schema_lib

# StringLookup's own OOV token cannot appear in its vocabulary file; such a value is treated as OOV (id 0).
RESERVED_TOKENS = frozenset({"[UNK]"})
VOCABULARY_SUFFIX = ".txt"


def is_storable(token: object) -> bool:
    """Whether a token can be a vocabulary line (non-empty text without a line end, not a reserved token)."""
    return (isinstance(token, str) and token != "" and "\n" not in token and not token.endswith("\r")
            and token not in RESERVED_TOKENS)


def build_vocabulary(counts: Mapping[str, int], min_count: int = 1, order: str = schema_lib.FREQUENCY_ORDER,
                     max_tokens: Optional[int] = None) -> List[str]:
    """The tokens with at least `min_count` occurrences, in id order.

    Args:
        counts: occurrences per token (None and other unstorable keys are ignored).
        min_count: the minimum count to get an id of its own.
        order: "frequency" (descending count, ties by token) or "sorted" (by token).
        max_tokens: keep only the most frequent `max_tokens` (ties by token) before ordering.

    Example:
        >>> build_vocabulary({"b": 3, "a": 3, "c": 1, "d": 5}, min_count=2)
        ['d', 'a', 'b']
    """
    if order not in schema_lib.VOCABULARY_ORDERS:
        raise ValueError(f"`order` must be one of {list(schema_lib.VOCABULARY_ORDERS)}, got {order!r}.")
    kept = [(token, count) for token, count in counts.items() if count >= min_count and is_storable(token)]
    kept.sort(key=lambda item: (-item[1], item[0]))
    if max_tokens is not None:
        kept = kept[:max_tokens]
    tokens = [token for token, _ in kept]
    return sorted(tokens) if order == schema_lib.SORTED_ORDER else tokens


def vocabulary_path(vocab_dir: types.PathLike, field_name: str) -> pathlib.Path:
    """`<vocab_dir>/<field_name>.txt`."""
    return pathlib.Path(vocab_dir) / f"{field_name}{VOCABULARY_SUFFIX}"


def write_vocabulary(path: types.PathLike, tokens: Sequence[str]) -> None:
    """Writes one token per line (UTF-8, "\\n" line ends)."""
    bad = [token for token in tokens if not is_storable(token)]
    if bad:
        raise ValueError(f"{path}: tokens {bad[:5]!r} cannot be stored in a vocabulary file.")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{path}: the vocabulary repeats tokens.")
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(f"{token}\n" for token in tokens)


def read_vocabulary(path: types.PathLike) -> List[str]:
    """Reads a vocabulary file back (only "\\n" separates tokens, as TensorFlow reads it)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Vocabulary file {path} does not exist.")
    text = path.read_bytes().decode("utf-8")
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


def token_ids(tokens: Iterable[str]) -> Dict[str, int]:
    """{token: id} with ids starting at 1 (0 is OOV)."""
    return {token: index for index, token in enumerate(tokens, start=1)}


def build_schema_vocabularies(schema: schema_lib.Schema,
                              counts: Mapping[str, Mapping[str, int]]) -> Dict[str, List[str]]:
    """{field name: tokens} for every field with a vocabulary (not `hash_buckets`), from {field name: token counts},
    using each field's resolved minimum count and max_tokens."""
    min_counts = schema.resolved_min_counts()
    return {field.name: build_vocabulary(counts[field.name], cast(int, min_counts[field.name]),  # None: hash fields
                                         schema.vocabulary_order, field.max_tokens)
            for field in schema.fields if field.hash_buckets is None and field.treatment is None}


def write_schema_vocabularies(schema: schema_lib.Schema, vocabularies: Mapping[str, Sequence[str]],
                              vocab_dir: types.PathLike,
                              boundaries: Optional[Mapping[str, Sequence[float]]] = None) -> List[int]:
    """Writes one file per encoded column (each slot of a multi-valued field gets a copy of the field's tokens) and
    returns the vocabulary sizes (tokens + 1 for the OOV id; len(boundaries) + 2 for bucketized numeric fields, whose
    `boundaries` come from pass 1; hash_buckets + 1 for hash-bucket fields, which have no
    file) in `schema.field_names` order."""
    vocab_dir = pathlib.Path(vocab_dir)
    vocab_dir.mkdir(parents=True, exist_ok=True)
    sizes = []
    for field in schema.fields:
        if field.hash_buckets is not None:
            sizes.extend([field.hash_buckets + 1] * len(field.output_names))
            continue
        if field.treatment is not None:  # bucketized: boundaries + 2 ids (0 missing); float fields: no id column
            if field.output_names:
                sizes.append(len((boundaries or {})[field.name]) + 2)
            continue
        tokens = vocabularies[field.name]
        for output_name in field.output_names:
            write_vocabulary(vocabulary_path(vocab_dir, output_name), tokens)
            sizes.append(len(tokens) + 1)
    return sizes


def read_schema_vocabularies(schema: schema_lib.Schema, vocab_dir: types.PathLike) -> Dict[str, List[str]]:
    """{field name: tokens} read back from `vocab_dir` (the first slot's file for multi-valued fields), for the fields
    with a vocabulary."""
    return {field.name: read_vocabulary(vocabulary_path(vocab_dir, field.output_names[0]))
            for field in schema.fields if field.hash_buckets is None and field.treatment is None}
