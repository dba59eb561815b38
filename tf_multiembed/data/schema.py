"""Feature schemas: which columns become which fields, how they are transformed, and how the label is made.

A `Schema` describes one data set: its reader (delimited text, Parquet, TFRecord of tf.Example, or the
MovieLens-100K layouts), its fields in model order, its label rule and the vocabulary settings. Built-in schemas
cover Criteo, Avazu and MovieLens-100K; any other data set is described by a small JSON or YAML file read with
`Schema.from_file`:

```yaml
name: my_clicks
reader: delimited            # or parquet, tfrecord (columns / features named by `column`)
delimiter: ","
has_header: true
label: {column: clicked, rule: binary}   # or {column: income, positive: [">50K"], negative: ["<=50K"]}
time_column: ts
min_count: 2                 # every field's minimum count unless the field sets its own
fields:
  - {name: user, column: user_id, kind: categorical}
  - {name: price, kind: numeric, min_count: 5}        # transform defaults to criteo_log_bucket
  - {name: tags, kind: multi_categorical, separator: "|", max_values: 3}
  - {name: device_ip, hash_buckets: 1000000}          # no vocabulary: ids are hash buckets (bounded memory)
```

A field's minimum count is its own `min_count`, else the schema's, else 1 (`Schema.resolved_min_counts` says which,
and the build records it in the manifest).

Encoded ids follow one rule (docs/architecture.md): per output field, id 0 is OOV/missing/rare and the known tokens
are 1..len(vocabulary) in vocabulary-file order. A `multi_categorical` field becomes `max_values` output fields
(`<name>_0`, `<name>_1`, ...), one slot per value in order of appearance, padded with id 0.
"""

import dataclasses
import json
import math
import pathlib
from typing import Any, Callable, Dict, Mapping, NoReturn, Optional, Sequence, Tuple, TypeGuard, Union, cast

from tf_multiembed import types
from tf_multiembed.data import transforms
from tf_multiembed.data.readers import avazu as avazu_reader
from tf_multiembed.data.readers import criteo as criteo_reader
from tf_multiembed.data.readers import movielens as movielens_reader

CATEGORICAL = "categorical"
NUMERIC = "numeric"
MULTI_CATEGORICAL = "multi_categorical"
BAG = "bag"
FIELD_KINDS = (CATEGORICAL, NUMERIC, MULTI_CATEGORICAL, BAG)
BAG_POOLINGS = ("mean", "sum")

BINARY_LABEL = "binary"
THRESHOLD_LABEL = "threshold"
VALUES_LABEL = "values"
LABEL_RULES = (BINARY_LABEL, THRESHOLD_LABEL, VALUES_LABEL)

DELIMITED_READER = "delimited"
MOVIELENS_READER = "movielens"
PARQUET_READER = "parquet"
TFRECORD_READER = "tfrecord"
READERS = (DELIMITED_READER, MOVIELENS_READER, PARQUET_READER, TFRECORD_READER)
DEFAULT_MIN_COUNT = 1

FREQUENCY_ORDER = "frequency"
SORTED_ORDER = "sorted"
VOCABULARY_ORDERS = (FREQUENCY_ORDER, SORTED_ORDER)

# Numeric treatments (docs/inputs.md); None keeps the transform -> vocabulary road of the paper.
BUCKETIZED = "bucketized"
EMBEDDED = "embedded"
DENSE = "dense"
NUMERIC_TREATMENTS = (BUCKETIZED, EMBEDDED, DENSE)
STANDARD_NORMALIZATION = "standard"
LOG1P_NORMALIZATION = "log1p_standard"
NORMALIZATIONS = (STANDARD_NORMALIZATION, LOG1P_NORMALIZATION)

_DEFAULT_TRANSFORM = {CATEGORICAL: "identity", NUMERIC: "criteo_log_bucket", MULTI_CATEGORICAL: "identity",
                      BAG: "identity"}
_TRANSFORM_INPUT_KIND = {CATEGORICAL: "string", NUMERIC: "number", MULTI_CATEGORICAL: "string", BAG: "string"}


def _fail(where: str, message: str) -> NoReturn:
    raise ValueError(f"{where}: {message}")


def _is_count(value: object) -> TypeGuard[int]:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One feature field.

    Args:
        name: the field's name (also the name of its raw serving input and of its vocabulary file).
        kind: "categorical" (one token per row), "numeric" (a number bucketed by a numeric transform) or
            "multi_categorical" (a list of tokens split on `separator`, encoded into `max_values` slots, each its
            own field) or "bag" (a list of tokens split on `separator`, one field whose values share a vocabulary
            and are pooled per set; at most `max_values` values are kept, the rest dropped and counted).
        column: the source column; defaults to `name`.
        transform: a name from `transforms.TRANSFORMS`; defaults to "identity" for categorical kinds and
            "criteo_log_bucket" for numeric.
        min_count: tokens seen fewer times than this in the whole input get the OOV id 0; None takes the schema's
            `min_count` (or 1 when neither is set).
        missing_token: the token an empty or missing value becomes (it then gets its own id like any token);
            None maps missing values to id 0.
        separator: multi_categorical and bag only: the separator between values.
        max_values: multi_categorical: the number of slots; bag: the most values kept (>= 2); values beyond it
            are dropped and counted (`IngestReport.values_truncated`).
        max_tokens: keep at most this many tokens (the most frequent) in the vocabulary; None keeps all.
        hash_buckets: instead of a vocabulary, the id of a token is 1 + its hash bucket among `hash_buckets`
            (`tf.strings.to_hash_bucket_fast`, offline and in the serving graph); one pass, memory independent of
            the number of distinct values; a missing value is id 0 (or the bucket of `missing_token`).
        treatment: numeric only (docs/inputs.md): None (a numeric transform then a vocabulary, the paper's road),
            "bucketized" (id = 1 + the number of `boundaries` <= value, 0 when missing), "embedded" (the
            normalised value scales a learned vector per set) or "dense" (the normalised value joins a float
            vector added to the logit by a linear term).
        boundaries: bucketized only: strictly increasing finite bucket boundaries.
        num_buckets: bucketized only: learn `num_buckets - 1` quantile boundaries in pass 1 of the build instead.
        normalization: embedded and dense only: "standard" ((v - mean) / std, the default) or "log1p_standard"
            (log1p(max(v, 0)), then mean and std); the statistics come from pass 1 of the build.
        pooling: bag only: "mean" (the default) or "sum" of the bag's embedding rows, per set.

    Example:
        >>> FieldSpec("price", kind="numeric").transform
        'criteo_log_bucket'
    """

    name: str
    kind: str = CATEGORICAL
    # None (the default) becomes the field's name and the kind's default transform in __post_init__: after
    # construction both are always strings, which is what the type says.
    column: str = None  # type: ignore[assignment]
    transform: str = None  # type: ignore[assignment]
    min_count: Optional[int] = None
    missing_token: Optional[str] = None
    separator: str = " "
    max_values: Optional[int] = None
    max_tokens: Optional[int] = None
    hash_buckets: Optional[int] = None
    treatment: Optional[str] = None
    boundaries: Optional[Tuple[float, ...]] = None
    num_buckets: Optional[int] = None
    normalization: Optional[str] = None
    pooling: Optional[str] = None

    def __post_init__(self) -> None:
        where = f"field {self.name!r}"
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\\n\t"):
            _fail("FieldSpec", f"`name` must be a non-empty string without '/', '\\', tabs or newlines, got "
                               f"{self.name!r}.")
        if self.kind not in FIELD_KINDS:
            _fail(where, f"`kind` must be one of {list(FIELD_KINDS)}, got {self.kind!r}.")
        if self.column is None:
            object.__setattr__(self, "column", self.name)
        if self.transform is None:
            object.__setattr__(self, "transform", _DEFAULT_TRANSFORM[self.kind])
        transform = transforms.get_transform(self.transform)
        if transform.input_kind != _TRANSFORM_INPUT_KIND[self.kind]:
            _fail(where, f"transform {self.transform!r} reads {transform.input_kind} values but a {self.kind} field "
                         f"needs a {_TRANSFORM_INPUT_KIND[self.kind]} transform.")
        if self.min_count is not None and not _is_count(self.min_count):
            _fail(where, f"`min_count` must be an integer >= 1, got {self.min_count!r}.")
        if self.missing_token is not None and (not isinstance(self.missing_token, str) or not self.missing_token
                                               or "\n" in self.missing_token):
            _fail(where, f"`missing_token` must be None or a non-empty single-line string, got "
                         f"{self.missing_token!r}.")
        if self.is_list:
            if self.transform != "identity":
                _fail(where, f"a {self.kind} field takes its values as they are (transform 'identity'), got "
                             f"{self.transform!r}.")
            smallest = 2 if self.kind == BAG else 1
            if (isinstance(self.max_values, bool) or not isinstance(self.max_values, int)
                    or self.max_values < smallest):
                what = "the most values a bag keeps" if self.kind == BAG else "its number of slots"
                _fail(where, f"a {self.kind} field needs `max_values` >= {smallest} ({what}), got "
                             f"{self.max_values!r}.")
            if not isinstance(self.separator, str) or not self.separator:
                _fail(where, f"`separator` must be a non-empty string, got {self.separator!r}.")
        elif self.max_values is not None:
            _fail(where, f"`max_values` applies to multi_categorical and bag fields only (kind is {self.kind!r}).")
        if self.kind == BAG:
            if self.pooling is None:
                object.__setattr__(self, "pooling", BAG_POOLINGS[0])
            elif self.pooling not in BAG_POOLINGS:
                _fail(where, f"`pooling` must be one of {list(BAG_POOLINGS)}, got {self.pooling!r}.")
        elif self.pooling is not None:
            _fail(where, f"`pooling` applies to bag fields only (kind is {self.kind!r}).")
        if self.max_tokens is not None and not _is_count(self.max_tokens):
            _fail(where, f"`max_tokens` must be None or an integer >= 1, got {self.max_tokens!r}.")
        if self.hash_buckets is not None:
            if not _is_count(self.hash_buckets) or self.hash_buckets >= 2 ** 31 - 1:
                _fail(where, f"`hash_buckets` must be None or an integer in [1, 2**31 - 2], got "
                             f"{self.hash_buckets!r}.")
            if self.min_count is not None or self.max_tokens is not None:
                _fail(where, "a hash_buckets field has no vocabulary, so `min_count` and `max_tokens` do not apply; "
                             "remove them (or remove `hash_buckets`).")
        self._check_treatment(where)

    def _check_treatment(self, where: str) -> None:
        if self.treatment is None:
            for key in ("boundaries", "num_buckets", "normalization"):
                if getattr(self, key) is not None:
                    _fail(where, f"`{key}` needs a numeric `treatment` ({list(NUMERIC_TREATMENTS)}); set one or "
                                 f"remove `{key}`.")
            return
        if self.kind != NUMERIC:
            _fail(where, f"`treatment` applies to numeric fields only (kind is {self.kind!r}).")
        if self.treatment not in NUMERIC_TREATMENTS:
            _fail(where, f"`treatment` must be one of {list(NUMERIC_TREATMENTS)} or null, got {self.treatment!r}.")
        if self.transform != _DEFAULT_TRANSFORM[NUMERIC]:
            _fail(where, f"a numeric field with treatment {self.treatment!r} reads its values as numbers; "
                         f"`transform` ({self.transform!r}) applies only without a treatment: remove it.")
        for key in ("min_count", "max_tokens", "missing_token", "hash_buckets"):
            if getattr(self, key) is not None:
                _fail(where, f"`{key}` belongs to vocabulary fields; a numeric field with treatment "
                             f"{self.treatment!r} has no vocabulary: remove `{key}`.")
        if self.treatment == BUCKETIZED:
            if self.normalization is not None:
                _fail(where, "`normalization` applies to embedded and dense fields, not bucketized ones.")
            if (self.boundaries is None) == (self.num_buckets is None):
                _fail(where, "a bucketized field needs exactly one of `boundaries` (a list of increasing numbers) "
                             "and `num_buckets` (boundaries learned as quantiles in pass 1 of the build).")
            if self.boundaries is not None:
                object.__setattr__(self, "boundaries", _check_boundaries(where, self.boundaries))
            elif not _is_count(self.num_buckets) or self.num_buckets < 2:
                _fail(where, f"`num_buckets` must be an integer >= 2, got {self.num_buckets!r}.")
            return
        for key in ("boundaries", "num_buckets"):
            if getattr(self, key) is not None:
                _fail(where, f"`{key}` applies to bucketized fields only (treatment is {self.treatment!r}).")
        if self.normalization is None:
            object.__setattr__(self, "normalization", STANDARD_NORMALIZATION)
        elif self.normalization not in NORMALIZATIONS:
            _fail(where, f"`normalization` must be one of {list(NORMALIZATIONS)}, got {self.normalization!r}.")

    @property
    def is_list(self) -> bool:
        """Whether a cell holds a list of values (multi_categorical slots or a bag)."""
        return self.kind in (MULTI_CATEGORICAL, BAG)

    @property
    def is_float(self) -> bool:
        """Whether the field reaches the model as a float (embedded or dense), not as an id column."""
        return self.treatment in (EMBEDDED, DENSE)

    @property
    def output_names(self) -> Tuple[str, ...]:
        """The names of the encoded id columns this field produces (one, one per slot, or none for a float)."""
        if self.is_float:
            return ()
        if self.is_list:
            return tuple(f"{self.name}_{slot}" for slot in range(cast(int, self.max_values)))  # checked: >= 1
        return (self.name,)

    def to_dict(self) -> Dict[str, Any]:
        """The field as plain data (round-trips through `FieldSpec(**d)`). The numeric-treatment keys appear only
        when set, so the dicts of the paper's schemas (part of cache keys) are unchanged."""
        data = dataclasses.asdict(self)
        for key in ("treatment", "boundaries", "num_buckets", "normalization", "pooling"):
            if data[key] is None:
                del data[key]
        if self.boundaries is not None:
            data["boundaries"] = list(self.boundaries)
        return data


def _check_boundaries(where: str, boundaries: Any) -> Tuple[float, ...]:
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Sequence) or not boundaries:
        _fail(where, f"`boundaries` must be a non-empty list of numbers, got {boundaries!r}.")
    values = []
    for value in boundaries:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(where, f"`boundaries` must hold finite numbers, got {value!r}.")
        values.append(float(value))
    for position in range(1, len(values)):
        if values[position] <= values[position - 1]:
            _fail(where, f"`boundaries` must be strictly increasing; entry {position} ({values[position]!r}) is not "
                         f"above entry {position - 1} ({values[position - 1]!r}).")
    return tuple(values)


def _has_vocabulary(field: FieldSpec) -> bool:
    return field.hash_buckets is None and field.treatment is None


def _class_values(key: str, values: Any) -> Tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        _fail("label", f"the values rule needs `{key}` as a non-empty list of the column's values (strings), got "
                       f"{values!r}.")
    cleaned = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
            _fail("label", f"`{key}` lists the label column's values as text, e.g. [\">50K\"]; got {value!r}.")
        cleaned.append(str(value).strip())
    return tuple(dict.fromkeys(cleaned))


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """How the 0/1 label is read.

    Args:
        column: the source column.
        rule: "binary" (the cell must be exactly "0" or "1"), "threshold" (a number; label = value >= threshold;
            e.g. `threshold: 0` for -1/1 labels, 4 for 1-5 ratings) or "values" (class names: label 1 for the
            `positive` values, 0 for the `negative` ones, any other value is a bad row). Giving `positive` selects
            "values".
        threshold: the threshold of the "threshold" rule.
        positive: the "values" rule: the cell values (compared without surrounding spaces) of the positive class.
        negative: the "values" rule: the cell values of the negative class.

    Example:
        >>> LabelSpec("rating", rule="threshold", threshold=4.0).rule
        'threshold'
        >>> LabelSpec("income", positive=[">50K"], negative=["<=50K"]).rule
        'values'
    """

    column: str
    rule: str = BINARY_LABEL
    threshold: Optional[float] = None
    positive: Optional[Tuple[str, ...]] = None
    negative: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            _fail("label", f"`column` must be a non-empty string, got {self.column!r}.")
        if self.rule == BINARY_LABEL and (self.positive is not None or self.negative is not None):
            object.__setattr__(self, "rule", VALUES_LABEL)  # naming the classes is the values rule
        if self.rule not in LABEL_RULES:
            _fail("label", f"`rule` must be one of {list(LABEL_RULES)}, got {self.rule!r}.")
        if self.rule == THRESHOLD_LABEL:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
                _fail("label", f"the threshold rule needs a numeric `threshold`, got {self.threshold!r}.")
            object.__setattr__(self, "threshold", float(self.threshold))
        elif self.threshold is not None:
            _fail("label", "`threshold` applies to the threshold rule only.")
        if self.rule == VALUES_LABEL:
            positive = _class_values("positive", self.positive)
            negative = _class_values("negative", self.negative)
            both = sorted(set(positive) & set(negative))
            if both:
                _fail("label", f"the values {both} are listed as both positive and negative.")
            object.__setattr__(self, "positive", positive)
            object.__setattr__(self, "negative", negative)
        elif self.positive is not None or self.negative is not None:
            _fail("label", "`positive` and `negative` apply to the values rule only.")

    def to_dict(self) -> Dict[str, Any]:
        """The label rule as plain data (the values rule's lists only where it applies, so the other rules' dicts,
        part of cache keys, are unchanged)."""
        data = dataclasses.asdict(self)
        if self.rule != VALUES_LABEL:
            del data["positive"], data["negative"]
        else:
            # Both set by __post_init__ under the values rule.
            data["positive"] = list(cast(Tuple[str, ...], self.positive))
            data["negative"] = list(cast(Tuple[str, ...], self.negative))
        return data


_SCHEMA_KEYS = ("name", "fields", "label", "reader", "delimiter", "has_header", "column_names", "quotechar",
                "encoding", "time_column", "vocabulary_order", "min_count")


@dataclasses.dataclass(frozen=True)
class Schema:
    """A data set's reader settings, fields (in model order), label rule and vocabulary settings.

    Args:
        name: a short identifier (used in cache folder names).
        fields: the fields, in the order of the encoded id columns.
        label: the label rule.
        reader: "delimited" (CSV/TSV, plain or gzip), "parquet" (Parquet files), "tfrecord" (TFRecord files of
            tf.train.Example; columns are feature names) or "movielens" (MovieLens-100K, GroupLens or RecBole
            layout).
        delimiter: delimited reader: the one-character column separator.
        has_header: delimited reader: whether each file starts with a header line naming the columns.
        column_names: delimited reader: the column names of a headerless file (required then); with a header,
            if given, each file's header must equal it.
        quotechar: delimited reader: parse quoted cells with this quote character (slower); None splits plainly.
        encoding: delimited reader: the text encoding (lines that fail to decode are skipped as bad input).
        time_column: an optional column that orders rows in time (used by the "time" split).
        vocabulary_order: "frequency" (descending count, then token) or "sorted" (by token text).
        min_count: the minimum count of every field that does not set its own (None: such fields use 1).

    Example:
        >>> schema = Schema("toy", fields=(FieldSpec("user"),), label=LabelSpec("click"))
        >>> schema.field_names
        ('user',)
    """

    name: str
    fields: Tuple[FieldSpec, ...]
    label: LabelSpec
    reader: str = DELIMITED_READER
    delimiter: str = ","
    has_header: bool = True
    column_names: Optional[Tuple[str, ...]] = None
    quotechar: Optional[str] = None
    encoding: str = "utf-8"
    time_column: Optional[str] = None
    vocabulary_order: str = FREQUENCY_ORDER
    min_count: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            _fail("Schema", f"`name` must be a non-empty identifier of letters, digits, '-', '_' or '.', got "
                            f"{self.name!r}.")
        fields = tuple(self.fields)
        if not fields or not all(isinstance(field, FieldSpec) for field in fields):
            _fail(f"schema {self.name!r}", "`fields` must be a non-empty sequence of FieldSpec.")
        object.__setattr__(self, "fields", fields)
        if not isinstance(self.label, LabelSpec):
            _fail(f"schema {self.name!r}", f"`label` must be a LabelSpec, got {type(self.label).__name__}.")
        names = [name for field in fields for name in (field.name, *field.output_names[1:])]
        output_names = [name for field in fields for name in field.output_names]
        for candidates in (names, output_names):
            duplicates = sorted({name for name in candidates if candidates.count(name) > 1})
            if duplicates:
                _fail(f"schema {self.name!r}", f"field names must be unique; repeated: {duplicates}.")
        if self.label.column in {field.column for field in fields}:
            _fail(f"schema {self.name!r}", f"the label column {self.label.column!r} is also a feature column.")
        if self.reader not in READERS:
            _fail(f"schema {self.name!r}", f"`reader` must be one of {list(READERS)}, got {self.reader!r}.")
        if not isinstance(self.delimiter, str) or len(self.delimiter) != 1 or self.delimiter in "\r\n":
            _fail(f"schema {self.name!r}", f"`delimiter` must be one character (not a newline), got "
                                           f"{self.delimiter!r}.")
        if self.quotechar is not None and (not isinstance(self.quotechar, str) or len(self.quotechar) != 1):
            _fail(f"schema {self.name!r}", f"`quotechar` must be None or one character, got {self.quotechar!r}.")
        if self.column_names is not None:
            object.__setattr__(self, "column_names", tuple(str(name) for name in self.column_names))
        if self.reader == DELIMITED_READER:
            if not self.has_header and self.column_names is None:
                _fail(f"schema {self.name!r}", "a headerless delimited file needs `column_names`.")
            if self.column_names is not None:
                missing = [column for column in self.required_columns if column not in self.column_names]
                if missing:
                    _fail(f"schema {self.name!r}", f"`column_names` lacks the columns {missing} used by the label, "
                                                   f"fields or time column.")
        if self.vocabulary_order not in VOCABULARY_ORDERS:
            _fail(f"schema {self.name!r}", f"`vocabulary_order` must be one of {list(VOCABULARY_ORDERS)}, got "
                                           f"{self.vocabulary_order!r}.")
        if self.min_count is not None and not _is_count(self.min_count):
            _fail(f"schema {self.name!r}", f"`min_count` must be an integer >= 1, got {self.min_count!r}.")
        poolings = sorted({cast(str, field.pooling) for field in fields if field.kind == BAG})  # set for bags
        if len(poolings) > 1:
            _fail(f"schema {self.name!r}", f"the bag fields pool in different ways {poolings}; give them one "
                                           f"`pooling` (the model pools every bag alike).")
        if self.reader in (PARQUET_READER, TFRECORD_READER) and self.column_names is not None:
            _fail(f"schema {self.name!r}", f"a {self.reader} reader takes the column names from the files; remove "
                                           f"`column_names`.")

    @property
    def field_names(self) -> Tuple[str, ...]:
        """The encoded id columns in order: the N of `ids [B, N]`."""
        return tuple(name for field in self.fields for name in field.output_names)

    @property
    def num_fields(self) -> int:
        return len(self.field_names)

    @property
    def required_columns(self) -> Tuple[str, ...]:
        """The source columns a reader must provide (label, fields, time column), without repeats."""
        columns = [self.label.column] + [field.column for field in self.fields]
        if self.time_column is not None:
            columns.append(self.time_column)
        return tuple(dict.fromkeys(columns))

    @property
    def bag_fields(self) -> Tuple[FieldSpec, ...]:
        """The variable-length (bag) fields."""
        return tuple(field for field in self.fields if field.kind == BAG)

    @property
    def bag_pooling(self) -> str:
        """The pooling of the schema's bags (one for all of them, as `MultiEmbedding` pools)."""
        return cast(str, self.bag_fields[0].pooling) if self.bag_fields else BAG_POOLINGS[0]  # set for bags

    @property
    def float_column_names(self) -> Tuple[str, ...]:
        """The float columns of the prepared records after the ids: embedded fields, then dense fields."""
        return tuple(field.name for field in self.embedded_fields + self.dense_fields)

    @property
    def num_record_columns(self) -> int:
        """Columns of a prepared row before the label: N ids and the float columns."""
        return self.num_fields + len(self.float_column_names)

    @property
    def embedded_fields(self) -> Tuple[FieldSpec, ...]:
        """The numeric fields with treatment "embedded", in schema order: the columns of `numeric_values`."""
        return tuple(field for field in self.fields if field.treatment == EMBEDDED)

    @property
    def dense_fields(self) -> Tuple[FieldSpec, ...]:
        """The numeric fields with treatment "dense", in schema order: the columns of `dense_values`."""
        return tuple(field for field in self.fields if field.treatment == DENSE)

    @property
    def treated_fields(self) -> Tuple[FieldSpec, ...]:
        """The numeric fields with any treatment (they have no vocabulary)."""
        return tuple(field for field in self.fields if field.treatment is not None)

    def with_min_count(self, min_count: int) -> "Schema":
        """A copy whose every vocabulary field has the given minimum count (e.g. 1 for tiny test files)."""
        return dataclasses.replace(self, min_count=min_count, fields=tuple(
            field if not _has_vocabulary(field) else dataclasses.replace(field, min_count=min_count)
            for field in self.fields))

    def resolved_min_counts(self) -> Dict[str, Optional[int]]:
        """{field name: the minimum count that applies} (None for fields without a vocabulary: hash buckets and
        numeric treatments): the field's own, else the schema's, else `DEFAULT_MIN_COUNT`."""
        return {field.name: None if not _has_vocabulary(field) else
                field.min_count if field.min_count is not None else
                self.min_count if self.min_count is not None else DEFAULT_MIN_COUNT for field in self.fields}

    def fields_with_default_min_count(self) -> Tuple[str, ...]:
        """Vocabulary fields whose minimum count is the default because neither they nor the schema set one."""
        if self.min_count is not None:
            return ()
        return tuple(field.name for field in self.fields if _has_vocabulary(field) and field.min_count is None)

    def to_dict(self) -> Dict[str, Any]:
        """The schema as plain data; `Schema.from_dict(schema.to_dict()) == schema`."""
        data = {key: getattr(self, key) for key in _SCHEMA_KEYS}
        data["fields"] = [field.to_dict() for field in self.fields]
        data["label"] = self.label.to_dict()
        data["column_names"] = list(self.column_names) if self.column_names is not None else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "schema") -> "Schema":
        """Builds a schema from plain data, with errors that name `source`, the field and the offending key."""
        if not isinstance(data, Mapping):
            _fail(source, f"a schema must be a mapping, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(_SCHEMA_KEYS))
        if unknown:
            _fail(source, f"unknown schema keys {unknown}; expected keys among {list(_SCHEMA_KEYS)}.")
        for key in ("name", "fields", "label"):
            if key not in data:
                _fail(source, f"the schema lacks the required key {key!r}.")
        if not isinstance(data["fields"], Sequence) or isinstance(data["fields"], str):
            _fail(source, "`fields` must be a list of field mappings.")
        field_keys = [f.name for f in dataclasses.fields(FieldSpec)]
        fields = []
        for position, entry in enumerate(data["fields"]):
            where = f"{source}: field #{position}" + (f" ({entry.get('name')!r})" if isinstance(entry, Mapping) else "")
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where}: expected a mapping with keys among {field_keys}, got {entry!r}.")
            unknown = sorted(set(entry) - set(field_keys))
            if unknown:
                raise ValueError(f"{where}: unknown keys {unknown}; expected keys among {field_keys}.")
            if "name" not in entry:
                raise ValueError(f"{where}: the field lacks the required key 'name'.")
            try:
                fields.append(FieldSpec(**entry))
            except (ValueError, TypeError) as error:
                raise ValueError(f"{where}: {error}") from None
        label = data["label"]
        label_keys = [f.name for f in dataclasses.fields(LabelSpec)]
        if not isinstance(label, Mapping) or "column" not in label or set(label) - set(label_keys):
            _fail(source, f"`label` must be a mapping with 'column' and optionally 'rule', 'threshold', 'positive' "
                          f"and 'negative', got {label!r}.")
        try:
            return cls(**{**data, "fields": tuple(fields), "label": LabelSpec(**label)})
        except (ValueError, TypeError) as error:
            raise ValueError(f"{source}: {error}") from None

    @classmethod
    def from_file(cls, path: types.PathLike) -> "Schema":
        """Reads a schema from a JSON file, or a YAML file (`.yaml`/`.yml`).

        Example:
            >>> schema = Schema.from_file("my_clicks.yaml")  # doctest: +SKIP
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Schema file {path} does not exist.")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # only schema files need PyYAML

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise ValueError(f"{path}: not valid YAML: {error}") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): "
                                 f"{error.msg}") from None
        return cls.from_dict(data, source=str(path))

    def to_file(self, path: types.PathLike) -> None:
        """Writes the schema as JSON, or YAML for a `.yaml`/`.yml` path."""
        path = pathlib.Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        else:
            path.write_text(self.to_json() + "\n", encoding="utf-8")


def criteo_schema(min_count: int = 10, num_numeric: int = 13, num_categorical: int = 26,
                  missing_token: Optional[str] = "NULL", name: str = "criteo") -> Schema:
    """The Criteo Kaggle schema: headerless TSV, label then I1..I13 (bucketed integers) then C1..C26 (hashed).

    As in the paper: `floor(ln(v)^2)` buckets for v > 2 and `v - 2` otherwise, values seen fewer than 10 times in
    the whole file go to the OOV id, and an empty cell is its own value (`missing_token`, "NULL"), in the integer
    columns and in the categorical ones alike. Other field counts describe Criteo-shaped synthetic files.

    Example:
        >>> criteo_schema().num_fields
        39
    """
    column_names = criteo_reader.column_names(num_numeric, num_categorical)
    numeric = [FieldSpec(name, kind=NUMERIC, min_count=min_count, missing_token=missing_token)
               for name in column_names[1:1 + num_numeric]]
    categorical = [FieldSpec(name, kind=CATEGORICAL, min_count=min_count, missing_token=missing_token)
                   for name in column_names[1 + num_numeric:]]
    return Schema(name=name, fields=tuple(numeric + categorical), label=LabelSpec(column_names[0]),
                  reader=DELIMITED_READER, delimiter="\t", has_header=False, column_names=column_names)


def avazu_schema(min_count: int = 4) -> Schema:
    """The Avazu Kaggle schema: CSV with a header; `click` is the label, `id` is dropped, 22 categorical fields
    (`hour`, YYMMDDHH, as a category), minimum count 4 as in the paper; `hour` orders the "time" split.

    Example:
        >>> avazu_schema().field_names[:3]
        ('hour', 'C1', 'banner_pos')
    """
    fields = tuple(FieldSpec(name, min_count=min_count) for name in avazu_reader.FEATURE_COLUMNS)
    return Schema(name="avazu", fields=fields, label=LabelSpec(avazu_reader.LABEL_COLUMN), reader=DELIMITED_READER,
                  delimiter=",", has_header=True, column_names=avazu_reader.COLUMNS, time_column="hour")


def movielens_schema(genre_slots: Optional[int] = None, min_count: int = 1,
                     vocabulary_order: str = FREQUENCY_ORDER) -> Schema:
    """The MovieLens-100K CTR schema of the reference protocol (reference_runs_ml100k.md).

    Label = rating >= 4; eight categorical fields user_id, item_id, age, gender, occupation, zip_code,
    release_year, genres, minimum count 1. By default the whole genre string ("Action Adventure Thriller") is one
    token, which gives the reference's vocabulary sizes 944, 1683, 62, 3, 22, 796, 74, 217 (with the OOV id).
    `genre_slots=k` instead splits the genres into k slot fields sharing one token set. The reference orders ids by
    value: pass `vocabulary_order="sorted"` for that; the default orders by descending count.

    Example:
        >>> movielens_schema().field_names[-1]
        'genres'
    """
    fields = [FieldSpec(name, min_count=min_count) for name in
              ("user_id", "item_id", "age", "gender", "occupation", "zip_code", "release_year")]
    if genre_slots is None:
        fields.append(FieldSpec("genres", min_count=min_count))
    else:
        fields.append(FieldSpec("genres", kind=MULTI_CATEGORICAL, min_count=min_count, separator=" ",
                                max_values=genre_slots))
    name = "movielens100k" if genre_slots is None else f"movielens100k-genres{genre_slots}"
    return Schema(name=name, fields=tuple(fields),
                  label=LabelSpec(movielens_reader.RATING_COLUMN, rule=THRESHOLD_LABEL, threshold=4.0),
                  reader=MOVIELENS_READER, time_column=movielens_reader.TIMESTAMP_COLUMN,
                  vocabulary_order=vocabulary_order)


BUILT_IN_SCHEMAS: Dict[str, Callable[[], Schema]] = {"criteo": criteo_schema, "avazu": avazu_schema,
                                                     "movielens": movielens_schema}


def resolve_schema(spec: Union[Schema, types.PathLike]) -> Schema:
    """A `Schema` from a Schema, a built-in name ("criteo", "avazu", "movielens") or a JSON/YAML schema file path.

    Example:
        >>> resolve_schema("avazu").num_fields
        22
    """
    if isinstance(spec, Schema):
        return spec
    if isinstance(spec, str) and spec in BUILT_IN_SCHEMAS:
        return BUILT_IN_SCHEMAS[spec]()
    if isinstance(spec, (str, pathlib.Path)) and pathlib.Path(spec).is_file():
        return Schema.from_file(spec)
    raise ValueError(f"Cannot resolve the schema {spec!r}: expected a Schema, one of {sorted(BUILT_IN_SCHEMAS)}, or "
                     f"the path of an existing JSON/YAML schema file.")
