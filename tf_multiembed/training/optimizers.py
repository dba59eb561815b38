"""Adam with coupled L2 (PyTorch's `Adam(weight_decay=...)`, the paper's optimizer), with dense or sparse (lazy)
updates of embedding tables."""

from typing import Any, Optional, Tuple, Union

import tensorflow as tf

from tf_multiembed import types
from tf_multiembed.compat import adam_slots, as_tf_variable

DENSE = "dense"
SPARSE = "sparse"
EMBEDDING_UPDATES = (SPARSE, DENSE)


def deduplicate_slices(gradient: tf.IndexedSlices) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(rows, values, valid): the slices of `gradient` summed per row, in static shapes (XLA-compatible).

    A row gathered k times in a batch (or by k replicas) appears k times in the slices; Adam must see their sum once.
    `tf.unique` would do it but has a dynamic output shape, which XLA cannot compile, so the indices are sorted and
    segment-summed into as many slots as there are slices: the first `num_unique` slots hold the distinct rows and
    their summed values; the remaining slots point at row 0 with zero values and `valid` = 0, so updates
    computed from them must be multiplied by `valid`.

    Example:
        >>> rows, values, valid = deduplicate_slices(tf.IndexedSlices(tf.ones([3, 2]), tf.constant([4, 1, 4])))
        >>> rows.numpy().tolist(), values.numpy()[:, 0].tolist(), valid.numpy()[:, 0].tolist()
        ([1, 4, 0], [1.0, 2.0, 0.0], [1.0, 1.0, 0.0])
    """
    indices = tf.reshape(gradient.indices, [-1])
    values = gradient.values
    count = tf.shape(indices)[0]
    order = tf.argsort(indices, stable=True)
    sorted_indices = tf.gather(indices, order)
    # Indices are >= 0, so -1 marks the first position as the start of a segment.
    previous = tf.concat([tf.constant([-1], indices.dtype), sorted_indices[:-1]], axis=0)
    starts = tf.cast(tf.not_equal(sorted_indices, previous), tf.int32)
    segments = tf.cumsum(starts) - 1
    summed = tf.math.unsorted_segment_sum(tf.gather(values, order), segments, count)
    # Empty (padding) segments get the dtype's minimum from segment_max; they point at row 0 instead.
    rows = tf.maximum(tf.math.unsorted_segment_max(sorted_indices, segments, count), 0)
    valid = tf.range(count) < tf.reduce_sum(starts)
    mask = tf.reshape(tf.cast(valid, values.dtype), [-1] + [1] * (values.shape.rank - 1))
    return rows, summed, mask


def unique_slices(gradient: tf.IndexedSlices) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(rows, values, valid) like `deduplicate_slices`, with only the distinct rows (a dynamic shape, not for XLA).

    Example:
        >>> rows, values, valid = unique_slices(tf.IndexedSlices(tf.ones([3, 2]), tf.constant([4, 1, 4])))
        >>> rows.numpy().tolist(), values.numpy()[:, 0].tolist(), valid.numpy()[:, 0].tolist()
        ([4, 1], [2.0, 1.0], [1.0, 1.0])
    """
    rows, position = tf.unique(tf.reshape(gradient.indices, [-1]))
    summed = tf.math.unsorted_segment_sum(gradient.values, position, tf.size(rows))
    return rows, summed, tf.ones([tf.size(rows)] + [1] * (gradient.values.shape.rank - 1), gradient.values.dtype)


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class CoupledL2Adam(tf.keras.optimizers.Adam):
    """Adam whose gradients carry an L2 term, g <- g + l2 * w, before the moments; dense or lazy embedding updates.

    This is PyTorch's `torch.optim.Adam(weight_decay=l2)`, which the paper's code uses with l2 = 1e-6 on every
    parameter (embeddings, biases and batch-norm scales included). It is *coupled*: the decay goes through Adam's
    normalisation, unlike Keras' `weight_decay=` (decoupled, AdamW-style), which is not the same thing.

    `embedding_updates` chooses what happens to a variable whose gradient is `tf.IndexedSlices` (an embedding
    table read with a gather); other variables always get the dense update:
    - "sparse" (default): lazy Adam. Only the rows looked up in the batch are read and written: their slices are
      summed per row, get the L2 term, and update that row's Adam moments and weights. Rows not in the batch keep
      their weights *and* their moments (their moments do not decay, and they do not keep moving on old momentum).
      The cost is proportional to the rows looked up, not to the table.
    - "dense": the reference. The gradient is made dense, so every row receives the L2 term, the moment decay and
      an Adam step on every step, like PyTorch's dense `nn.Embedding` gradients. The cost is proportional to the
      table (one fused `ResourceApplyAdam` pass over weights and moments).

    Epsilon is placed as in PyTorch: w -= lr * m_hat / (sqrt(v_hat) + epsilon), with the bias-corrected moments.
    Keras' Adam and TensorFlow's fused kernel add epsilon to sqrt(v) before the correction: an effective epsilon
    1 / sqrt(1 - beta_2^t) times larger (31.6x at step 1, 1.26x at step 1000), which slows every step whose gradient
    is near epsilon (e.g. the L2 decay of a row not looked up, ~1e-8) and moved ME models measurably away from the
    reference (docs/fidelity.md). Dense updates use the fused kernel with epsilon rescaled to that placement.
    The L2 term is added after gradients are summed over replicas, inside the per-variable update, so a row looked
    up by several replicas decays once.

    Args:
        learning_rate: Adam's step size (paper 1e-3).
        beta_1: first-moment decay (PyTorch default 0.9).
        beta_2: second-moment decay (PyTorch default 0.999).
        epsilon: Adam's epsilon, added to sqrt(v_hat) as in PyTorch (default 1e-8; Keras' default is 1e-7).
        l2: the coupled L2 coefficient (paper 1e-6); 0 turns the optimizer into plain Adam.
        embedding_updates: "sparse" or "dense", see above.
        xla_compatible: sparse updates with static shapes (`deduplicate_slices`), for steps compiled by XLA
            (`jit_compile=True`, TPUs); otherwise the distinct rows come from `tf.unique` (a dynamic shape, and
            measured faster on CPU). None: True when created under a `TPUStrategy`. `compile_model` sets it from its
            `jit_compile` argument.
        name: optimizer name.
        **kwargs: other Keras optimizer arguments (clipnorm, ...). `weight_decay` and `amsgrad` are refused.

    Example:
        >>> optimizer = CoupledL2Adam(learning_rate=1e-3, l2=1e-6, embedding_updates="sparse")
        >>> model.compile(optimizer=optimizer, loss="binary_crossentropy")  # doctest: +SKIP
    """

    def __init__(self, learning_rate: Union[float, tf.keras.optimizers.schedules.LearningRateSchedule] = 1e-3,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, l2: float = 1e-6,
                 embedding_updates: str = SPARSE, xla_compatible: Optional[bool] = None,
                 name: str = "coupled_l2_adam", **kwargs: Any) -> None:
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "CoupledL2Adam: `weight_decay` is Keras' decoupled (AdamW) decay; the coupled L2 coefficient is "
                f"`l2`. Received weight_decay={kwargs['weight_decay']!r}."
            )
        kwargs.pop("weight_decay", None)
        if kwargs.pop("amsgrad", False):
            raise ValueError("CoupledL2Adam: `amsgrad` is not supported (the paper's optimizer is plain Adam).")
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 < 0:
            raise ValueError(f"CoupledL2Adam: `l2` must be a number >= 0, received {l2!r}.")
        if embedding_updates not in EMBEDDING_UPDATES:
            raise ValueError(f"CoupledL2Adam: `embedding_updates` must be one of {EMBEDDING_UPDATES}, received "
                             f"{embedding_updates!r}.")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)
        self.l2 = float(l2)
        self.embedding_updates = embedding_updates
        if xla_compatible is None:  # TPU steps are always compiled by XLA
            xla_compatible = isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy)
        self.xla_compatible = bool(xla_compatible)

    def update_step(self, gradient: Union[tf.Tensor, tf.IndexedSlices], variable: tf.Variable,
                    learning_rate: Optional[tf.Tensor] = None) -> tf.Operation:
        # Keras 3 passes the learning rate; tf-keras calls update_step(gradient, variable).
        variable = as_tf_variable(variable)
        dtype = variable.dtype
        learning_rate = tf.cast(self.learning_rate if learning_rate is None else learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        # PyTorch's epsilon on sqrt(v_hat) is epsilon * sqrt(1 - beta_2^t) on the uncorrected sqrt(v) that the fused
        # kernel (and the sparse step below) divide by; the step is then lr * m_hat / (sqrt(v_hat) + epsilon).
        epsilon = tf.cast(self.epsilon, dtype) * tf.sqrt(1 - beta_2_power)
        l2 = tf.cast(self.l2, dtype)
        m, v = adam_slots(self, variable)
        if isinstance(gradient, tf.IndexedSlices) and self.embedding_updates == SPARSE:
            return self._sparse_update(gradient, variable, m, v, learning_rate, beta_1, beta_2, beta_1_power,
                                       beta_2_power, epsilon, l2)
        gradient = tf.cast(tf.convert_to_tensor(gradient), dtype)
        if self.l2 > 0:
            gradient += l2 * variable
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power, beta2_power=beta_2_power,
            lr=learning_rate, beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=gradient)

    def _sparse_update(self, gradient: tf.IndexedSlices, variable: tf.Variable, m: tf.Variable, v: tf.Variable,
                       learning_rate: tf.Tensor, beta_1: tf.Tensor, beta_2: tf.Tensor, beta_1_power: tf.Tensor,
                       beta_2_power: tf.Tensor, epsilon: tf.Tensor, l2: tf.Tensor) -> tf.Operation:
        rows, values, valid = (deduplicate_slices if self.xla_compatible else unique_slices)(gradient)
        values = tf.cast(values, variable.dtype)
        if self.l2 > 0:
            values += l2 * tf.gather(variable, rows) * valid
        m_rows, v_rows = tf.gather(m, rows), tf.gather(v, rows)
        # Deltas (zero on padding slots) are scatter-added, so padding slots pointing at row 0 change nothing.
        m_delta = (values - m_rows) * (1 - beta_1) * valid
        v_delta = (tf.square(values) - v_rows) * (1 - beta_2) * valid
        alpha = learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        step = alpha * (m_rows + m_delta) / (tf.sqrt(v_rows + v_delta) + epsilon) * valid
        return tf.group(m.scatter_add(tf.IndexedSlices(m_delta, rows)),
                        v.scatter_add(tf.IndexedSlices(v_delta, rows)),
                        variable.scatter_sub(tf.IndexedSlices(step, rows)))

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({"l2": self.l2, "embedding_updates": self.embedding_updates,
                       "xla_compatible": self.xla_compatible})
        config.pop("weight_decay", None)
        config.pop("amsgrad", None)
        return config
