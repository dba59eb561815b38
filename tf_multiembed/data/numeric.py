"""Numeric fields with a treatment (docs/inputs.md): pass-1 statistics and boundaries, bucket ids, float bits.

Pass 1 of the build feeds every block's parsed values (float64, NaN = missing) to `NumericStatistics`:

- embedded and dense fields: count, mean and sum of squared deviations of t(v) (t = identity, or log1p(max(v, 0))),
  merged block by block with Chan's parallel update in float64 (exact up to rounding, whatever the block sizes);
  std is the population standard deviation, and 1 where it is 0 or no value was seen (logged);
- bucketized fields with `num_buckets`: a uniform sample without replacement of at most `SAMPLE_SIZE` present
  values (the values with the smallest seeded random keys: bounded memory, the same sample for the same input and
  seed), whose exact quantiles k / num_buckets (NumPy's "linear" method) are the boundaries, repeats removed. With
  fewer present values than `SAMPLE_SIZE` the sample is every value, so the boundaries are the exact quantiles of
  the whole input.

The result is the manifest's `numeric` section; `model_inputs` turns it into the model's `NumericInputs` form.
"""

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from tf_multiembed.data import schema as schema_lib

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


class _Moments:
    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        count, mean = len(values), float(np.mean(values))
        m2 = float(np.sum((values - mean) ** 2))
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total


class _Sample:
    """The `size` values with the smallest random keys seen so far (a uniform sample without replacement)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self._rng = np.random.default_rng(seed)
        self.keys = np.zeros((0,), np.float64)
        self.values = np.zeros((0,), np.float64)

    def add(self, values: np.ndarray) -> None:
        keys = np.concatenate([self.keys, self._rng.random(len(values))])
        values = np.concatenate([self.values, values])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[:self.size]
            keys, values = keys[keep], values[keep]
        self.keys, self.values = keys, values


class NumericStatistics:
    """Pass-1 accumulator of every treated numeric field (see the module doc).

    Args:
        schema: the schema.
        seed: the seed of the quantile sample.
        sample_size: values kept per `num_buckets` field.
    """

    def __init__(self, schema: schema_lib.Schema, seed: int = 0, sample_size: int = SAMPLE_SIZE) -> None:
        self.schema = schema
        self.missing: Dict[str, int] = {field.name: 0 for field in schema.treated_fields}
        self._moments = {field.name: _Moments() for field in schema.treated_fields if field.is_float}
        self._samples = {field.name: _Sample(sample_size, seed + position)
                         for position, field in enumerate(schema.fields) if field.num_buckets is not None}

    def add(self, field: schema_lib.FieldSpec, values: np.ndarray) -> None:
        """Adds a block's values of one field (float64, NaN = missing)."""
        present = values[~np.isnan(values)]
        self.missing[field.name] += len(values) - len(present)
        if field.is_float:
            self._moments[field.name].add(transformed(present, str(field.normalization)))
        elif field.name in self._samples:
            self._samples[field.name].add(present)

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
                std = (moments.m2 / moments.count) ** 0.5 if moments.count else 0.0
                if std == 0.0:
                    logger.warning("field %r: no spread in %d value(s); its std is taken as 1", field.name,
                                   moments.count)
                entry.update({"normalization": field.normalization, "mean": float(moments.mean),
                              "std": float(std) if std > 0 else 1.0,
                              "log1p": field.normalization == schema_lib.LOG1P_NORMALIZATION})
            section[str(field.treatment)].append(entry)
        return section


def model_inputs(numeric: Optional[Mapping[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """The model's float inputs (`NumericInputs.from_dict` form) from a manifest's `numeric` section."""
    numeric = numeric or {}
    return {key: [{name: entry[name] for name in ("name", "mean", "std", "log1p")}
                  for entry in numeric.get(key, [])] for key in (schema_lib.EMBEDDED, schema_lib.DENSE)}
