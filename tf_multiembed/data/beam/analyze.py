"""The analyze phase: per-field token counts with tf.Transform's `tft.vocabulary`, turned into the vocabulary files of
the single-machine build.

The tokens are the ones the single-machine build counts: `BlockParser.count` applies each field's transform, the
multi-valued split and truncation and the missing token, and gives each block's distinct tokens with their counts.
They reach tf.Transform as Arrow record batches of one row per block (per field: the tokens, and the counts as
float64 weights), and one `tft.vocabulary(..., weights=counts, frequency_threshold=..., store_frequency=True)` adds
them up across workers. Weighted, tf.Transform reduces each batch to its distinct tokens inside the graph;
unweighted, it hands every token occurrence to Python, several times slower. The weights are float64 and sums of
integers are exact below 2**53, far above any token count.

Why the files are post-processed instead of taken as tf.Transform writes them:

- order: tf.Transform sorts by (count, token) descending, so equal counts come in DESCENDING token order; the
  project's files (and every model trained on them) break ties by ascending token. Both the count and the token
  come back (`store_frequency=True`), and `vocabulary.build_vocabulary` (the single-machine rule itself) orders them;
- `max_tokens`: tf.Transform's `top_k` would cut equal counts at the boundary in its own tie order, so the cut is
  made by `build_vocabulary` too (no `top_k` is passed);
- text safety: tf.Transform's text files drop tokens that contain "\\r" or "\\n" anywhere, while the project's rule
  only rejects a trailing "\\r"; tokens are therefore counted in web-safe base64 and decoded afterwards (prefixed
  by their field's position: one analyzer counts every field, see `preprocessing_fn`);
- empty vocabularies: tf.Transform writes a dummy token so that its own lookup tables initialise; it is removed.

Hash-bucket fields and numeric fields with a treatment have no vocabulary and are not analyzed here (the treated
fields' statistics and boundaries come from the engine's own mergeable accumulator, see `pipeline.py`).
"""

import base64
from typing import Dict, List, Sequence, Tuple, cast

import numpy as np
import pyarrow as pa

from tf_multiembed.data import schema as schema_lib

_TOKENS = pa.large_list(pa.large_binary())
_WEIGHTS = pa.large_list(pa.float64())


def vocabulary_positions(schema: schema_lib.Schema) -> List[int]:
    """Positions of the fields with a vocabulary (not `hash_buckets`, not a numeric treatment)."""
    return [position for position, field in enumerate(schema.fields)
            if field.hash_buckets is None and field.treatment is None]


def vocabulary_asset_name(position: int) -> str:
    """tf.Transform's file name for the vocabulary of the schema's `position`-th field (field names may hold
    characters that are not safe in a file name of every file system)."""
    return f"field_{position:04d}"


def arrow_schema(schema: schema_lib.Schema) -> pa.Schema:
    """Per vocabulary field, a list of tokens and a list of their counts."""
    columns = []
    for position in vocabulary_positions(schema):
        name = vocabulary_asset_name(position)
        columns += [(f"{name}_tokens", _TOKENS), (f"{name}_counts", _WEIGHTS)]
    return pa.schema(columns)


def tensor_adapter_config(schema: schema_lib.Schema):
    """tf.Transform's description of `arrow_schema`: each column a `tf.SparseTensor` `[batch, None]`."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.tfxio import tensor_adapter

    representations = {}
    for name in arrow_schema(schema).names:
        representation = schema_pb2.TensorRepresentation()
        representation.varlen_sparse_tensor.column_name = name
        representations[name] = representation
    return tensor_adapter.TensorAdapterConfig(arrow_schema(schema), representations)


def counts_record_batch(schema: schema_lib.Schema, counted: Sequence[Tuple[int, pa.Array, np.ndarray]]
                        ) -> pa.RecordBatch:
    """One row: the `(position, tokens, counts)` of `BlockParser.count` for one block."""
    by_position = {position: (tokens, counts) for position, tokens, counts in counted}
    arrays = []
    for position in vocabulary_positions(schema):
        tokens, counts = by_position.get(position, (pa.array([], pa.string()), np.zeros(0, np.int64)))
        offsets = pa.array([0, len(tokens)], type=pa.int64())
        arrays.append(pa.LargeListArray.from_arrays(offsets, tokens.cast(pa.large_binary())))
        arrays.append(pa.LargeListArray.from_arrays(offsets, pa.array(np.asarray(counts, np.float64))))
    return pa.RecordBatch.from_arrays(arrays, schema=arrow_schema(schema))


VOCABULARY_NAME = "tokens"


def preprocessing_fn(schema: schema_lib.Schema):
    """The tf.Transform `preprocessing_fn`: ONE weighted `tft.vocabulary` over every vocabulary field's tokens, each
    prefixed with its field's position ("7:" + base64 token), counts stored beside the tokens.

    One analyzer instead of one per field: tf.Transform builds several Beam stages per analyzer, and with one per
    field a 39-field schema spends about a minute building and planning the pipeline before reading a row, whatever
    the data size. The cost of one analyzer: the final sort of all fields' tokens runs on one worker (tf.Transform
    sorts each vocabulary on one worker anyway). `frequency_threshold` is the smallest minimum count of the fields,
    which removes no token any field keeps; each field's own minimum count is applied afterwards.
    """
    import tensorflow as tf

    from tf_multiembed.compat import import_tensorflow_transform

    tft = import_tensorflow_transform()

    min_counts = schema.resolved_min_counts()
    positions = vocabulary_positions(schema)
    threshold = min(cast(int, min_counts[schema.fields[position].name]) for position in positions)  # vocabulary

    def fn(inputs):
        tokens, weights = [], []
        for position in positions:
            name = vocabulary_asset_name(position)
            values = inputs[f"{name}_tokens"].values
            tokens.append(tf.strings.join([tf.fill(tf.shape(values), f"{position}:"), tf.io.encode_base64(values)]))
            weights.append(inputs[f"{name}_counts"].values)
        tft.vocabulary(tf.concat(tokens, axis=0), weights=tf.concat(weights, axis=0),
                       frequency_threshold=threshold if threshold > 1 else None, store_frequency=True,
                       vocab_filename=VOCABULARY_NAME)
        # tf.Transform needs an output; the encoded data are made by the build's own encoder, not by this graph.
        any_column = inputs[next(iter(inputs))]
        return {"blocks": tf.zeros([any_column.dense_shape[0]], tf.int64)}

    return fn


def read_token_counts(path, schema: schema_lib.Schema) -> Dict[str, Dict[str, int]]:
    """{field name: {token: count}} of every vocabulary field, from the vocabulary file tf.Transform wrote with
    `store_frequency=True` over position-prefixed base64 tokens."""
    from apache_beam.io.filesystems import FileSystems

    from tf_multiembed.compat import import_tensorflow_transform

    import_tensorflow_transform()  # the first import goes through compat
    from tensorflow_transform import analyzers

    with FileSystems.open(str(path)) as handle:
        lines = handle.read().split(b"\n")
    dummy = analyzers.get_empy_vocabulary_dummy_value("string")[1]
    counts: Dict[str, Dict[str, int]] = {schema.fields[position].name: {} for position in vocabulary_positions(schema)}
    for line in lines:
        if not line:
            continue
        count, _, keyed = line.partition(b" ")
        if keyed == dummy and len(lines) <= 2:
            continue  # tf.Transform's placeholder for an empty vocabulary
        position, _, encoded = keyed.partition(b":")
        token = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4)).decode("utf-8")
        counts[schema.fields[int(position)].name][token] = int(float(count))  # weighted counts read "3.0"
    return counts
