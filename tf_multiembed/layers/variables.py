"""The `tf.Variable` behind a Keras variable, in both Keras runtimes."""

import tensorflow as tf


def as_tf_variable(variable):
    """The `tf.Variable` behind a Keras 3 variable; tf-keras variables (already `tf.Variable`s) and variables without
    a `.value` (e.g. tables sharded over parameter servers) are returned as they are.

    Ops on the `tf.Variable` itself read only what they need (a gather reads the looked-up rows), and
    `tf.raw_ops` kernels need its `.handle`.

    Example:
        >>> variable = tf.Variable([1.0])
        >>> as_tf_variable(variable) is variable
        True
    """
    return variable if isinstance(variable, tf.Variable) or not hasattr(variable, "value") else variable.value
