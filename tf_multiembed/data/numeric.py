"""Numeric fields with a treatment (docs/inputs.md): pass-1 statistics and boundaries, bucket ids, float bits.

Pass 1 of the build feeds every block's parsed values (float64, NaN = missing) to `NumericStatistics`, with the
base name of their file and their line numbers. Every accumulator is exact or keyed by the rows, so the result is
a function of the set of valid rows only, not of their order or of how they are cut into blocks: the columnar build
and the Beam pipeline (which merges per-block accumulators in any order, `NumericStatistics.merge`) write the same
`numeric` section, bit for bit.

- embedded and dense fields: the count and the exact sums of t(v) and t(v)^2 (t = identity, or log1p(max(v, 0))
  computed per value in float64): rational numbers, since every float64 is one (`_exact_power_sums`, vectorised
  over the mantissas' 16-bit limbs, grouped by exponent; 50-100 ns a value here). The mean and the population
  variance are computed from them exactly and rounded once to float64; std = sqrt(variance), and 1 where it is 0
  or no value was seen (logged);
- bucketized fields with `num_buckets`: a uniform sample without replacement of at most `SAMPLE_SIZE` present
  values: those with the smallest keys, a key being a seeded 64-bit hash of (seed, field position, file base name,
  line number) (`sample_keys`), so bounded memory and the same sample whatever the order of the rows. The exact
  quantiles k / num_buckets of the sample (NumPy's "linear" method) are the boundaries, repeats removed. With
  fewer present values than `SAMPLE_SIZE` the sample is every value, so the boundaries are the exact quantiles of
  the whole input.

The result is the manifest's `numeric` section; `model_inputs` turns it into the model's `NumericInputs` form.
"""

import fractions
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tf_multiembed.data import schema as schema_lib
from tf_multiembed.data import splits as splits_lib

SAMPLE_SIZE = 100_000
logger = logging.getLogger(__name__)


def transformed(values: np.ndarray, normalization: str) -> np.ndarray:
    """t(v) of present values: v, or log1p(max(v, 0)) for "log1p_standard" (the layers' formula, in float64)."""
    if normalization == schema_lib.LOG1P_NORMALIZATION:
        return np.log1p(np.maximum(values, 0.0))
    return values


def bucket_ids(values: np.ndarray, boundaries: Sequence[float]) -> np.ndarray:
    """int32 ids of values: `1 + #{boundaries <= v}`, 0 where the value is missing (NaN).

    Example:
        >>> bucket_ids(np.array([0.5, 1.0, 7.0, np.nan]), [1.0, 2.0]).tolist()
        [1, 2, 3, 0]
    """
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    ids = np.searchsorted(np.asarray(boundaries, dtype=np.float64), np.where(missing, 0.0, values), side="right") + 1
    return np.where(missing, 0, ids).astype(np.int32)


def float_bits(values: np.ndarray) -> np.ndarray:
    """The float32 bit patterns of values as int32 (how float columns travel in the int32 records)."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.float32)).view(np.int32)


_CHUNK = 1 << 18  # values summed at a time: per-exponent sums of 2**18 terms below 2**34 stay exact in float64


def _scaled(total: int, exponent: int) -> fractions.Fraction:
    """total * 2**exponent, exactly."""
    return fractions.Fraction(total << exponent) if exponent >= 0 else fractions.Fraction(total, 1 << -exponent)


def _exact_power_sums(values: np.ndarray) -> Tuple[fractions.Fraction, fractions.Fraction]:
    """sum(v) and sum(v * v) of finite float64 values, exactly (a float64 is an integer times a power of two).

    Each value is m * 2**e with an integer |m| < 2**53 (`np.frexp`), cut into 16-bit limbs
    m = d3 * 2**48 + d2 * 2**32 + d1 * 2**16 + d0 (d3 signed). Per exponent, the limbs and the limb products of
    m * m (grouped by their power of 2**16) are summed by `np.bincount` in float64, which is exact: every term is
    an integer below 2**34 and a chunk has at most 2**18 of them, so every partial sum is an integer below 2**53.
    The few per-exponent sums are combined as Python integers. No sort, about twenty vector operations a block.

    Example:
        >>> [float(total) for total in _exact_power_sums(np.array([1.5, -2.0, 0.0]))]
        [-0.5, 6.25]
        >>> float(_exact_power_sums(np.array([0.1, 0.2, -0.3]))[0])  # float64 arithmetic would give 5.55e-17
        2.7755575615628914e-17
    """
    first, second = fractions.Fraction(0), fractions.Fraction(0)
    for start in range(0, len(values), _CHUNK):
        mantissas, exponents = np.frexp(np.asarray(values[start:start + _CHUNK], dtype=np.float64))
        if not len(exponents):
            continue
        low = int(exponents.min())
        groups = exponents - low
        width = int(groups.max()) + 1
        m = (mantissas * float(1 << 53)).astype(np.int64)  # exact: v = m * 2**(e - 53)
        d0, d1, d2 = [((m >> (16 * k)) & 0xFFFF).astype(np.float64) for k in range(3)]
        d3 = (m >> 48).astype(np.float64)  # in [-32, 32)

        def summed(weights: np.ndarray, groups: np.ndarray = groups, width: int = width) -> np.ndarray:
            return np.bincount(groups, weights=weights, minlength=width)

        firsts = [summed(d0), summed(d1), summed(d2), summed(d3)]
        seconds = [summed(d0 * d0), summed(2 * d0 * d1), summed(2 * d0 * d2 + d1 * d1),
                   summed(2 * (d0 * d3 + d1 * d2)), summed(2 * d1 * d3 + d2 * d2), summed(2 * d2 * d3),
                   summed(d3 * d3)]
        for group in np.flatnonzero(np.bincount(groups, minlength=width)).tolist():
            exponent = low + group - 53
            first += _scaled(sum(int(part[group]) << (16 * k) for k, part in enumerate(firsts)), exponent)
            second += _scaled(sum(int(part[group]) << (16 * k) for k, part in enumerate(seconds)), 2 * exponent)
    return first, second


class _Moments:
    """Count and exact sums of t(v) and t(v)^2: mergeable in any order with the same result."""

    def __init__(self) -> None:
        self.count = 0
        self.total, self.squares = fractions.Fraction(0), fractions.Fraction(0)

    def add(self, values: np.ndarray) -> None:
        total, squares = _exact_power_sums(values)
        self.count += len(values)
        self.total += total
        self.squares += squares

    def merge(self, other: "_Moments") -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares

    def mean_and_std(self) -> Tuple[float, float]:
        """The mean and population standard deviation (0 without values), each rounded once from exact values."""
        if not self.count:
            return 0.0, 0.0
        mean = self.total / self.count
        variance = self.squares / self.count - mean * mean  # exact, so never negative
        return float(mean), math.sqrt(float(variance))


def sample_keys(seed: int, position: int, file_name: str, line_numbers: Union[Sequence[int], np.ndarray]) -> np.ndarray:
    """uint64 sample keys of rows: a seeded hash of (seed, field position, file base name, line number), so a row's
    chance to enter the sample depends on nothing else (the order of reading, the blocks, the runner)."""
    return splits_lib.line_hashes(f"numeric-sample\0{int(seed)}\0{int(position)}\0{file_name}", line_numbers)


class _Sample:
    """The `size` values with the smallest keys seen so far (a uniform sample without replacement); equal keys (the
    same base name and line in two folders) are broken by the smaller value, so the sample is a function of the
    (key, value) pairs only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys = np.zeros((0,), np.uint64)
        self.values = np.zeros((0,), np.float64)

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        keys = np.concatenate([self.keys, np.asarray(keys, np.uint64)])
        values = np.concatenate([self.values, np.asarray(values, np.float64)])
        if len(keys) > self.size:
            cut = np.partition(keys, self.size - 1)[self.size - 1]
            below = np.flatnonzero(keys < cut)
            at = np.flatnonzero(keys == cut)
            at = at[np.argsort(values[at], kind="stable")[:self.size - len(below)]]
            keep = np.concatenate([below, at])
            keys, values = keys[keep], values[keep]
        self.keys, self.values = keys, values

    def merge(self, other: "_Sample") -> None:
        self.add(other.keys, other.values)


class NumericStatistics:
    """Pass-1 accumulator of every treated numeric field (see the module doc).

    Args:
        schema: the schema.
        seed: the seed of the quantile sample.
        sample_size: values kept per `num_buckets` field (None: `SAMPLE_SIZE`).
    """

    def __init__(self, schema: schema_lib.Schema, seed: int = 0, sample_size: Optional[int] = None) -> None:
        self.schema, self.seed = schema, int(seed)
        sample_size = SAMPLE_SIZE if sample_size is None else sample_size
        self.missing: Dict[str, int] = {field.name: 0 for field in schema.treated_fields}
        self._moments = {field.name: _Moments() for field in schema.treated_fields if field.is_float}
        self._samples = {field.name: _Sample(sample_size) for field in schema.fields if field.num_buckets is not None}
        self._positions = {field.name: position for position, field in enumerate(schema.fields)}
        self._values_added = {name: 0 for name in self._samples}

    def add(self, field: schema_lib.FieldSpec, values: np.ndarray, file_name: str = "",
            line_numbers: Optional[np.ndarray] = None) -> None:
        """Adds a block's values of one field (float64, NaN = missing).

        Args:
            field: the field.
            values: its values in the block's valid rows.
            file_name: the base name of the block's file (the build passes it; part of the sample keys).
            line_numbers: the rows' line numbers (the sample keys); None numbers the values this accumulator was
                given for the field 1, 2, ... (a direct caller's stream of values).
        """
        missing = np.isnan(values)
        present = values[~missing]
        self.missing[field.name] += int(missing.sum())
        if field.is_float:
            self._moments[field.name].add(transformed(present, str(field.normalization)))
        elif field.name in self._samples:
            if line_numbers is None:
                first = self._values_added[field.name]
                line_numbers = np.arange(first + 1, first + len(values) + 1)
            self._values_added[field.name] += len(values)
            keys = sample_keys(self.seed, self._positions[field.name], file_name,
                               np.asarray(line_numbers)[~missing])
            self._samples[field.name].add(keys, present)

    def merge(self, other: "NumericStatistics") -> "NumericStatistics":
        """Adds another accumulator of the same schema and seed (other blocks) to this one; returns this one. The
        result does not depend on the order of the merges (see the module doc)."""
        if other.schema.treated_fields != self.schema.treated_fields or other.seed != self.seed:
            raise ValueError("NumericStatistics.merge: the accumulators belong to different schemas or seeds.")
        for name, count in other.missing.items():
            self.missing[name] += count
        for name, moments in other._moments.items():
            self._moments[name].merge(moments)
        for name, sample in other._samples.items():
            self._samples[name].merge(sample)
        return self

    def result(self) -> Dict[str, List[Dict[str, Any]]]:
        """The manifest's `numeric` section: per treatment, one entry per field in schema order."""
        section: Dict[str, List[Dict[str, Any]]] = {schema_lib.BUCKETIZED: [], schema_lib.EMBEDDED: [],
                                                    schema_lib.DENSE: []}
        for field in self.schema.treated_fields:
            entry: Dict[str, Any] = {"name": field.name, "missing_rows": int(self.missing[field.name])}
            if field.treatment == schema_lib.BUCKETIZED:
                if field.boundaries is not None:
                    boundaries = list(field.boundaries)
                else:
                    num_buckets = int(field.num_buckets or 2)  # set: the schema checks bucketized fields
                    sample = np.sort(self._samples[field.name].values)
                    quantiles = np.arange(1, num_buckets) / num_buckets
                    boundaries = np.unique(np.quantile(sample, quantiles)).tolist() if len(sample) else []
                    if len(boundaries) < num_buckets - 1:
                        logger.warning("field %r: %d distinct quantile boundaries for num_buckets=%d (repeated "
                                       "values)", field.name, len(boundaries), num_buckets)
                entry["boundaries"] = [float(b) for b in boundaries]
            else:
                moments = self._moments[field.name]
                mean, std = moments.mean_and_std()
                if std == 0.0:
                    logger.warning("field %r: no spread in %d value(s); its std is taken as 1", field.name,
                                   moments.count)
                entry.update({"normalization": field.normalization, "mean": mean, "std": std if std > 0 else 1.0,
                              "log1p": field.normalization == schema_lib.LOG1P_NORMALIZATION})
            section[str(field.treatment)].append(entry)
        return section


def missing_rows(numeric: Optional[Mapping[str, Any]]) -> Dict[str, int]:
    """{field: rows whose value was missing} of a `numeric` section (the ingest report's `numeric_missing`)."""
    return {entry["name"]: int(entry["missing_rows"]) for entries in (numeric or {}).values() for entry in entries}


def model_inputs(numeric: Optional[Mapping[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """The model's float inputs (`NumericInputs.from_dict` form) from a manifest's `numeric` section."""
    numeric = numeric or {}
    return {key: [{name: entry[name] for name in ("name", "mean", "std", "log1p")}
                  for entry in numeric.get(key, [])] for key in (schema_lib.EMBEDDED, schema_lib.DENSE)}
