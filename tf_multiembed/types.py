"""Type aliases of the public API, after keras-rs' `types.py`.

TensorFlow and Keras ship no type stubs: to mypy every `tf.*` name (`tf.Tensor`, `tf.keras.Model`, ...) is `Any`.
Signatures still name them, for the reader; the checker enforces the plain Python parts (ints, strings, sequences,
None) of every argument. TensorFlow names appear as strings, so that modules which must not import TensorFlow (the
data build, `artifacts`) can use these aliases.
"""

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

TensorLike = Union["tf.Tensor", np.ndarray, Sequence[Any], float]
"""What `tf.convert_to_tensor` accepts: a tensor, a NumPy array, a (nested) list or a number."""

PathLike = Union[str, "os.PathLike[str]"]
"""A file or folder: a `str` or a `pathlib.Path` (any `os.PathLike`)."""

Shape = Sequence[Any]
"""A tensor shape as Keras passes it to `build` and `compute_output_shape`: a tuple of `int`/`None` under Keras 3, a
`tf.TensorShape` under tf-keras. Entries are `Any` (not `Optional[int]`) because the layers use the dimensions that
`validation.check_input_rank` has already proven known as plain ints."""

Config = Dict[str, Any]
"""A Keras layer's or model's `get_config()`: JSON-serializable values keyed by constructor argument."""

InitializerLike = Union[str, Dict[str, Any], "tf.keras.initializers.Initializer"]
"""What `tf.keras.initializers.get` accepts: a name ("zeros"), a serialized config or an initializer instance."""

RegularizerLike = Union[str, Dict[str, Any], "tf.keras.regularizers.Regularizer"]
"""What `tf.keras.regularizers.get` accepts: a name ("l2"), a serialized config or a regularizer instance."""

ActivationLike = Union[str, Callable[["tf.Tensor"], "tf.Tensor"]]
"""What `tf.keras.activations.get` accepts: a name ("relu") or a function of a tensor."""
