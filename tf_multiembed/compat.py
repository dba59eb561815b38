"""The one module allowed to touch private Keras code or to depend on how a Keras runtime stores its variables.

Everything here is version-guarded (`_CHECKED_KERAS_MAX`), covered by tests, and linked to the upstream issue that
makes it necessary. Both Keras runtimes are handled: Keras 3 (the default `tf.keras`) and legacy tf-keras
(`TF_USE_LEGACY_KERAS=1`).

1. `MultiWorkerMirroredStrategy` + Keras 3 `fit` fails for every input with "Attempt to convert a value
   (PerReplica:...) with an unsupported type" (https://github.com/keras-team/keras/issues/20585, open):
   - `TensorFlowTrainer._maybe_symbolic_build` reduces the first *distributed input batch* with
     `strategy.reduce("MEAN", batch, axis=None)`, which a multi-worker strategy cannot do with PerReplica inputs;
     `apply_keras_multi_worker_fixes` builds from the first local replica's batch instead (only the shapes and dtypes
     of that batch matter for the symbolic build).
   - `reduce_per_replica(..., reduction="mean")` calls `strategy.reduce("MEAN", value, axis=0)` on the scalar
     metric results of each step, which fails for rank-0 values; the fix reduces scalars with `axis=None`.
   The patch is installed only under Keras 3 with the TensorFlow backend, only for the Keras versions it was
   checked against (3.x up to `_CHECKED_KERAS_MAX`; newer 3.x versions get it after a signature check, with a
   warning), and only when a multi-worker strategy is used. Legacy tf-keras needs nothing.
2. Keras 3 keeps non-trainable statistics (BatchNormalization's moving mean and variance) as mirrored variables
   without an aggregation and updates each replica's copy from its own part of the batch, so the copies drift apart:
   workers end with different weights and checkpoints hold the first replica's copy (legacy tf-keras makes them
   ON_READ/MEAN variables and reads their mean). `replica_statistics_sync` returns a callback that replaces every
   copy by the mean over replicas before each validation, after each epoch and at the end of training. The moving
   averages are linear in the batch statistics, so this equals averaging at every step.
3. `MirroredStrategy` + a model with `tf.string` inputs (or a `StringLookup` inside) fails with
   "Value for attr 'T' of string is not in the list of allowed values ... AddN"
   (https://github.com/tensorflow/tensorflow/issues/80951). This package never trains on strings: the tf.data
   pipeline maps raw values to ids, the trained model takes int64 ids, and the serving SavedModel wraps the lookup
   around the trained model at export. `check_no_string_inputs` turns the crash into an error that says so.
4. `as_tf_variable`: a Keras 3 variable wraps a `tf.Variable` (`.value`); raw TensorFlow kernels
   (`ResourceApplyAdam`, `tf.nn.embedding_lookup`'s partitioned reads) and the TF1 loader of TF Serving need that
   `tf.Variable` itself. tf-keras variables already are `tf.Variable`s.
5. `adam_slots`: Keras optimizers have no public way to get the slot variables (Adam's first and second moments) of
   one model variable; inside `update_step` Keras passes the underlying `tf.Variable`, and Keras' own optimizers find
   the slots with the private `_get_variable_index` (Keras 3) or `_index_dict[_var_key(...)]` (tf-keras), as the
   Keras maintainers recommend for custom optimizers (https://github.com/keras-team/keras/issues/21793,
   https://github.com/keras-team/keras/pull/21924).
6. `import_tensorflow_transform`: importing tf.Transform (1.21) sets `TF_USE_LEGACY_KERAS=1` in `os.environ` when it
   is unset (tensorflow_transform/keras_lib.py,
   https://github.com/tensorflow/transform/blob/master/tensorflow_transform/keras_lib.py). The running process keeps
   the Keras it already loaded, but every process it starts afterwards (`train.py`, a benchmark's children, a test's
   subprocess) then silently runs legacy tf-keras. The package imports tf.Transform only through this function,
   which restores the variable to what it was.
"""

import inspect
import logging
import os
import types
from typing import Any, Callable, Dict, Optional, Tuple

import tensorflow as tf

_CHECKED_KERAS_MAX = (3, 15)
_CHECKED_TRANSFORM_MAX = (1, 21)
_LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"
_UPSTREAM_MULTI_WORKER = "https://github.com/keras-team/keras/issues/20585"
_UPSTREAM_STRING_INPUTS = "https://github.com/tensorflow/tensorflow/issues/80951"

_logger = logging.getLogger(__name__)
_installed = False


def as_tf_variable(variable: Any) -> tf.Variable:
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


def adam_slots(optimizer: tf.keras.optimizers.Optimizer, variable: Any) -> Tuple[tf.Variable, tf.Variable]:
    """`(first moment, second moment)` of `variable` in a built Keras Adam optimizer, as `tf.Variable`s.

    Works for `tf.keras.optimizers.Adam` and its subclasses under both runtimes, with the Keras variable or the
    `tf.Variable` behind it (what `update_step` receives).

    Raises:
        RuntimeError: when the Keras version stores its slots differently (this module must then be updated).

    Example:
        >>> optimizer = tf.keras.optimizers.Adam()
        >>> weight = tf.Variable([1.0, 2.0])
        >>> optimizer.build([weight])
        >>> [tuple(slot.shape) for slot in adam_slots(optimizer, weight)]
        [(2,), (2,)]
    """
    try:
        if hasattr(optimizer, "_get_variable_index"):  # Keras 3
            index = optimizer._get_variable_index(variable)
        else:  # tf-keras
            index = optimizer._index_dict[optimizer._var_key(variable)]
        momentum, velocity = optimizer._momentums[index], optimizer._velocities[index]
    except (AttributeError, KeyError) as error:
        raise RuntimeError(
            f"tf_multiembed.compat.adam_slots: Keras {keras_version()} stores the slots of {type(optimizer).__name__} "
            f"differently from the versions this was checked with (<= {_CHECKED_KERAS_MAX}): {error!r}. Update "
            "tf_multiembed/compat.py."
        ) from None
    return as_tf_variable(momentum), as_tf_variable(velocity)


def is_legacy_keras() -> bool:
    """True when `tf.keras` is legacy Keras 2 (tf-keras, `TF_USE_LEGACY_KERAS=1`), False for Keras 3."""
    return tf.keras.Model.__module__.split(".")[0] == "tf_keras"


def keras_version() -> str:
    """The version of the Keras behind `tf.keras` (tf-keras's under the legacy runtime)."""
    if is_legacy_keras():
        import tf_keras

        return tf_keras.__version__
    import keras

    return keras.__version__


def _keras3_version() -> Tuple[int, int]:
    import keras  # Keras 3 is importable even when tf.keras is legacy; only called under Keras 3.

    major, minor = (int(part) for part in keras.__version__.split(".")[:2])
    return major, minor


def needs_multi_worker_fixes(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` under the current Keras runtime hits keras-team/keras#20585."""
    if is_legacy_keras():
        return False
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def apply_keras_multi_worker_fixes() -> bool:
    """Installs the two keras-team/keras#20585 fixes (idempotent). Returns True if they are installed.

    Example:
        >>> strategy = tf.distribute.MultiWorkerMirroredStrategy()  # doctest: +SKIP
        >>> if needs_multi_worker_fixes(strategy):  # doctest: +SKIP
        ...     apply_keras_multi_worker_fixes()
    """
    global _installed
    if _installed:
        return True
    if is_legacy_keras():
        return False
    from keras.src.backend.tensorflow import trainer as tf_trainer  # private: the point of this module

    version = _keras3_version()
    original_reduce = tf_trainer.reduce_per_replica
    parameters = list(inspect.signature(original_reduce).parameters)
    if parameters != ["values", "strategy", "reduction"] or not hasattr(tf_trainer.TensorFlowTrainer,
                                                                        "_maybe_symbolic_build"):
        raise RuntimeError(
            f"tf_multiembed.compat: Keras {'.'.join(map(str, version))} changed the private code patched "
            f"for {_UPSTREAM_MULTI_WORKER}; check whether the issue is fixed and update this module."
        )
    if version > _CHECKED_KERAS_MAX:
        _logger.warning("Keras %s is newer than the versions this work-around was checked with (<= %s); applying "
                        "it anyway for %s.", version, _CHECKED_KERAS_MAX, _UPSTREAM_MULTI_WORKER)

    def reduce_per_replica(values: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
        if reduction in ("auto", "mean") and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            def reduce_one(value: Any) -> Any:
                # With one replica per worker the step's values are plain tensors, otherwise PerReplica.
                local = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
                if local.shape.rank == 0:
                    return strategy.reduce("MEAN", value, axis=None)
                return original_reduce(value, strategy, reduction)

            return tf.nest.map_structure(reduce_one, values)
        return original_reduce(values, strategy, reduction)

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def _maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> Any:
        strategy = self._distribute_strategy
        if iterator is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, step_iterator in iterator:
            batch = next(step_iterator)
            data_batch = tf.nest.map_structure(
                lambda value: strategy.experimental_local_results(value)[0]
                if isinstance(value, tf.distribute.DistributedValues) else value,
                batch,
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    _installed = True
    return True


def check_no_string_inputs(model: tf.keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Raises a clear error for a model with string inputs under a mirrored strategy (tensorflow#80951).

    Example:
        >>> check_no_string_inputs(model, tf.distribute.get_strategy())  # doctest: +SKIP
    """
    if not isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        return
    if is_legacy_keras():
        return
    string_inputs = [tensor.name for tensor in model.inputs if str(tensor.dtype) in ("string", "tf.string")]
    if string_inputs:
        raise ValueError(
            f"Model {model.name!r} has string inputs {string_inputs}; Keras 3 cannot train such a model under "
            f"{type(strategy).__name__} ({_UPSTREAM_STRING_INPUTS}). Train on int64 ids from the tf.data pipeline "
            "(tf_multiembed.data) and export with tf_multiembed.serving, which puts the lookup in the SavedModel."
        )



class ReplicaStatisticsSync(tf.keras.callbacks.Callback):
    """Averages a model's floating-point non-trainable variables over replicas (see point 2 of the module doc).

    Every replica must run it at the same points (it is a collective); the loop and `fit` guarantee that.

    Example:
        >>> sync = replica_statistics_sync(strategy)  # doctest: +SKIP
        >>> model.fit(data, callbacks=[sync] if sync else [])  # doctest: +SKIP
    """

    def __init__(self, strategy: tf.distribute.Strategy) -> None:
        super().__init__()
        self._strategy = strategy
        self._functions: Dict[int, Optional[Callable[[], None]]] = {}

    def synchronize(self, model: Optional[tf.keras.Model] = None) -> None:
        model = model if model is not None else self.model
        key = id(model)
        if key not in self._functions:
            variables = [as_tf_variable(v) for v in model.non_trainable_variables]
            variables = [v for v in variables if v.dtype.is_floating]
            strategy = self._strategy

            def replica_fn() -> None:
                context = tf.distribute.get_replica_context()
                means = context.all_reduce(tf.distribute.ReduceOp.MEAN, [v.read_value() for v in variables])
                for variable, mean in zip(variables, means):
                    variable.assign(mean)  # no aggregation: each replica assigns its own copy

            @tf.function(autograph=False)
            def synchronize_all() -> None:
                strategy.run(replica_fn)

            self._functions[key] = synchronize_all if variables else None
        function = self._functions[key]
        if function is not None:
            function()

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self.synchronize()

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self.synchronize()

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self.synchronize()


def replica_statistics_sync(strategy: tf.distribute.Strategy) -> Optional[ReplicaStatisticsSync]:
    """A `ReplicaStatisticsSync` callback where Keras 3 runs more than one replica, else None."""
    if is_legacy_keras() or strategy.num_replicas_in_sync <= 1:
        return None
    if not isinstance(strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
        return None
    return ReplicaStatisticsSync(strategy)


def import_tensorflow_transform() -> types.ModuleType:
    """`import tensorflow_transform` without its change of `TF_USE_LEGACY_KERAS` (item 6 of this module's docstring).

    Example:
        >>> tft = import_tensorflow_transform()  # doctest: +SKIP
        >>> "TF_USE_LEGACY_KERAS" in os.environ  # unchanged: False where it was unset  # doctest: +SKIP
        False
    """
    before = os.environ.get(_LEGACY_KERAS_VARIABLE)
    try:
        import tensorflow_transform
    finally:
        if before is None:
            os.environ.pop(_LEGACY_KERAS_VARIABLE, None)
        else:
            os.environ[_LEGACY_KERAS_VARIABLE] = before
    version = tuple(int(part) for part in tensorflow_transform.__version__.split(".")[:2] if part.isdigit())
    if version > _CHECKED_TRANSFORM_MAX:
        _logger.warning("tensorflow-transform %s is newer than the checked %s: check whether it still sets %s "
                        "(tf_multiembed.compat.import_tensorflow_transform).", tensorflow_transform.__version__,
                        ".".join(map(str, _CHECKED_TRANSFORM_MAX)), _LEGACY_KERAS_VARIABLE)
    return tensorflow_transform
