"""Calibration of click probabilities: how far they are from observed rates, and post-hoc calibrators that fix it.

CTR probabilities are read as probabilities (bids, ranking mixes), so a model whose AUC is fine but whose predictions
are on average too high is wrong where it matters. Two measures are reported with every evaluation of the package:

- expected calibration error over equal-mass bins: the predictions sorted and cut into `num_bins` bins of (nearly)
  equal size, ECE = sum_b (n_b / n) * |mean prediction_b - observed rate_b| (equal mass rather than equal width
  because CTR predictions crowd near 0, where equal-width bins would put almost every example in the first bin);
- the calibration ratio, mean prediction / observed rate (1 = calibrated on average; TF Serving users call it
  "predicted over actual").

Two calibrators are fitted on the validation split (after early stopping chose the weights) and travel with the
export, where `serving_default` applies them inside the graph:

- `PlattCalibrator`: p' = sigmoid(a * logit(p) + b), (a, b) by maximum likelihood (Newton's method on the mean log
  loss); two parameters, monotone for a > 0, so the AUC is unchanged;
- `IsotonicCalibrator`: the monotone step function of least squared error (pool adjacent violators), served as
  linear interpolation between its blocks' ends (as scikit-learn's `IsotonicRegression`); it can tie scores, so the
  AUC may move slightly.

This module needs only NumPy and TensorFlow, so the training side (which fits) and the serving side (which applies)
both import it.

Example:
    >>> import numpy as np
    >>> labels, predictions = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    >>> round(expected_calibration_error(labels, predictions, num_bins=2), 6)
    0.4
    >>> round(calibration_ratio(labels, predictions), 6)
    0.5
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

CALIBRATIONS = ("none", "platt", "isotonic")
DEFAULT_NUM_BINS = 10
# Probabilities are clipped to [eps, 1 - eps] before the logit (the log loss's clipping, training.metrics).
_EPSILON = 1e-7


def _as_arrays(labels: ArrayLike, predictions: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, np.float64).reshape(-1)
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"calibration: labels and predictions must have one value per example, received "
                         f"{labels.size} labels and {predictions.size} predictions.")
    return labels, predictions


def expected_calibration_error(labels: ArrayLike, predictions: ArrayLike, num_bins: int = DEFAULT_NUM_BINS) -> float:
    """Expected calibration error over `num_bins` equal-mass bins of the sorted predictions (NaN for no examples).

    Example:
        >>> round(expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], num_bins=1), 6)
        0.0
    """
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins <= 0:
        raise ValueError(f"expected_calibration_error: `num_bins` must be a positive integer, received {num_bins!r}.")
    labels, predictions = _as_arrays(labels, predictions)
    if not labels.size:
        return math.nan
    order = np.argsort(predictions, kind="stable")
    error = 0.0
    for indices in np.array_split(order, min(num_bins, labels.size)):
        error += indices.size * abs(predictions[indices].mean() - labels[indices].mean())
    return float(error / labels.size)


def calibration_ratio(labels: ArrayLike, predictions: ArrayLike) -> float:
    """Mean prediction / observed positive rate (NaN when there is no positive example)."""
    labels, predictions = _as_arrays(labels, predictions)
    rate = labels.mean() if labels.size else 0.0
    return float(predictions.mean() / rate) if rate > 0 else math.nan


def calibration_metrics(labels: ArrayLike, predictions: ArrayLike, prefix: str = "") -> Dict[str, float]:
    """`{prefix + "ece": ..., prefix + "calibration_ratio": ...}`, the calibration part of every evaluation."""
    return {f"{prefix}ece": expected_calibration_error(labels, predictions),
            f"{prefix}calibration_ratio": calibration_ratio(labels, predictions)}


def _logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, _EPSILON, 1.0 - _EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


@dataclasses.dataclass(frozen=True)
class PlattCalibrator:
    """p' = sigmoid(slope * logit(p) + intercept), with p clipped to [1e-7, 1 - 1e-7] first.

    Example:
        >>> round(float(PlattCalibrator(slope=1.0, intercept=0.0).apply([0.25])[0]), 6)
        0.25
    """

    slope: float
    intercept: float
    kind = "platt"

    @classmethod
    def fit(cls, labels: ArrayLike, predictions: ArrayLike, max_iterations: int = 100) -> "PlattCalibrator":
        """Maximum-likelihood (a, b) of the calibrated log loss, by Newton's method with step halving."""
        labels, predictions = _as_arrays(labels, predictions)
        _check_both_classes(labels, "PlattCalibrator")
        features = np.stack([_logit(predictions), np.ones_like(predictions)], axis=1)
        parameters = np.array([1.0, 0.0])

        def loss(candidate: np.ndarray) -> float:
            z = features @ candidate
            # log(1 + e^z) - y z, computed without overflow.
            return float(np.mean(np.logaddexp(0.0, z) - labels * z))

        current = loss(parameters)
        for _ in range(max_iterations):
            probability = 1.0 / (1.0 + np.exp(-(features @ parameters)))
            gradient = features.T @ (probability - labels) / labels.size
            curvature = probability * (1.0 - probability)
            hessian = (features * curvature[:, None]).T @ features / labels.size + 1e-12 * np.eye(2)
            step = np.linalg.solve(hessian, gradient)
            scale = 1.0
            while scale > 1e-8:
                candidate = parameters - scale * step
                candidate_loss = loss(candidate)
                if candidate_loss <= current:
                    break
                scale /= 2
            else:
                break
            converged = abs(current - candidate_loss) < 1e-15 and np.max(np.abs(scale * step)) < 1e-10
            parameters, current = candidate, candidate_loss
            if converged:
                break
        return cls(slope=float(parameters[0]), intercept=float(parameters[1]))

    def apply(self, probabilities: ArrayLike) -> np.ndarray:
        z = self.slope * _logit(np.asarray(probabilities, np.float64)) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def tf_apply(self, probabilities: tf.Tensor) -> tf.Tensor:
        """The same map in TensorFlow (float64 inside, the input's dtype out), for the serving graph."""
        p = tf.clip_by_value(tf.cast(probabilities, tf.float64), _EPSILON, 1.0 - _EPSILON)
        z = self.slope * (tf.math.log(p) - tf.math.log1p(-p)) + self.intercept
        return tf.cast(tf.sigmoid(z), probabilities.dtype)

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "slope": self.slope, "intercept": self.intercept}


@dataclasses.dataclass(frozen=True)
class IsotonicCalibrator:
    """A non-decreasing piecewise-linear map through the points (`inputs`, `outputs`), constant outside them.

    Example:
        >>> calibrator = IsotonicCalibrator.fit([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4])
        >>> calibrator.inputs, calibrator.outputs
        ((0.1, 0.2, 0.3, 0.4), (0.0, 0.5, 0.5, 1.0))
    """

    inputs: Tuple[float, ...]
    outputs: Tuple[float, ...]
    kind = "isotonic"

    def __post_init__(self) -> None:
        inputs, outputs = np.asarray(self.inputs, np.float64), np.asarray(self.outputs, np.float64)
        if inputs.ndim != 1 or inputs.shape != outputs.shape or not inputs.size:
            raise ValueError("IsotonicCalibrator: `inputs` and `outputs` must be non-empty and of one length, "
                             f"received {inputs.size} and {outputs.size}.")
        if np.any(np.diff(inputs) <= 0) or np.any(np.diff(outputs) < 0):
            raise ValueError("IsotonicCalibrator: `inputs` must increase strictly and `outputs` must not decrease.")

    @classmethod
    def fit(cls, labels: ArrayLike, predictions: ArrayLike) -> "IsotonicCalibrator":
        """Pool adjacent violators over the distinct predictions (weighted by their counts)."""
        labels, predictions = _as_arrays(labels, predictions)
        _check_both_classes(labels, "IsotonicCalibrator")
        values, inverse, counts = np.unique(predictions, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse.reshape(-1), weights=labels, minlength=values.size)
        # Blocks as a stack of (label sum, weight, first value index, last value index).
        block_sum: List[float]
        block_weight: List[float]
        block_first: List[int]
        block_last: List[int]
        block_sum, block_weight, block_first, block_last = [], [], [], []
        for index in range(values.size):
            total, weight, first = float(sums[index]), float(counts[index]), index
            while block_weight and block_sum[-1] / block_weight[-1] >= total / weight:
                total += block_sum.pop()
                weight += block_weight.pop()
                first = block_first.pop()
                block_last.pop()
            block_sum.append(total)
            block_weight.append(weight)
            block_first.append(first)
            block_last.append(index)
        inputs, outputs = [], []
        for total, weight, first, last in zip(block_sum, block_weight, block_first, block_last):
            for end in ((first, last) if last != first else (first,)):
                inputs.append(float(values[end]))
                outputs.append(total / weight)
        return cls(inputs=tuple(inputs), outputs=tuple(outputs))

    def apply(self, probabilities: ArrayLike) -> np.ndarray:
        return np.interp(np.asarray(probabilities, np.float64), self.inputs, self.outputs)

    def tf_apply(self, probabilities: tf.Tensor) -> tf.Tensor:
        """`np.interp` in TensorFlow (float64 inside, the input's dtype out), for the serving graph."""
        x = tf.constant(self.inputs, tf.float64)
        y = tf.constant(self.outputs, tf.float64)
        p = tf.cast(probabilities, tf.float64)
        if len(self.inputs) == 1:
            return tf.cast(tf.fill(tf.shape(p), y[0]), probabilities.dtype)
        flat = tf.reshape(p, [-1])
        upper = tf.clip_by_value(tf.searchsorted(x, flat, side="right"), 1, len(self.inputs) - 1)
        x0, x1 = tf.gather(x, upper - 1), tf.gather(x, upper)
        y0, y1 = tf.gather(y, upper - 1), tf.gather(y, upper)
        share = tf.clip_by_value((flat - x0) / (x1 - x0), 0.0, 1.0)
        return tf.cast(tf.reshape(y0 + share * (y1 - y0), tf.shape(p)), probabilities.dtype)

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "inputs": list(self.inputs), "outputs": list(self.outputs)}


Calibrator = Union[PlattCalibrator, IsotonicCalibrator]


def _check_both_classes(labels: np.ndarray, owner: str) -> None:
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"{owner}: labels must be 0 or 1.")
    if labels.size == 0 or labels.min() == labels.max():
        raise ValueError(f"{owner}: the calibration split must hold both clicks and non-clicks, received "
                         f"{labels.size} examples of one class; calibration needs a validation split with both.")


def fit_calibrator(kind: str, labels: ArrayLike, predictions: ArrayLike) -> Calibrator:
    """A calibrator of `kind` ("platt" or "isotonic") fitted on labels and the model's probabilities."""
    if kind == "platt":
        return PlattCalibrator.fit(labels, predictions)
    if kind == "isotonic":
        return IsotonicCalibrator.fit(labels, predictions)
    raise ValueError(f"fit_calibrator: `kind` must be 'platt' or 'isotonic', received {kind!r}.")


def calibrator_from_dict(record: Mapping[str, Any]) -> Calibrator:
    """The calibrator `to_dict` described (as stored in results.json and the export's metadata)."""
    kind = record.get("kind")
    if kind == "platt":
        return PlattCalibrator(slope=float(record["slope"]), intercept=float(record["intercept"]))
    if kind == "isotonic":
        return IsotonicCalibrator(inputs=tuple(record["inputs"]), outputs=tuple(record["outputs"]))
    raise ValueError(f"calibrator_from_dict: unknown calibrator kind {kind!r} (expected 'platt' or 'isotonic').")
