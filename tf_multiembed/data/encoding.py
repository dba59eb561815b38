"""Encoding raw features inside a TensorFlow graph, exactly as the offline build encodes the same rows.

`RawFeatureEncoder` is a `tf.Module` that maps `{field name: raw values [B]}` (strings for categorical fields, numbers
for numeric fields, NaN for missing) to ids int64 `[B, N]`. It applies the TensorFlow twin of each field's transform
(`transforms.py`) and looks tokens up in `tf.lookup.StaticHashTable`s initialised from the build's vocabulary files,
which `tf.saved_model.save` copies into the SavedModel's `assets/`, so the exported graph needs no other file. A
`hash_buckets` field has no table: its id is `1 + tf.strings.to_hash_bucket_fast(token, hash_buckets)`, the op the
offline build runs on the same tokens (`shards.hash_bucket_ids`), and 0 for a missing value.
"""

import itertools
import math
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import transforms
from tf_multiembed.data import vocabulary as vocabulary_lib

_NUMBER_DTYPES = (tf.float16, tf.float32, tf.float64, tf.int32, tf.int64)


def raw_feature_signature(schema: schema_lib.Schema) -> Dict[str, tf.TensorSpec]:
    """The raw serving inputs of a schema: `{field name: TensorSpec([None], dtype)}`.

    Categorical and multi-valued fields take `tf.string`; numeric fields take `tf.float64` (exact for integers up
    to 2**53; NaN means missing). `RawFeatureEncoder` also accepts float32/int32/int64 numbers.

    Example:
        >>> from tf_multiembed.data import criteo_schema
        >>> raw_feature_signature(criteo_schema())["I1"]
        TensorSpec(shape=(None,), dtype=tf.float64, name='I1')
    """
    return {field.name: tf.TensorSpec([None], tf.string if _is_string_field(field) else tf.float64, name=field.name)
            for field in schema.fields}


def _is_string_field(field: schema_lib.FieldSpec) -> bool:
    return transforms.get_transform(field.transform).input_kind == "string"


def raw_features_from_cells(schema: schema_lib.Schema, cells: Mapping[str, Sequence[str]]) -> Dict[str, np.ndarray]:
    """Raw file cells (text, as in a CSV/TSV) -> the encoder's inputs: `object` arrays of str for string fields,
    float64 arrays for numeric fields (an empty cell becomes NaN).

    Args:
        schema: the schema.
        cells: {field name: the cells of its column}.

    Example:
        >>> raw_features_from_cells(criteo_schema(), {...})  # doctest: +SKIP
    """
    features = {}
    for field in schema.fields:
        if field.name not in cells:
            raise ValueError(f"Missing raw feature {field.name!r}; expected {[f.name for f in schema.fields]}.")
        column = list(cells[field.name])
        if _is_string_field(field):
            features[field.name] = np.array(column, dtype=object)
            continue
        numbers = []
        for row, cell in enumerate(column):
            try:
                numbers.append(math.nan if cell == "" else float(cell))
            except (TypeError, ValueError):
                raise ValueError(f"Raw feature {field.name!r}, row {row}: expected a number or an empty cell, "
                                 f"got {cell!r}.") from None
        features[field.name] = np.array(numbers, dtype=np.float64)
    return features


class RawFeatureEncoder(tf.Module):
    """Raw features -> field-local ids int64 `[B, N]` (N = `schema.num_fields`, id 0 = OOV/missing/rare).

    With numeric fields that have a treatment (docs/inputs.md) a bucketized field's id is `1 + #{boundaries <= v}`
    (float64 `tf.searchsorted`, as `numpy.searchsorted` offline; 0 when missing), and with embedded or dense
    fields the encoder returns the model's input dict: `{"feature_ids": ids, "numeric_values": float32 [B, F_e],
    "dense_values": float32 [B, F_d]}` (NaN = missing; the model normalises with its pass-1 statistics).

    Args:
        schema: the schema the vocabularies were built with.
        vocab_dir: the folder of `<field>.txt` vocabulary files (`PreparedData.vocab_dir`).
        name: the module name.
        numeric: the prepared data's `numeric` section (`PreparedData.numeric`): the bucket boundaries learned in
            pass 1. Needed when a bucketized field learns its boundaries (`num_buckets`).

    Call it with a mapping `{field name: values [B]}`: `tf.string` for categorical and multi-valued fields,
    float or integer numbers for numeric fields (NaN = missing). Extra keys are ignored. For export, `serve` is a
    `tf.function` with the `raw_feature_signature` input signature.

    Example:
        >>> encoder = RawFeatureEncoder(data.schema, data.vocab_dir)  # doctest: +SKIP
        >>> encoder({"user_id": tf.constant(["196"]), ...})  # doctest: +SKIP
        <tf.Tensor: shape=(1, 8), dtype=int64, numpy=array([[...]])>
        >>> tf.saved_model.save(encoder, "/tmp/encoder")  # doctest: +SKIP
    """

    def __init__(self, schema: schema_lib.Schema, vocab_dir: types.PathLike, name: str = "raw_feature_encoder",
                 numeric: Optional[Mapping[str, Sequence[Mapping[str, Any]]]] = None) -> None:
        super().__init__(name=name)
        self.schema = schema
        vocab_dir = pathlib.Path(vocab_dir)
        self._hash_buckets = {output: field.hash_buckets for field in schema.fields if field.hash_buckets is not None
                              for output in field.output_names}
        learned = {entry["name"]: entry["boundaries"] for entry in (numeric or {}).get(schema_lib.BUCKETIZED, [])}
        self.boundaries: Dict[str, Tuple[float, ...]] = {}
        for field in schema.fields:
            if field.treatment == schema_lib.BUCKETIZED:
                if field.name not in learned and field.boundaries is None:
                    raise ValueError(f"RawFeatureEncoder: field {field.name!r} learns its bucket boundaries in the "
                                     f"build; pass the prepared data's `numeric` section (PreparedData.feature_encoder "
                                     f"does).")
                # Learned in the build, else given (one of them is there: checked above).
                self.boundaries[field.name] = tuple(cast(Sequence[float], learned.get(field.name, field.boundaries)))
        files = {output: vocabulary_lib.vocabulary_path(vocab_dir, output) for output in schema.field_names
                 if output not in self._hash_buckets and output not in self.boundaries}
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"RawFeatureEncoder: vocabulary files {missing} do not exist; build the data "
                                    f"with prepare_dataset first.")
        self.field_names = schema.field_names
        self.vocabulary_sizes = tuple(self._hash_buckets[output] + 1 if output in self._hash_buckets
                                      else len(self.boundaries[output]) + 2 if output in self.boundaries
                                      else len(vocabulary_lib.read_vocabulary(files[output])) + 1
                                      for output in schema.field_names)
        self.float_inputs = {key: tuple(field.name for field in fields) for key, fields in
                             (("numeric_values", schema.embedded_fields), ("dense_values", schema.dense_fields))
                             if fields}
        # A list of tables is tracked by tf.Module, so SavedModel export copies each vocabulary file as an asset.
        # TensorFlow cannot initialise a table from an empty file; a field without any token is all OOV (id 0).
        has_table = [output in files and size > 1 for output, size in zip(schema.field_names, self.vocabulary_sizes)]
        self.tables = [
            tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(str(files[output]), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                              tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER, value_index_offset=1),
                default_value=0)
            for output, table in zip(schema.field_names, has_table) if table]
        self._table_of_column = [index - 1 if table else None
                                 for index, table in zip(itertools.accumulate(has_table), has_table)]
        self._transforms = [transforms.get_transform(field.transform) for field in schema.fields]
        self.serve = tf.function(self._encode, input_signature=[raw_feature_signature(schema)])

    @property
    def output_names(self) -> Tuple[str, ...]:
        """The model inputs the encoder makes: ("feature_ids",) and, with float fields, their input names."""
        return ("feature_ids",) + tuple(self.float_inputs)

    def __call__(self, features: Mapping[str, object]) -> Union[tf.Tensor, Dict[str, tf.Tensor]]:
        """Checks names and dtypes (errors name the feature), then encodes."""
        if not isinstance(features, Mapping):
            raise TypeError(f"RawFeatureEncoder expects a mapping of feature name to values, got "
                            f"{type(features).__name__}.")
        expected = [field.name for field in self.schema.fields]
        missing = [name for name in expected if name not in features]
        if missing:
            raise ValueError(f"RawFeatureEncoder: missing raw features {missing}; expected all of {expected}.")
        checked = {}
        for field in self.schema.fields:
            value = features[field.name]
            try:
                tensor = tf.convert_to_tensor(value)
            except (TypeError, ValueError) as error:
                raise TypeError(f"RawFeatureEncoder: feature {field.name!r} cannot be made a tensor: {error}") from None
            if _is_string_field(field):
                if tensor.dtype != tf.string:
                    raise TypeError(f"RawFeatureEncoder: feature {field.name!r} is {field.kind} and must be tf.string, "
                                    f"got {tensor.dtype.name}.")
            elif tensor.dtype not in _NUMBER_DTYPES:
                raise TypeError(f"RawFeatureEncoder: feature {field.name!r} is numeric and must be a float or integer "
                                f"tensor (NaN = missing), got {tensor.dtype.name}.")
            if tensor.shape.rank == 2 and tensor.shape[1] == 1:
                tensor = tf.squeeze(tensor, axis=1)
            if tensor.shape.rank != 1:
                raise ValueError(f"RawFeatureEncoder: feature {field.name!r} must have shape [batch] (or [batch, 1]), "
                                 f"got {tensor.shape}.")
            checked[field.name] = tensor if _is_string_field(field) else tf.cast(tensor, tf.float64)
        return self._encode(checked)

    def _lookup(self, column: int, tokens: tf.Tensor) -> tf.Tensor:
        """Ids of tokens ("" = missing, id 0) of one encoded column."""
        buckets = self._hash_buckets.get(self.field_names[column])
        if buckets is not None:
            hashed = tf.strings.to_hash_bucket_fast(tokens, buckets) + 1
            return tf.where(tf.equal(tokens, ""), tf.zeros_like(hashed), hashed)
        table = self._table_of_column[column]
        if table is None:
            return tf.zeros_like(tokens, dtype=tf.int64)
        return self.tables[table].lookup(tokens)

    def _encode(self, features: Mapping[str, tf.Tensor]) -> Union[tf.Tensor, Dict[str, tf.Tensor]]:
        ids: List[tf.Tensor] = []
        for field, transform in zip(self.schema.fields, self._transforms):
            values = features[field.name]
            if field.treatment is not None:
                if field.treatment == schema_lib.BUCKETIZED:
                    ids.append(self._bucket(field.name, values))
                continue
            if field.is_list:
                ids.extend(self._encode_multi(field, values, first_column=len(ids)))
                continue
            tokens, missing = transform.tensorflow(values)
            tokens = tf.where(missing, field.missing_token or "", tokens)  # "" is never a vocabulary token: id 0
            ids.append(self._lookup(len(ids), tokens))
        stacked = tf.stack(ids, axis=1)
        if not self.float_inputs:
            return stacked
        encoded = {"feature_ids": stacked}
        for key, names in self.float_inputs.items():
            encoded[key] = tf.stack([tf.cast(features[name], tf.float32) for name in names], axis=1)
        return encoded

    def _bucket(self, name: str, values: tf.Tensor) -> tf.Tensor:
        values = tf.cast(values, tf.float64)
        missing = tf.math.is_nan(values)
        boundaries = tf.constant(self.boundaries[name], tf.float64)
        ids = tf.searchsorted(boundaries[tf.newaxis], tf.where(missing, tf.zeros_like(values), values)[tf.newaxis],
                              side="right", out_type=tf.int64)[0] + 1
        return tf.where(missing, tf.zeros_like(ids), ids)

    def _encode_multi(self, field: schema_lib.FieldSpec, values: tf.Tensor, first_column: int) -> List[tf.Tensor]:
        parts = tf.strings.split(values, sep=field.separator)
        parts = tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)  # identity transform: "" is missing
        slots = parts[:, :field.max_values].to_tensor(default_value="", shape=[None, field.max_values])
        if field.missing_token is not None:
            empty = tf.equal(parts.row_lengths(), 0)
            first = tf.where(empty, field.missing_token, slots[:, 0])
            slots = tf.concat([first[:, tf.newaxis], slots[:, 1:]], axis=1)
        ids = [self._lookup(first_column + slot, slots[:, slot]) for slot in range(cast(int, field.max_values))]
        if field.kind == schema_lib.BAG:  # a bag pads with -1 after its values (the model pools the values only)
            lengths = tf.minimum(tf.maximum(parts.row_lengths(), 1 if field.missing_token is not None else 0),
                                 field.max_values)
            ids = [tf.where(slot < lengths, column, tf.constant(-1, tf.int64)) for slot, column in enumerate(ids)]
        return ids
