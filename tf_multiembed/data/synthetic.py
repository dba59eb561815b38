"""A synthetic Criteo-shaped data set with a planted click model, so that training has real signal and the best
achievable AUC is known.

Each field draws a latent value per row: missing with probability `missing_rate`, otherwise a Zipf(`zipf_exponent`)
rank over the field's other values. The click probability is

    p = sigmoid(bias + sum_f w_f[x_f] + sum_{(f, g) in P} <e_f[x_f], e_g[x_g]>)

with per-value weights `w_f`, rank-`interaction_rank` value embeddings `e_f`, and a fixed random set P of
`num_interacting_pairs` field pairs. With `interaction_order` k > 2, P holds tuples of k fields and each planted
term is the rank-r product `sum_r e_f[x_f, r] * e_g[x_g, r] * ...` over the tuple's fields (an order-k interaction
that no sum of pairwise terms reproduces). The two parts are scaled to a chosen logit spread and share, and the bias
is set for the target click rate. The label is Bernoulli(p). `bayes_auc()` is the AUC of p itself, the ceiling for
any model.

Files are in the Criteo Kaggle layout (label, I1..I13, C1..C26, tab-separated, empty = missing): the integer columns
hold integers whose `floor(ln(v)^2)` bucket is the latent value (so the real reader's bucketing recovers it), and
the categorical columns hold 8-hex-digit tokens, a bijection of the latent value. Models therefore see the latent
values through the real ingest path, except values rarer than the schema's minimum count, which become OOV.

With `extra_inputs=ExtraInputs()` (issue 20's speed benchmark, docs/inputs.md) the files gain float numeric columns
after C26, two per treatment (bucketized with learned boundaries, embedded, dense), and one bag column: see
`ExtraInputs`. Their values are drawn after the labels, from the same row stream, so the Criteo columns and the
labels are those of the configuration without them; they carry no planted effect on the click (speed, not signal).

Example:
    >>> generator = SyntheticCriteo(SyntheticCriteoConfig())
    >>> sample = generator.sample(1000, seed=1)
    >>> sample.latent_ids.shape, sample.labels.shape
    ((1000, 39), (1000,))
"""

import dataclasses
import gzip
import hashlib
import itertools
import json
import math
import os
import pathlib
from typing import IO, Any, Callable, ClassVar, Dict, List, Optional, Tuple

import numpy as np

from tf_multiembed import types
from tf_multiembed.data import numeric as numeric_lib
from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import space, transforms
from tf_multiembed.data.schema import FieldSpec, Schema, criteo_schema

# A Criteo-like small default: 13 integer fields with tens of buckets, 26 categorical fields from 4 to 20,000 values.
DEFAULT_VOCABULARY_SIZES = (
    (30, 60, 60, 30, 80, 60, 50, 40, 60, 8, 25, 30, 50)
    + (1000, 500, 20000, 15000, 200, 20, 5000, 400, 4, 12000, 3000, 20000, 2000, 25, 8000, 18000, 10, 3000, 1500, 5,
       16000, 15, 12, 9000, 90, 7000))
DEFAULT_FILE_ROWS = 200_000
_CALIBRATION_ROWS = 50_000
_BAYES_AUC_ROWS = 400_000


@dataclasses.dataclass(frozen=True)
class ExtraInputs:
    """Issue 20's benchmark inputs after the Criteo columns: two float numeric fields per treatment and one bag.

    The numeric columns (`NUMERIC_FIELDS`, in this order): `bucket_a`, `bucket_b` (bucketized, `num_buckets`
    learned in pass 1), `embed_std`, `embed_log` (embedded, standard and log1p_standard normalisation),
    `dense_std`, `dense_log` (dense, the same two). Each value is `exp(N(1, 1.2))` rounded to 3 decimals (positive
    and skewed, like prices or counts; the text round-trips exactly), empty with the generator's `missing_rate`.
    The bag `tags` holds Poisson(`bag_mean_length`) values (an empty cell for none) drawn Zipf over
    `bag_vocabulary` 8-hex-digit tokens, joined with `separator`; the schema keeps at most `bag_max_values`.

    Args:
        num_buckets: buckets of each bucketized field (boundaries learned in pass 1).
        bag_vocabulary: distinct values of the bag.
        bag_mean_length: the mean number of values in a bag.
        bag_max_values: the schema's cap on a bag's length (the model's padded slots).
        separator: the separator between a bag's values in the file.

    Example:
        >>> [field.treatment for field in ExtraInputs().fields()][:3]
        ['bucketized', 'bucketized', 'embedded']
    """

    num_buckets: int = 16
    bag_vocabulary: int = 5000
    bag_mean_length: float = 5.0
    bag_max_values: int = 20
    separator: str = "|"

    NUMERIC_FIELDS: ClassVar[Tuple[Tuple[str, str, Optional[str]], ...]] = (
        ("bucket_a", schema_lib.BUCKETIZED, None), ("bucket_b", schema_lib.BUCKETIZED, None),
        ("embed_std", schema_lib.EMBEDDED, schema_lib.STANDARD_NORMALIZATION),
        ("embed_log", schema_lib.EMBEDDED, schema_lib.LOG1P_NORMALIZATION),
        ("dense_std", schema_lib.DENSE, schema_lib.STANDARD_NORMALIZATION),
        ("dense_log", schema_lib.DENSE, schema_lib.LOG1P_NORMALIZATION))
    BAG_FIELD: ClassVar[str] = "tags"

    def __post_init__(self) -> None:
        if self.num_buckets < 2 or self.bag_vocabulary < 2 or self.bag_max_values < 2 or self.bag_mean_length <= 0:
            raise ValueError(f"ExtraInputs: needs num_buckets, bag_vocabulary and bag_max_values >= 2 and "
                             f"bag_mean_length > 0, got {self}.")

    @property
    def column_names(self) -> Tuple[str, ...]:
        """The extra columns of a file, after the Criteo ones."""
        return tuple(name for name, _, _ in self.NUMERIC_FIELDS) + (self.BAG_FIELD,)

    def fields(self, min_count: int = 10) -> Tuple[FieldSpec, ...]:
        """The schema's fields of the extra columns (the bag's vocabulary with `min_count`, as the Criteo fields)."""
        numeric = [FieldSpec(name, kind=schema_lib.NUMERIC, treatment=treatment, normalization=normalization,
                             num_buckets=self.num_buckets if treatment == schema_lib.BUCKETIZED else None)
                   for name, treatment, normalization in self.NUMERIC_FIELDS]
        return tuple(numeric) + (FieldSpec(self.BAG_FIELD, kind=schema_lib.BAG, separator=self.separator,
                                           max_values=self.bag_max_values, min_count=min_count),)

    def sample(self, num_rows: int, rng: np.random.Generator, missing_rate: float,
               zipf_exponent: float = 1.3) -> Tuple[np.ndarray, np.ndarray]:
        """`(numeric [n, 6] float64 (NaN = missing), bag [n, L] int64 Zipf ranks 1..bag_vocabulary padded with -1)`,
        L the longest bag drawn (it may exceed `bag_max_values`: the build truncates and counts)."""
        numeric = np.round(np.exp(rng.normal(1.0, 1.2, size=(num_rows, len(self.NUMERIC_FIELDS)))), 3)
        numeric[rng.random(numeric.shape) < missing_rate] = np.nan
        lengths = rng.poisson(self.bag_mean_length, size=num_rows)
        width = max(int(lengths.max(initial=0)), 1)
        cdf = np.cumsum(np.arange(1, self.bag_vocabulary + 1, dtype=np.float64) ** -zipf_exponent)
        ranks = np.searchsorted(cdf / cdf[-1], rng.random((num_rows, width)), side="right") + 1
        bag = np.where(np.arange(width) < lengths[:, None], np.minimum(ranks, self.bag_vocabulary), -1)
        return numeric, bag.astype(np.int64)

    def columns(self, numeric: np.ndarray, bag: np.ndarray) -> List[List[str]]:
        """The text of the extra columns of `sample`'s arrays (empty = missing or an empty bag)."""
        columns = []
        for index in range(numeric.shape[1]):
            text = numeric[:, index].astype(str).astype(object)
            text[np.isnan(numeric[:, index])] = ""
            columns.append(text.tolist())
        tokens = self._tokens()
        columns.append([self.separator.join(tokens[row[row > 0]]) for row in bag])
        return columns

    def _tokens(self) -> np.ndarray:
        return np.concatenate([np.array([""], dtype=object), _hex_token(0x7A65, np.arange(1, self.bag_vocabulary + 1))])

    def model_arrays(self, numeric: np.ndarray, bag: np.ndarray, seed: int = 0) -> Dict[str, Any]:
        """What the build and `PreparedData` would give a model for `sample`'s arrays, computed in memory by the
        build's own pass-1 code (`NumericStatistics` over all the rows, `bucket_ids`): `bucket_ids` int64 `[n, 2]`,
        `bag_ids` int64 `[n, bag_max_values]` (ids = Zipf ranks, truncated, padded with -1), `numeric_values` and
        `dense_values` float32 `[n, 2]` (NaN = missing), `vocabulary_sizes` of the two bucketized fields and the
        bag, `numeric` (the manifest's section) and `model_inputs` (`NumericInputs.from_dict` form).

        Example:
            >>> extra = ExtraInputs()
            >>> arrays = extra.model_arrays(*extra.sample(1000, np.random.default_rng(0), missing_rate=0.05))
            >>> arrays["bag_ids"].shape, arrays["vocabulary_sizes"]
            ((1000, 20), [17, 17, 5001])
        """
        schema = Schema(name="extra-inputs", fields=self.fields(), label=schema_lib.LabelSpec("label"),
                        column_names=("label",) + self.column_names, has_header=False)
        statistics = numeric_lib.NumericStatistics(schema, seed=seed)
        for index, field in enumerate(schema.fields[:len(self.NUMERIC_FIELDS)]):
            statistics.add(field, numeric[:, index])
        section = statistics.result()
        bucketized = [index for index, (_, treatment, _) in enumerate(self.NUMERIC_FIELDS)
                      if treatment == schema_lib.BUCKETIZED]
        boundaries = [entry["boundaries"] for entry in section[schema_lib.BUCKETIZED]]
        width = self.bag_max_values
        padded = np.full((len(bag), width), -1, np.int64)
        padded[:, :min(width, bag.shape[1])] = bag[:, :width]
        return {
            "bucket_ids": np.stack([numeric_lib.bucket_ids(numeric[:, index], bounds)
                                    for index, bounds in zip(bucketized, boundaries)], axis=1).astype(np.int64),
            "bag_ids": padded,
            "numeric_values": self._float_columns(numeric, schema_lib.EMBEDDED),
            "dense_values": self._float_columns(numeric, schema_lib.DENSE),
            "vocabulary_sizes": [len(bounds) + 2 for bounds in boundaries] + [self.bag_vocabulary + 1],
            "numeric": section, "model_inputs": numeric_lib.model_inputs(section)}

    def _float_columns(self, numeric: np.ndarray, treatment: str) -> np.ndarray:
        indices = [index for index, (_, kind, _) in enumerate(self.NUMERIC_FIELDS) if kind == treatment]
        return numeric[:, indices].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class SyntheticCriteoConfig:
    """Shape and click model of a synthetic Criteo-like data set.

    Args:
        vocabulary_sizes: latent values per field (the missing value included), numeric fields first.
        num_numeric: how many leading fields are integer (bucketed) fields; the rest are categorical.
        zipf_exponent: the Zipf exponent of value frequencies.
        missing_rate: the probability that a cell is empty.
        num_interacting_pairs: field pairs (tuples of `interaction_order` fields) with a planted interaction.
        interaction_rank: the rank of the planted interaction embeddings.
        interaction_order: the number of fields in each planted interaction (2: pairwise).
        logit_std: the standard deviation of the planted logit (before the bias); larger means more signal.
        interaction_share: the share of the logit variance carried by the pairwise interactions.
        target_ctr: the click rate the bias is calibrated to.
        seed: the seed of the planted model (rows are drawn with their own seed).
        extra_inputs: float numeric and bag columns after the Criteo ones (`ExtraInputs`), or None (the default:
            the Criteo layout alone).
    """

    vocabulary_sizes: Tuple[int, ...] = DEFAULT_VOCABULARY_SIZES
    num_numeric: int = 13
    zipf_exponent: float = 1.3
    missing_rate: float = 0.05
    num_interacting_pairs: int = 30
    interaction_rank: int = 4
    interaction_order: int = 2
    logit_std: float = 1.5
    interaction_share: float = 0.5
    target_ctr: float = 0.25
    seed: int = 0
    extra_inputs: Optional[ExtraInputs] = None

    def __post_init__(self) -> None:
        sizes = tuple(int(size) for size in self.vocabulary_sizes)
        object.__setattr__(self, "vocabulary_sizes", sizes)
        if isinstance(self.extra_inputs, dict):  # from `to_dict()` (a stored configuration)
            object.__setattr__(self, "extra_inputs", ExtraInputs(**self.extra_inputs))
        if self.extra_inputs is not None and not isinstance(self.extra_inputs, ExtraInputs):
            raise ValueError(f"SyntheticCriteoConfig: `extra_inputs` must be None or an ExtraInputs, got "
                             f"{self.extra_inputs!r}.")
        if not sizes or min(sizes) < 2:
            raise ValueError(f"SyntheticCriteoConfig: every field needs at least 2 latent values (missing + one), got "
                             f"{sizes}.")
        if not 0 <= self.num_numeric <= len(sizes):
            raise ValueError(f"SyntheticCriteoConfig: `num_numeric` must lie in [0, {len(sizes)}], got "
                             f"{self.num_numeric}.")
        if isinstance(self.interaction_order, bool) or not isinstance(self.interaction_order, int) \
                or not 2 <= self.interaction_order <= len(sizes):
            raise ValueError(f"SyntheticCriteoConfig: `interaction_order` must be an integer in [2, {len(sizes)}] "
                             f"(fields per planted interaction), got {self.interaction_order!r}.")
        num_pairs = math.comb(len(sizes), self.interaction_order)
        if not 0 <= self.num_interacting_pairs <= num_pairs:
            raise ValueError(f"SyntheticCriteoConfig: `num_interacting_pairs` must lie in [0, {num_pairs}], got "
                             f"{self.num_interacting_pairs}.")
        for name, low, high in (("zipf_exponent", 0.0, math.inf), ("missing_rate", 0.0, 1.0),
                                ("interaction_share", 0.0, 1.0), ("target_ctr", 0.0, 1.0), ("logit_std", 0.0, 20.0)):
            value = getattr(self, name)
            if not (low <= value <= high) or (name in ("target_ctr", "zipf_exponent") and value in (low, high)):
                raise ValueError(f"SyntheticCriteoConfig: `{name}` must lie in [{low}, {high}], got {value!r}.")
        if self.interaction_rank < 1:
            raise ValueError(f"SyntheticCriteoConfig: `interaction_rank` must be >= 1, got {self.interaction_rank}.")

    @property
    def num_categorical(self) -> int:
        return len(self.vocabulary_sizes) - self.num_numeric

    def schema(self, min_count: int = 10) -> Schema:
        """The Criteo-layout schema that reads this generator's files (with the extra columns' fields after the
        Criteo ones when `extra_inputs` is set)."""
        schema = criteo_schema(min_count=min_count, num_numeric=self.num_numeric,
                               num_categorical=self.num_categorical, name="synthetic-criteo")
        if self.extra_inputs is None:
            return schema
        return dataclasses.replace(schema, name="synthetic-criteo-numeric-bag",
                                   fields=schema.fields + self.extra_inputs.fields(min_count),
                                   column_names=tuple(schema.column_names or ()) + self.extra_inputs.column_names)

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.interaction_order == 2:  # the pairwise default keeps the file names (hashes) of earlier versions
            del data["interaction_order"]
        if self.extra_inputs is None:  # as interaction_order: the Criteo layout keeps its file names
            del data["extra_inputs"]
        return data


@dataclasses.dataclass
class SyntheticSample:
    """Rows drawn from the generator.

    Attributes:
        latent_ids: int64 `[n, F]`, 0 = missing, otherwise the value's Zipf rank (1 = most frequent).
        labels: float32 `[n]` in {0, 1}.
        probabilities: float64 `[n]`, the planted click probability of each row.
        numeric: with `extra_inputs`: float64 `[n, 6]`, the extra numeric columns (NaN = missing), else None.
        bag: with `extra_inputs`: int64 `[n, L]`, the bag's Zipf ranks padded with -1, else None.
    """

    latent_ids: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    numeric: Optional[np.ndarray] = None
    bag: Optional[np.ndarray] = None


def expected_auc(probabilities: np.ndarray) -> float:
    """The AUC that scoring by `probabilities` achieves in expectation when labels are Bernoulli(probabilities)
    (pairs of distinct rows; ties count one half). Computed in O(n log n).

    Example:
        >>> round(expected_auc(np.array([0.0, 1.0])), 6)
        1.0
    """
    values, counts = np.unique(np.asarray(probabilities, dtype=np.float64), return_counts=True)
    positive = values * counts
    negative = (1.0 - values) * counts
    negative_below = np.cumsum(negative) - negative
    self_pairs = np.sum(counts * values * (1.0 - values))
    ties = positive * negative - counts * values * (1.0 - values)
    numerator = np.sum(positive * negative_below) + 0.5 * np.sum(ties)
    denominator = positive.sum() * negative.sum() - self_pairs
    return float(numerator / denominator) if denominator > 0 else 0.5


def _hex_token(field: int, ranks: np.ndarray) -> np.ndarray:
    """An 8-hex-digit token per rank, distinct within a field (a bijection of uint32)."""
    x = (ranks.astype(np.uint64) * np.uint64(0x9E3779B1) + np.uint64(field * 0x632BE5AB + 0x1234567)) \
        & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return np.array([f"{value:08x}" for value in x.tolist()], dtype=object)


def _bucket_ranges(num_buckets: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For latent ranks 1..num_buckets of an integer field: the bucket token and the integer range [low, high] whose
    `floor(ln(v)^2)` (or `v - 2`) bucket it is. Ranks run through buckets -2, -1, 0, 1, 2, ... with the rare
    negative bucket -3 (v = -1) last, roughly as Criteo's counts."""
    buckets = [-2, -1, 0] + list(range(1, num_buckets - 3)) + [-3]
    buckets = buckets[:num_buckets]
    thresholds = transforms.criteo_log_thresholds()
    low, high = [], []
    for bucket in buckets:
        if bucket <= 0:
            low.append(bucket + 2)
            high.append(bucket + 2)
        else:
            low.append(math.ceil(thresholds[bucket - 1]))
            high.append(math.ceil(thresholds[bucket]) - 1)
    for bucket, start, stop in zip(buckets, low, high):  # the generator must produce what the reader will bucket
        if not transforms.criteo_log_bucket_value(start) == str(bucket) == transforms.criteo_log_bucket_value(stop):
            raise RuntimeError(f"integer range [{start}, {stop}] does not map to bucket {bucket}")
    return np.array(buckets), np.array(low, dtype=np.int64), np.array(high, dtype=np.int64)


class SyntheticCriteo:
    """The generator: samples rows, writes Criteo-layout files, and knows its Bayes AUC.

    Args:
        config: the shape and click model.

    Example:
        >>> generator = SyntheticCriteo(SyntheticCriteoConfig())
        >>> generator.write_tsv("/tmp/synthetic.tsv", num_rows=10_000, seed=1)  # doctest: +SKIP
    """

    def __init__(self, config: SyntheticCriteoConfig = SyntheticCriteoConfig()):
        self.config = config
        rng = np.random.default_rng(config.seed)
        sizes = config.vocabulary_sizes
        self._cdfs = []
        for size in sizes:
            weights = np.arange(1, size, dtype=np.float64) ** -config.zipf_exponent
            cdf = np.cumsum(weights)
            self._cdfs.append(cdf / cdf[-1])
        self._linear = [rng.normal(size=size) for size in sizes]
        self._embeddings = [rng.normal(size=(size, config.interaction_rank)) / math.sqrt(config.interaction_rank)
                            for size in sizes]
        for table, embedding in zip(self._linear, self._embeddings):  # the missing value carries no signal
            table[0] = 0.0
            embedding[0] = 0.0
        all_pairs = list(itertools.combinations(range(len(sizes)), config.interaction_order))
        chosen = rng.choice(len(all_pairs), size=config.num_interacting_pairs, replace=False)
        self.interacting_pairs = tuple(sorted(all_pairs[index] for index in chosen))
        self._linear_scale, self._interaction_scale, self.bias = 1.0, 1.0, 0.0
        self._calibrate(rng)
        self._buckets = [_bucket_ranges(size - 1) for size in sizes[:config.num_numeric]]
        self._tokens = [np.concatenate([np.array([""], dtype=object), _hex_token(field, np.arange(1, size))])
                        for field, size in enumerate(sizes) if field >= config.num_numeric]

    def _parts(self, latent_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        linear = sum(table[latent_ids[:, field]] for field, table in enumerate(self._linear))
        interaction = np.zeros(len(latent_ids))
        for fields in self.interacting_pairs:
            factors = [self._embeddings[field][latent_ids[:, field]] for field in fields]
            product = factors[0]
            for factor in factors[1:-1]:
                product = product * factor
            interaction += np.einsum("nr,nr->n", product, factors[-1])
        return linear, interaction

    def _calibrate(self, rng: np.random.Generator) -> None:
        """Scales the two logit parts to the configured spread and share, then solves the bias for the CTR."""
        latent_ids = self._latent_ids(_CALIBRATION_ROWS, rng)
        linear, interaction = self._parts(latent_ids)
        config = self.config
        share = config.interaction_share if config.num_interacting_pairs else 0.0
        self._linear_scale = config.logit_std * math.sqrt(1.0 - share) / max(float(np.std(linear)), 1e-12)
        self._interaction_scale = config.logit_std * math.sqrt(share) / max(float(np.std(interaction)), 1e-12)
        logits = self._linear_scale * linear + self._interaction_scale * interaction
        low, high = -30.0, 30.0
        for _ in range(100):
            middle = 0.5 * (low + high)
            if np.mean(1.0 / (1.0 + np.exp(-(logits + middle)))) < config.target_ctr:
                low = middle
            else:
                high = middle
        self.bias = 0.5 * (low + high)

    def _latent_ids(self, num_rows: int, rng: np.random.Generator) -> np.ndarray:
        latent_ids = np.empty((num_rows, len(self._cdfs)), dtype=np.int64)
        for field, cdf in enumerate(self._cdfs):
            ranks = np.searchsorted(cdf, rng.random(num_rows), side="right") + 1
            latent_ids[:, field] = np.minimum(ranks, len(cdf))
        latent_ids[rng.random(latent_ids.shape) < self.config.missing_rate] = 0
        return latent_ids

    def logit_parts(self, latent_ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The per-field part and the interaction part of the planted logit (bias excluded) of latent ids `[n, F]`."""
        linear, interaction = self._parts(np.asarray(latent_ids))
        return self._linear_scale * linear, self._interaction_scale * interaction

    def probabilities(self, latent_ids: np.ndarray) -> np.ndarray:
        """The planted click probability of rows of latent ids `[n, F]`."""
        linear, interaction = self.logit_parts(latent_ids)
        return 1.0 / (1.0 + np.exp(-(self.bias + linear + interaction)))

    def sample(self, num_rows: int, seed: int) -> SyntheticSample:
        """Draws `num_rows` rows (latent ids, labels and true probabilities) with their own `seed`."""
        rng = np.random.default_rng([self.config.seed, seed])
        latent_ids = self._latent_ids(num_rows, rng)
        probabilities = self.probabilities(latent_ids)
        labels = (rng.random(num_rows) < probabilities).astype(np.float32)
        extra = self.config.extra_inputs
        if extra is None:
            return SyntheticSample(latent_ids, labels, probabilities)
        # Drawn after the labels: the Criteo columns and labels are those of the configuration without extras.
        numeric, bag = extra.sample(num_rows, rng, self.config.missing_rate, self.config.zipf_exponent)
        return SyntheticSample(latent_ids, labels, probabilities, numeric, bag)

    def bayes_auc(self, num_rows: int = _BAYES_AUC_ROWS, seed: int = 2**31 - 1) -> float:
        """The expected AUC of the true probabilities (the best any model can do), estimated on `num_rows` rows."""
        return expected_auc(self.sample(num_rows, seed).probabilities)

    def format_lines(self, sample: SyntheticSample, rng: np.random.Generator) -> List[str]:
        """Criteo-layout text lines (without line ends) of a sample; integer values are drawn within their bucket."""
        config = self.config
        columns = [np.where(sample.labels > 0, "1", "0").tolist()]
        for field in range(config.num_numeric):
            ids = sample.latent_ids[:, field]
            _, low, high = self._buckets[field]
            rank = np.maximum(ids - 1, 0)
            values = low[rank] + (rng.random(len(ids)) * (high[rank] - low[rank] + 1)).astype(np.int64)
            text = values.astype(str).astype(object)
            text[ids == 0] = ""
            columns.append(text.tolist())
        for offset, tokens in enumerate(self._tokens):
            columns.append(tokens[sample.latent_ids[:, config.num_numeric + offset]].tolist())
        if config.extra_inputs is not None and sample.numeric is not None and sample.bag is not None:
            columns.extend(config.extra_inputs.columns(sample.numeric, sample.bag))
        return list(map("\t".join, zip(*columns)))

    def write_tsv(self, path: types.PathLike, num_rows: int, seed: int = 1, chunk_rows: int = 16384) -> pathlib.Path:
        """Writes `num_rows` rows in the Criteo layout (gzip when `path` ends with .gz), chunk by chunk."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([self.config.seed, seed, 1])
        opener: Callable[[pathlib.Path], IO[str]] = (
            (lambda p: gzip.open(p, "wt", encoding="utf-8", compresslevel=1)) if path.suffix == ".gz"
            else (lambda p: open(p, "w", encoding="utf-8", newline="\n")))
        with opener(path) as handle:
            for start in range(0, num_rows, chunk_rows):
                sample = self.sample(min(chunk_rows, num_rows - start), seed=seed * 1_000_003 + start)
                handle.write("\n".join(self.format_lines(sample, rng)) + "\n")
        return path


@dataclasses.dataclass(frozen=True)
class SyntheticFile:
    """A generated file and what is known about it.

    Attributes:
        path: the Criteo-layout TSV.
        schema: the schema that reads it.
        num_rows: its rows.
        bayes_auc: the expected AUC of the planted probabilities (the ceiling for any model).
        config: the generator's configuration.
    """

    path: pathlib.Path
    schema: Schema
    num_rows: int
    bayes_auc: float
    config: SyntheticCriteoConfig


def synthetic_criteo_file(cache_dir: types.PathLike, num_rows: int = DEFAULT_FILE_ROWS, seed: int = 1,
                          config: Optional[SyntheticCriteoConfig] = None, min_count: int = 10) -> SyntheticFile:
    """The embedded default data set: a synthetic Criteo-layout file in `cache_dir`, generated once and reused.

    The file name carries a hash of the configuration, row count and seed; a JSON side file records the Bayes AUC.

    Example:
        >>> synthetic = synthetic_criteo_file("/tmp/cache")  # doctest: +SKIP
        >>> data = prepare_dataset(synthetic.schema, synthetic.path, "/tmp/cache")  # doctest: +SKIP
    """
    config = config or SyntheticCriteoConfig()
    description = json.dumps({"config": config.to_dict(), "num_rows": num_rows, "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(description.encode("utf-8")).hexdigest()[:12]
    cache_dir = pathlib.Path(cache_dir)
    path = cache_dir / f"synthetic-criteo-{num_rows}-{digest}.tsv"
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        generator = SyntheticCriteo(config)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            generator.write_tsv(partial, num_rows, seed=seed)
            meta = {"num_rows": num_rows, "seed": seed, "bayes_auc": generator.bayes_auc(),
                    "config": config.to_dict()}
            meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        except OSError as error:  # nothing half-written stays behind (a partial meta file is never trusted alone)
            partial.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            if space.is_disk_full(error):
                raise space.disk_full_error(cache_dir, error, f"the synthetic data set ({num_rows:,} rows)") from None
            raise
        os.replace(partial, path)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return SyntheticFile(path=path, schema=config.schema(min_count=min_count), num_rows=meta["num_rows"],
                         bayes_auc=meta["bayes_auc"], config=config)
