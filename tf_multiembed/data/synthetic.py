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
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from tf_multiembed import types
from tf_multiembed.data import space, transforms
from tf_multiembed.data.schema import Schema, criteo_schema

# A Criteo-like small default: 13 integer fields with tens of buckets, 26 categorical fields from 4 to 20,000 values.
DEFAULT_VOCABULARY_SIZES = (
    (30, 60, 60, 30, 80, 60, 50, 40, 60, 8, 25, 30, 50)
    + (1000, 500, 20000, 15000, 200, 20, 5000, 400, 4, 12000, 3000, 20000, 2000, 25, 8000, 18000, 10, 3000, 1500, 5,
       16000, 15, 12, 9000, 90, 7000))
DEFAULT_FILE_ROWS = 200_000
_CALIBRATION_ROWS = 50_000
_BAYES_AUC_ROWS = 400_000


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

    def __post_init__(self) -> None:
        sizes = tuple(int(size) for size in self.vocabulary_sizes)
        object.__setattr__(self, "vocabulary_sizes", sizes)
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
        """The Criteo-layout schema that reads this generator's files."""
        return criteo_schema(min_count=min_count, num_numeric=self.num_numeric, num_categorical=self.num_categorical,
                             name="synthetic-criteo")

    def to_dict(self) -> Dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.interaction_order == 2:  # the pairwise default keeps the file names (hashes) of earlier versions
            del data["interaction_order"]
        return data


@dataclasses.dataclass
class SyntheticSample:
    """Rows drawn from the generator.

    Attributes:
        latent_ids: int64 `[n, F]`, 0 = missing, otherwise the value's Zipf rank (1 = most frequent).
        labels: float32 `[n]` in {0, 1}.
        probabilities: float64 `[n]`, the planted click probability of each row.
    """

    latent_ids: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray


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
        return SyntheticSample(latent_ids, labels, probabilities)

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
