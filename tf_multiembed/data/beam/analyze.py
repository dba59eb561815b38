"""The analyze phase: per-field token counts with tf.Transform's `tft.vocabulary`, turned into the vocabulary files of
the single-machine build.

The tokens are the ones the single-machine build counts: `RecordParser` applies each field's Python transform, the
multi-valued split and truncation, and the missing token. They reach tf.Transform as Arrow record batches with one
variable-length list of tokens per row and field (an empty list for a missing value without a missing token), and
`tft.vocabulary(..., frequency_threshold=min_count, store_frequency=True)` counts them across workers.

Why the files are post-processed instead of taken as tf.Transform writes them:

- order: tf.Transform sorts by (count, token) descending, so equal counts come in DESCENDING token order; the
  project's files (and every model trained on them) break ties by ascending token. Both the count and the token
  come back (`store_frequency=True`), and `vocabulary.build_vocabulary` (the single-machine rule itself) orders them;
- `max_tokens`: tf.Transform's `top_k` would cut equal counts at the boundary in its own tie order, so the cut is
  made by `build_vocabulary` too (no `top_k` is passed);
- text safety: tf.Transform's text files drop tokens that contain "\\r" or "\\n" anywhere, while the project's rule
  only rejects a trailing "\\r"; tokens are therefore counted in web-safe base64 and decoded afterwards;
- empty vocabularies: tf.Transform writes a dummy token with count 1 so that its own lookup tables initialise; it is
  removed (the project's encoder handles empty vocabularies itself).
"""

import base64
from typing import Dict, Sequence

import numpy as np
import pyarrow as pa

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data.records import MISSING

_TOKEN_LIST = pa.large_list(pa.large_binary())


def vocabulary_asset_name(position: int) -> str:
    """tf.Transform's file name for the vocabulary of the schema's `position`-th field (field names may hold
    characters that are not safe in a file name of every file system)."""
    return f"field_{position:04d}"


def arrow_schema(schema: schema_lib.Schema) -> pa.Schema:
    """One `large_list<large_binary>` column of tokens per schema field."""
    return pa.schema([(vocabulary_asset_name(position), _TOKEN_LIST) for position in range(len(schema.fields))])


def tensor_adapter_config(schema: schema_lib.Schema):
    """tf.Transform's description of `arrow_schema`: each column a `tf.SparseTensor` `[rows, None]` of strings."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.tfxio import tensor_adapter

    representations = {}
    for name in arrow_schema(schema).names:
        representation = schema_pb2.TensorRepresentation()
        representation.varlen_sparse_tensor.column_name = name
        representations[name] = representation
    return tensor_adapter.TensorAdapterConfig(arrow_schema(schema), representations)


def token_record_batch(schema: schema_lib.Schema, tokens: Sequence[Sequence]) -> pa.RecordBatch:
    """A record batch of the tokens of `ParsedRows.tokens` (per field, one entry per row).

    Single-valued fields: `MISSING` becomes the field's missing token, or no token at all without one. Multi-valued
    fields: the row's tuple of tokens as it is (the parser already applied truncation and the missing token).
    """
    columns = []
    for field, values in zip(schema.fields, tokens):
        if field.kind == schema_lib.MULTI_CATEGORICAL:
            lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
            flat = [token for row in values for token in row]
        else:
            present = [value != MISSING or field.missing_token is not None for value in values]
            lengths = np.asarray(present, dtype=np.int64)
            flat = [value if value != MISSING else field.missing_token for value in values if
                    value != MISSING or field.missing_token is not None]
        offsets = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        columns.append(pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.large_binary())))
    return pa.RecordBatch.from_arrays(columns, schema=arrow_schema(schema))


def preprocessing_fn(schema: schema_lib.Schema):
    """The tf.Transform `preprocessing_fn`: one `tft.vocabulary` per field, with the field's min_count as
    `frequency_threshold` and the counts stored beside the tokens."""
    import tensorflow as tf
    import tensorflow_transform as tft

    def fn(inputs):
        for position, field in enumerate(schema.fields):
            tokens = inputs[vocabulary_asset_name(position)].values
            tft.vocabulary(tf.io.encode_base64(tokens), frequency_threshold=field.min_count if field.min_count > 1
                           else None, store_frequency=True, vocab_filename=vocabulary_asset_name(position))
        # tf.Transform needs an output; the encoded data are made by the serving-graph encoder, not by this graph.
        first = inputs[vocabulary_asset_name(0)]
        return {"rows": tf.zeros([first.dense_shape[0]], tf.int64)}

    return fn


def _empty_vocabulary_dummy() -> bytes:
    from tensorflow_transform import analyzers

    return analyzers.get_empy_vocabulary_dummy_value("string")[1]


def read_token_counts(path) -> Dict[str, int]:
    """{token: count} from a tf.Transform vocabulary file written with `store_frequency=True` over base64 tokens."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(str(path)) as handle:
        lines = handle.read().split(b"\n")
    dummy = _empty_vocabulary_dummy()
    counts = {}
    for line in lines:
        if not line:
            continue
        count, _, encoded = line.partition(b" ")
        if encoded == dummy and len(lines) <= 2:
            continue  # tf.Transform's placeholder for an empty vocabulary
        token = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)).decode("utf-8")
        counts[token] = int(count)
    return counts

