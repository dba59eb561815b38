"""Exact ROC AUC and log loss as Keras metrics, for `model.compile` under Keras 3 and legacy tf-keras.

The paper's differences between models are 1e-4 AUC, below the error of `tf.keras.metrics.AUC` with its default 200
thresholds (docs/training.md has the measurement), so `ExactAUC` keeps every (score, label, weight) it has seen and
ranks them; `LogLoss` accumulates in float64.
"""

from typing import Optional, Tuple

import tensorflow as tf

from tf_multiembed import types

# Probabilities are clipped to [eps, 1 - eps] before the log, as Keras' binary cross-entropy does.
_LOG_EPSILON = 1e-7


def _flatten_inputs(owner: str, y_true: types.TensorLike, y_pred: types.TensorLike,
                    sample_weight: Optional[types.TensorLike],
                    dtype: tf.DType) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Flattens labels, predictions and weights to `[n]` tensors of `dtype` and checks their ranges."""
    y_true = tf.reshape(tf.cast(y_true, dtype), [-1])
    y_pred = tf.reshape(tf.cast(y_pred, dtype), [-1])
    if sample_weight is None:
        weight = tf.ones_like(y_true)
    else:
        weight = tf.reshape(tf.cast(sample_weight, dtype), [-1])
        weight = tf.broadcast_to(weight, tf.shape(y_true))
    checks = [
        tf.debugging.assert_equal(
            tf.size(y_true), tf.size(y_pred),
            message=f"{owner}: y_true and y_pred must hold one value per example (shapes [B] or [B, 1])",
        ),
        tf.debugging.assert_less_equal(
            tf.reduce_max(tf.abs(y_true - 0.5)), tf.constant(0.5, dtype),
            message=f"{owner}: labels must lie in [0, 1] (click = 1, no click = 0)",
        ),
        # NaN fails this check too, because every comparison with NaN is false.
        tf.debugging.assert_equal(
            tf.reduce_all(tf.abs(y_pred - 0.5) <= 0.5), True,
            message=f"{owner}: predictions must be probabilities in [0, 1] (apply the sigmoid first; no NaN)",
        ),
        tf.debugging.assert_non_negative(weight, message=f"{owner}: sample weights must be >= 0"),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(y_true), tf.identity(y_pred), tf.identity(weight)


def _ranked_auc(scores: tf.Tensor, positive_weight: tf.Tensor, negative_weight: tf.Tensor) -> tf.Tensor:
    """Weighted ROC AUC of scores sorted ascending, with tied scores counting one half.

    AUC = sum over groups g of equal score of P_g * (N_below_g + N_g / 2) / (P * N), where P_g and N_g are the
    positive and negative weights in the group. Returns NaN when either class has no weight (AUC is undefined).
    """
    starts_group = tf.concat([tf.ones([tf.minimum(tf.size(scores), 1)], tf.bool), scores[1:] != scores[:-1]], 0)
    group = tf.cumsum(tf.cast(starts_group, tf.int32)) - 1
    positives = tf.math.segment_sum(positive_weight, group)
    negatives = tf.math.segment_sum(negative_weight, group)
    negatives_below = tf.cumsum(negatives, exclusive=True)
    numerator = tf.reduce_sum(positives * (negatives_below + 0.5 * negatives))
    denominator = tf.reduce_sum(positives) * tf.reduce_sum(negatives)
    return numerator / denominator


def _sorted_auc(scores: tf.Tensor, positive_weight: tf.Tensor, negative_weight: tf.Tensor) -> tf.Tensor:
    order = tf.argsort(scores, stable=True)
    return _ranked_auc(tf.gather(scores, order), tf.gather(positive_weight, order), tf.gather(negative_weight, order))


def exact_auc(y_true: types.TensorLike, y_pred: types.TensorLike,
              sample_weight: Optional[types.TensorLike] = None) -> tf.Tensor:
    """The exact (weighted) ROC AUC of one set of labels and scores, ties counted one half; NaN for one class.

    The stateless form of `ExactAUC`, without variables (usable in any context, e.g. a parameter-server coordinator).

    Example:
        >>> float(exact_auc([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]))
        0.875
    """
    y_true, y_pred, weight = _flatten_inputs("exact_auc", y_true, y_pred, sample_weight, tf.float64)
    return _sorted_auc(y_pred, y_true * weight, (1.0 - y_true) * weight)


def _log_losses(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    probability = tf.clip_by_value(y_pred, _LOG_EPSILON, 1.0 - _LOG_EPSILON)
    return -(y_true * tf.math.log(probability) + (1.0 - y_true) * tf.math.log(1.0 - probability))


def log_loss(y_true: types.TensorLike, y_pred: types.TensorLike,
             sample_weight: Optional[types.TensorLike] = None) -> tf.Tensor:
    """The (weighted) mean binary cross-entropy in float64, the stateless form of `LogLoss`.

    Example:
        >>> round(float(log_loss([1, 0], [0.5, 0.5])), 6)
        0.693147
    """
    y_true, y_pred, weight = _flatten_inputs("log_loss", y_true, y_pred, sample_weight, tf.float64)
    return tf.reduce_sum(weight * _log_losses(y_true, y_pred)) / tf.reduce_sum(weight)


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class ExactAUC(tf.keras.metrics.Metric):
    """Exact ROC AUC over every example seen, ties counted as one half (equal to `sklearn.metrics.roc_auc_score`).

    The metric appends each batch's scores, positive weights `y * w` and negative weights `(1 - y) * w` to a buffer
    that grows by doubling, and `result()` ranks the whole buffer: O(n) memory (12 bytes per example) and
    O(n log n) time per result. Labels may be soft (in [0, 1]); for 0/1 labels and sample weights the value is
    sklearn's weighted AUC. `result()` is the exact value wherever it is called.

    Keras calls every compiled metric's `result()` after each step (for the progress bar), so in
    `model.compile(metrics=[ExactAUC()])` the cost of an epoch grows with the square of its steps: fine for
    evaluating splits of up to a few million rows, not as a training metric on Criteo-sized data. The package's
    training loop therefore does not compile it: it predicts the validation and test splits and ranks them once
    (`tf_multiembed.training.evaluate`, `ExactValidation`), with the same ranking as this metric.

    Under a `tf.distribute` strategy each replica all-gathers the batch, so every replica holds the whole
    (global) buffer and all replicas and workers report the same value. Create the metric inside
    `strategy.scope()`, like any Keras metric. The buffer has a dynamic shape, so the metric cannot run inside
    XLA-compiled steps (`jit_compile=True`, TPUs).

    Args:
        name: metric name (Keras logs it as `name` and `val_<name>`).
        dtype: dtype of the result; the ranking itself always accumulates in float64.

    Example:
        >>> auc = ExactAUC()
        >>> auc.update_state([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> float(auc.result())
        0.75
    """

    def __init__(self, name: str = "auc", dtype: str = "float64") -> None:
        super().__init__(name=name, dtype=dtype)
        # ON_READ + ONLY_FIRST_REPLICA: each replica updates its own copy (no cross-replica traffic per assign);
        # the copies stay identical because every update is all-gathered first.
        local = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        # Columns: score, positive weight, negative weight. Rows [count, capacity) are unused.
        self._buffer = tf.Variable(
            tf.zeros([0, 3], tf.float32), shape=tf.TensorShape([None, 3]), name=f"{name}_buffer", **local
        )
        self._count = tf.Variable(tf.constant(0, tf.int64), name=f"{name}_count", **local)

    def update_state(self, y_true: types.TensorLike, y_pred: types.TensorLike,
                     sample_weight: Optional[types.TensorLike] = None) -> None:
        # float32 storage: model outputs are float32, and 0/1 labels and typical weights are exact in it.
        y_true, y_pred, weight = _flatten_inputs("ExactAUC", y_true, y_pred, sample_weight, tf.float32)
        rows = tf.stack([y_pred, y_true * weight, (1.0 - y_true) * weight], axis=1)
        replica_context = tf.distribute.get_replica_context()
        if replica_context is not None and replica_context.num_replicas_in_sync > 1:
            rows = replica_context.all_gather(rows, axis=0)
        self._append(rows)

    def _append(self, rows: tf.Tensor) -> None:
        start = self._count.read_value()
        end = start + tf.cast(tf.shape(rows)[0], tf.int64)
        capacity = tf.cast(tf.shape(self._buffer)[0], tf.int64)

        def grow() -> tf.Tensor:
            # Doubling keeps the total copy cost linear in the number of examples.
            new_capacity = tf.maximum(end, 2 * capacity)
            self._buffer.assign(tf.concat([self._buffer, tf.zeros(tf.stack([new_capacity - capacity, 3]))], 0))
            return tf.constant(True)

        tf.cond(end > capacity, grow, lambda: tf.constant(False))
        self._buffer[start:end].assign(rows)
        self._count.assign(end)

    def result(self) -> tf.Tensor:
        """The exact AUC of everything seen so far (NaN if either class is absent)."""
        rows = self._buffer[: self._count.read_value()]
        weights = tf.cast(rows[:, 1:], tf.float64)
        return tf.cast(_sorted_auc(rows[:, 0], weights[:, 0], weights[:, 1]), self.dtype)

    def reset_state(self) -> None:
        self._buffer.assign(tf.zeros([0, 3], tf.float32))
        self._count.assign(0)

    def get_config(self) -> types.Config:
        return {"name": self.name, "dtype": self.dtype}


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class LogLoss(tf.keras.metrics.Metric):
    """Mean binary cross-entropy (log loss) of probabilities, accumulated in float64.

    logloss = sum_i w_i * -(y_i log p_i + (1 - y_i) log(1 - p_i)) / sum_i w_i, with p clipped to [1e-7, 1 - 1e-7]
    (Keras' clipping; sklearn's `log_loss` clips at float eps, so they differ only for p within 1e-7 of 0 or 1).
    Unlike a float32 running mean, the sums stay exact to ~1e-16 relative over millions of examples.

    Args:
        name: metric name.
        dtype: dtype of the result.

    Example:
        >>> logloss = LogLoss()
        >>> logloss.update_state([1, 0], [0.5, 0.5])
        >>> round(float(logloss.result()), 6)
        0.693147
    """

    def __init__(self, name: str = "logloss", dtype: str = "float64") -> None:
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_weight(name="total", shape=(), initializer="zeros", dtype="float64")
        self.weight = self.add_weight(name="weight", shape=(), initializer="zeros", dtype="float64")

    def update_state(self, y_true: types.TensorLike, y_pred: types.TensorLike,
                     sample_weight: Optional[types.TensorLike] = None) -> None:
        y_true, y_pred, weight = _flatten_inputs("LogLoss", y_true, y_pred, sample_weight, tf.float64)
        self.total.assign_add(tf.reduce_sum(weight * _log_losses(y_true, y_pred)))
        self.weight.assign_add(tf.reduce_sum(weight))

    def result(self) -> tf.Tensor:
        return tf.cast(self.total / self.weight, self.dtype)

    def get_config(self) -> types.Config:
        return {"name": self.name, "dtype": self.dtype}
