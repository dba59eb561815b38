"""Adam with coupled L2 (PyTorch's `Adam(weight_decay=...)`), the paper's optimizer."""

import tensorflow as tf

L2_ROWS_ALL = "all"
L2_ROWS_LOOKED_UP = "looked_up"


def _as_tf_variable(variable):
    """The `tf.Variable` behind a Keras 3 variable (legacy tf-keras variables already are one)."""
    return variable if isinstance(variable, tf.Variable) else variable.value


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class CoupledL2Adam(tf.keras.optimizers.Adam):
    """Adam whose gradients carry an L2 term: g <- g + l2 * w for every trainable variable, before the Adam moments.

    This is PyTorch's `torch.optim.Adam(weight_decay=l2)`, which the paper's code uses with l2 = 1e-6 on every
    parameter (embeddings, biases and batch-norm scales included). It is *coupled*: the decay goes through Adam's
    normalisation, unlike Keras' `weight_decay=` (decoupled, AdamW-style), which is not the same thing.

    `l2_rows` chooses which embedding rows decay when a gradient arrives as `tf.IndexedSlices` (a gather):
    - "all" (default, the reference): the sparse gradient is made dense, so every row of the table decays and
      receives Adam's update at every step, as PyTorch's dense `nn.Embedding` gradients do.
    - "looked_up": only the rows looked up in the batch (deduplicated) get the L2 term; the gradient stays sparse.
      Dense gradients are unaffected by this choice.

    Under `tf.distribute`, gradients are summed over replicas, so each replica adds `l2 / num_replicas * w`.
    The term is added in `apply_gradients` (what `model.fit` calls in both Keras runtimes).

    Args:
        learning_rate: Adam's step size (paper 1e-3).
        beta_1: first-moment decay (PyTorch default 0.9).
        beta_2: second-moment decay (PyTorch default 0.999).
        epsilon: Adam's epsilon (PyTorch default 1e-8; Keras' default is 1e-7).
        l2: the coupled L2 coefficient (paper 1e-6); 0 turns the optimizer into plain Adam.
        l2_rows: "all" or "looked_up", see above.
        name: optimizer name.
        **kwargs: other Keras optimizer arguments (clipnorm, ...). `weight_decay` is refused: it is decoupled.

    Example:
        >>> optimizer = CoupledL2Adam(learning_rate=1e-3, l2=1e-6)
        >>> model.compile(optimizer=optimizer, loss="binary_crossentropy")  # doctest: +SKIP
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, l2=1e-6, l2_rows=L2_ROWS_ALL,
                 name="coupled_l2_adam", **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError(
                "CoupledL2Adam: `weight_decay` is Keras' decoupled (AdamW) decay; the coupled L2 coefficient is "
                f"`l2`. Received weight_decay={kwargs['weight_decay']!r}."
            )
        kwargs.pop("weight_decay", None)
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or l2 < 0:
            raise ValueError(f"CoupledL2Adam: `l2` must be a number >= 0, received {l2!r}.")
        if l2_rows not in (L2_ROWS_ALL, L2_ROWS_LOOKED_UP):
            raise ValueError(
                f"CoupledL2Adam: `l2_rows` must be {L2_ROWS_ALL!r} or {L2_ROWS_LOOKED_UP!r}, received {l2_rows!r}."
            )
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)
        self.l2 = float(l2)
        self.l2_rows = l2_rows

    def apply_gradients(self, grads_and_vars, *args, **kwargs):
        grads_and_vars = list(grads_and_vars)
        if self.l2 > 0:
            replica_context = tf.distribute.get_replica_context()
            replicas = replica_context.num_replicas_in_sync if replica_context is not None else 1
            grads_and_vars = [(self._with_l2(g, v, self.l2 / replicas), v) for g, v in grads_and_vars]
        return super().apply_gradients(grads_and_vars, *args, **kwargs)

    def _with_l2(self, gradient, variable, coefficient):
        if gradient is None:
            return None
        tf_variable = _as_tf_variable(variable)
        if isinstance(gradient, tf.IndexedSlices) and self.l2_rows == L2_ROWS_LOOKED_UP:
            # A row gathered twice in a batch appears twice in the slices: sum first so it decays once.
            rows, position = tf.unique(gradient.indices)
            values = tf.math.unsorted_segment_sum(gradient.values, position, tf.size(rows))
            values += tf.cast(coefficient, values.dtype) * tf.gather(tf_variable, rows)
            return tf.IndexedSlices(values, rows, gradient.dense_shape)
        gradient = tf.convert_to_tensor(gradient)
        return gradient + tf.cast(coefficient, gradient.dtype) * tf.convert_to_tensor(tf_variable)

    def get_config(self):
        config = super().get_config()
        config.update({"l2": self.l2, "l2_rows": self.l2_rows})
        config.pop("weight_decay", None)
        return config
