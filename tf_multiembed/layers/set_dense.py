"""Dense layers with a leading set axis (`SetDense`, `SetMLP`) and the shared MLP head (`MLP`).

Every hidden layer is Linear -> BatchNorm -> ReLU -> Dropout, as in the reference code; BatchNorm uses momentum 0.9
and epsilon 1e-5 (PyTorch's 0.1 / 1e-5 in Keras' convention).
"""

from typing import Any, List, Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed import types, validation
from tf_multiembed.layers import initializers
from tf_multiembed.layers.batch_norm import fused_batch_norm
from tf_multiembed.layers.dropout import BitsDropout
from tf_multiembed.layers.set_ops import batch_first, set_matmul, sets_first

DEFAULT_BN_MOMENTUM = 0.9
DEFAULT_BN_EPSILON = 1e-5


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetDense(tf.keras.layers.Layer):
    """A dense layer with separate weights per set: `y[b, m] = x[b, m] @ W[m] + b[m]`.

    All sets are one batched matmul, never a loop over sets.

    Args:
        units: output width H_out per set.
        activation: optional Keras activation.
        use_bias: whether to add a per-set bias.
        kernel_initializer: Keras initializer for `[M, H_in, H_out]`; None for PyTorch's U(+-1/sqrt(H_in)).
        bias_initializer: Keras initializer for `[M, H_out]`; None for PyTorch's U(+-1/sqrt(H_in)).

    Input shape: `[batch, M, H_in]`. Output shape: `[batch, M, H_out]`.

    Example:
        >>> SetDense(4)(tf.ones([2, 3, 5])).shape  # 3 sets, 3 independent 5 -> 4 projections
        TensorShape([2, 3, 4])
    """

    def __init__(self, units: int, activation: Optional[types.ActivationLike] = None, use_bias: bool = True,
                 kernel_initializer: Optional[types.InitializerLike] = None,
                 bias_initializer: Optional[types.InitializerLike] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = validation.check_positive_int(units, "units", "SetDense")
        self.activation = tf.keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self._kernel_initializer_arg = kernel_initializer
        self._bias_initializer_arg = bias_initializer

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, H]", "SetDense")
        num_sets, fan_in = int(input_shape[1]), int(input_shape[2])
        self.kernel = self.add_weight(
            name="kernel", shape=(num_sets, fan_in, self.units),
            initializer=initializers.resolve(self._kernel_initializer_arg, initializers.fan_in_uniform(fan_in)),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(num_sets, self.units),
                initializer=initializers.resolve(self._bias_initializer_arg, initializers.fan_in_uniform(fan_in)),
            )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        outputs = set_matmul(sets_first(inputs), self.kernel)  # [M, B, H_out]
        if self.bias is not None:
            outputs = outputs + self.bias[:, None, :]
        outputs = batch_first(outputs)
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], self.units)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": tf.keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self._kernel_initializer_arg),
            "bias_initializer": initializers.serialize(self._bias_initializer_arg),
        })
        return config


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetBatchNormalization(tf.keras.layers.Layer):
    """BatchNormalization with separate statistics and scale/shift for every (set, feature) pair.

    Equivalent to one `BatchNorm1d` per set. The variables are those of one Keras `BatchNormalization` over the
    flattened `[batch, M*H]` features (`self.batch_norm`; Keras 3 normalizes over a single axis only), and the
    computation is TensorFlow's fused kernel (`batch_norm.fused_batch_norm`), which gives the Keras layer's results
    at a third of its cost.

    Input and output shape: `[batch, M, H]`.

    Example:
        >>> SetBatchNormalization()(tf.ones([4, 2, 3]), training=True).shape
        TensorShape([4, 2, 3])
    """

    def __init__(self, momentum: float = DEFAULT_BN_MOMENTUM, epsilon: float = DEFAULT_BN_EPSILON,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, H]", "SetBatchNormalization")
        self._set_shape = (int(input_shape[1]), int(input_shape[2]))
        self.batch_norm = tf.keras.layers.BatchNormalization(
            momentum=self.momentum, epsilon=self.epsilon, name="batch_norm"
        )
        self.batch_norm.build((input_shape[0], self._set_shape[0] * self._set_shape[1]))
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        num_sets, units = self._set_shape
        flat = tf.reshape(inputs, [-1, num_sets * units])
        return tf.reshape(fused_batch_norm(self.batch_norm, flat, training=training), [-1, num_sets, units])

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return tuple(input_shape)

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config


def _check_mlp_args(units: Sequence[int], dropout: float, owner: str) -> Tuple[List[int], float]:
    units = validation.check_positive_int_list(units, "units", owner)
    dropout = validation.check_rate(dropout, "dropout", owner)
    return units, dropout


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class SetMLP(tf.keras.layers.Layer):
    """A stack of set-specific hidden layers: (SetDense -> per-set BatchNorm -> ReLU -> Dropout) per entry of `units`.

    With one entry this is the paper's set-specific non-linear projection that follows each set's interaction.

    Args:
        units: hidden widths, e.g. `(400,)`.
        dropout: dropout rate after every hidden layer.
        use_batch_norm: whether to normalize after every dense layer.
        batch_norm_momentum, batch_norm_epsilon: BatchNorm settings (paper: 0.9 and 1e-5).

    Input shape: `[batch, M, H_in]`. Output shape: `[batch, M, units[-1]]`.

    Example:
        >>> SetMLP(units=(8, 4), dropout=0.2)(tf.ones([2, 3, 5])).shape
        TensorShape([2, 3, 4])
    """

    def __init__(self, units: Sequence[int] = (400,), dropout: float = 0.2, use_batch_norm: bool = True,
                 batch_norm_momentum: float = DEFAULT_BN_MOMENTUM, batch_norm_epsilon: float = DEFAULT_BN_EPSILON,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.dropout = _check_mlp_args(units, dropout, "SetMLP")
        self.use_batch_norm = bool(use_batch_norm)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 3, "[B, M, H]", "SetMLP")
        self.dense_layers, self.norm_layers = [], []
        shape = tuple(input_shape)
        for index, width in enumerate(self.units):
            dense = validation.track_as_attribute(self, f"set_dense_{index}",
                                                  SetDense(width, name=f"set_dense_{index}"))
            dense.build(shape)
            shape = (shape[0], shape[1], width)
            self.dense_layers.append(dense)
            if self.use_batch_norm:
                norm = validation.track_as_attribute(self, f"set_batch_norm_{index}", SetBatchNormalization(
                    self.batch_norm_momentum, self.batch_norm_epsilon, name=f"set_batch_norm_{index}"))
                norm.build(shape)
                self.norm_layers.append(norm)
        self.dropout_layer = BitsDropout(self.dropout)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x = inputs
        for index, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.use_batch_norm:
                x = self.norm_layers[index](x, training=training)
            x = self.dropout_layer(tf.nn.relu(x), training=training)
        return x

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], input_shape[1], self.units[-1])

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "units": list(self.units),
            "dropout": self.dropout,
            "use_batch_norm": self.use_batch_norm,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
        })
        return config


@tf.keras.utils.register_keras_serializable(package="tf_multiembed")
class MLP(tf.keras.layers.Layer):
    """The shared head: hidden layers (Dense -> BatchNorm -> ReLU -> Dropout), then an optional Dense to `output_units`.

    Weights and biases use PyTorch's U(+-1/sqrt(fan_in)) like the reference.

    Args:
        units: hidden widths (may be empty: then only the output layer).
        dropout: dropout rate after every hidden layer.
        output_units: width of the final linear layer (1 for a logit), or None for no output layer.
        use_batch_norm, batch_norm_momentum, batch_norm_epsilon: as in `SetMLP`.

    Input shape: `[batch, H]`. Output shape: `[batch, output_units]` (or `[batch, units[-1]]`).

    Example:
        >>> MLP(units=(400,), output_units=1)(tf.ones([2, 400])).shape
        TensorShape([2, 1])
    """

    def __init__(self, units: Sequence[int] = (400,), dropout: float = 0.2, output_units: Optional[int] = 1,
                 use_batch_norm: bool = True, batch_norm_momentum: float = DEFAULT_BN_MOMENTUM,
                 batch_norm_epsilon: float = DEFAULT_BN_EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = validation.check_positive_int_list(units, "units", "MLP", allow_empty=True)
        self.dropout = validation.check_rate(dropout, "dropout", "MLP")
        if output_units is not None:
            output_units = validation.check_positive_int(output_units, "output_units", "MLP")
        if output_units is None and not self.units:
            raise ValueError("MLP: give hidden `units`, `output_units`, or both; received neither.")
        self.output_units = output_units
        self.use_batch_norm = bool(use_batch_norm)
        self.batch_norm_momentum = float(batch_norm_momentum)
        self.batch_norm_epsilon = float(batch_norm_epsilon)

    @staticmethod
    def _dense(width: int, fan_in: int, name: str) -> tf.keras.layers.Dense:
        return tf.keras.layers.Dense(width, kernel_initializer=initializers.fan_in_uniform(fan_in),
                                     bias_initializer=initializers.fan_in_uniform(fan_in), name=name)

    def build(self, input_shape: types.Shape) -> None:
        validation.check_input_rank(input_shape, 2, "[B, H]", "MLP")
        self.dense_layers, self.norm_layers = [], []
        fan_in = int(input_shape[-1])
        for index, width in enumerate(self.units):
            dense = validation.track_as_attribute(self, f"dense_{index}", self._dense(width, fan_in, f"dense_{index}"))
            dense.build((input_shape[0], fan_in))
            self.dense_layers.append(dense)
            if self.use_batch_norm:
                norm = validation.track_as_attribute(self, f"batch_norm_{index}", tf.keras.layers.BatchNormalization(
                    momentum=self.batch_norm_momentum, epsilon=self.batch_norm_epsilon, name=f"batch_norm_{index}"
                ))
                norm.build((input_shape[0], width))
                self.norm_layers.append(norm)
            fan_in = width
        self.output_layer = None
        if self.output_units is not None:
            self.output_layer = self._dense(self.output_units, fan_in, "output")
            self.output_layer.build((input_shape[0], fan_in))
        self.dropout_layer = BitsDropout(self.dropout)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
        x = inputs
        for index, dense in enumerate(self.dense_layers):
            x = dense(x)
            if self.use_batch_norm:
                x = fused_batch_norm(self.norm_layers[index], x, training=training)
            x = self.dropout_layer(tf.nn.relu(x), training=training)
        return self.output_layer(x) if self.output_layer is not None else x

    def compute_output_shape(self, input_shape: types.Shape) -> types.Shape:
        return (input_shape[0], self.output_units if self.output_units is not None else self.units[-1])

    def get_config(self) -> types.Config:
        config = super().get_config()
        config.update({
            "units": list(self.units),
            "dropout": self.dropout,
            "output_units": self.output_units,
            "use_batch_norm": self.use_batch_norm,
            "batch_norm_momentum": self.batch_norm_momentum,
            "batch_norm_epsilon": self.batch_norm_epsilon,
        })
        return config
