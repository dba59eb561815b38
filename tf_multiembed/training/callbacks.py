"""Keras callbacks of the training loop: step checkpoints, divergence, exact validation from predictions (the one
exact-AUC path of the package), one-epoch fits."""

import math
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from tf_multiembed.calibration import calibration_metrics
from tf_multiembed.training.metrics import exact_auc, log_loss


class EveryNSteps(tf.keras.callbacks.Callback):
    """Calls `action(step_in_epoch)` after every `every_steps` training steps of the epoch, except its `last_step`.

    `first_step` is the number of steps of the epoch already done before this `fit` (a resumed epoch), so the count
    continues where the killed run stopped.

    Example:
        >>> callback = EveryNSteps(100, lambda step: print("save at", step))
    """

    def __init__(self, every_steps: int, action: Callable[[int], None], first_step: int = 0,
                 last_step: Optional[int] = None) -> None:
        super().__init__()
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps <= 0:
            raise ValueError(f"EveryNSteps: `every_steps` must be a positive integer, received {every_steps!r}.")
        self.every_steps = every_steps
        self.action = action
        self.first_step = first_step
        self.last_step = last_step

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        step = self.first_step + batch + 1
        # Not at the epoch's last step: the epoch-end bookkeeping follows right away, and a run resumed "after the
        # last step" would have an empty rest of the epoch.
        if step % self.every_steps == 0 and step != self.last_step:
            self.action(step)


class StopAfterEpoch(tf.keras.callbacks.Callback):
    """Stops `fit` after its first epoch, so the loop can run one epoch per `fit(epochs=max, initial_epoch=e)`
    (the progress bar then reads "Epoch e+1/max") and do its own bookkeeping between epochs."""

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self.model.stop_training = True


# The divergence rule (docs/training.md). A model that predicts a constant has a binary cross-entropy of at most
# ln 2 (0.69, at p = 0.5, where a freshly initialised model starts); a sane model stays within a few times that. A
# running loss over DIVERGENCE_FACTOR times max(ln 2, the run's starting loss) means the probabilities of the true
# labels average below e^-693: weights blown up by orders of magnitude, which later steps do not repair.
DIVERGENCE_FACTOR = 1000.0
CONSTANT_PREDICTOR_LOSS = math.log(2.0)


def divergence_bound(starting_loss: Optional[float] = None) -> float:
    """The largest running training loss that is not divergence: `DIVERGENCE_FACTOR * max(ln 2, starting_loss)`.

    Example:
        >>> round(divergence_bound(0.5), 1), divergence_bound(2.0)
        (693.1, 2000.0)
    """
    reference = CONSTANT_PREDICTOR_LOSS
    if starting_loss is not None and math.isfinite(starting_loss):
        reference = max(reference, float(starting_loss))
    return DIVERGENCE_FACTOR * reference


class TrainingDivergedError(RuntimeError):
    """Training diverged: the loss became NaN or infinite, grew past `divergence_bound`, or a weight is not finite.
    The run stops before anything diverged is saved or exported.

    Attributes:
        epoch: the (1-based) epoch.
        step: the (1-based) step within the epoch, or None where it is not known (parameter servers, epoch ends).
        loss: the loss value (nan, inf, or the finite value over the bound), or the bad weight value.
        bound: the bound the loss went over, or None for a value that is not finite.
    """

    def __init__(self, epoch: int, step: Optional[int], loss: float, what: str = "loss",
                 bound: Optional[float] = None) -> None:
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        value = f"{what} {loss}" if bound is None else (
            f"{what} {loss:.4g}, over {bound:.4g} = {DIVERGENCE_FACTOR:g} x the starting loss")
        super().__init__(f"training diverged at {where} ({value}): lower --learning_rate")
        self.epoch, self.step, self.loss, self.bound = epoch, step, loss, bound


def check_loss(loss: float, epoch: int, step: Optional[int], starting_loss: Optional[float]) -> None:
    """Raises `TrainingDivergedError` when a running training loss is not finite or over `divergence_bound`."""
    if not math.isfinite(loss):
        raise TrainingDivergedError(epoch, step, loss)
    bound = divergence_bound(starting_loss)
    if loss > bound:
        raise TrainingDivergedError(epoch, step, loss, bound=bound)


class DivergenceGuard(tf.keras.callbacks.Callback):
    """Raises `TrainingDivergedError` after the first step whose running loss is not finite or is over
    `divergence_bound(starting_loss)`.

    Keras logs the running mean of the epoch's loss, which stays NaN from the first bad batch on, so the step named
    is the first one that diverged. `first_step` counts the steps of the epoch done before this `fit` (a resumed
    epoch). `starting_loss` is the run's first loss; None takes this `fit`'s first logged loss (`starting_loss`
    holds it afterwards, for the next epochs' guards).

    Example:
        >>> model.fit(data, callbacks=[DivergenceGuard(epoch=1)])  # doctest: +SKIP
    """

    def __init__(self, epoch: int, first_step: int = 0, starting_loss: Optional[float] = None) -> None:
        super().__init__()
        self.epoch = epoch
        self.first_step = first_step
        self.starting_loss = starting_loss

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if self.starting_loss is None and math.isfinite(loss):
            self.starting_loss = loss
        check_loss(loss, self.epoch, self.first_step + batch + 1, self.starting_loss)


def check_weights(model: tf.keras.Model, epoch: int) -> None:
    """Raises `TrainingDivergedError` naming the first trainable weight that holds a NaN or infinity.

    `check_numerics` scans each weight in place (no copy, no mask as large as an embedding table).
    """
    for variable in model.trainable_variables:
        values = tf.convert_to_tensor(variable)
        if not values.dtype.is_floating:
            continue
        try:
            tf.debugging.check_numerics(values, "weight")
        except tf.errors.InvalidArgumentError:
            flat = tf.reshape(values, [-1])
            bad = float(tf.gather(flat, tf.where(~tf.math.is_finite(flat))[0, 0]))
            raise TrainingDivergedError(epoch, None, bad,
                                        what=f"weight {getattr(variable, 'path', variable.name)}") from None


def predict_with_labels(model: tf.keras.Model, dataset: tf.data.Dataset, *,
                        host_loop: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Predictions and labels of a finite `(features, label)` dataset, in dataset order, as float64 `[n]` arrays.

    `host_loop=True` calls the model batch by batch in this process instead of `model.predict`: every worker of a
    multi-worker run then predicts the whole split in order (`model.predict` would shard it over the workers), and
    the coordinator of a parameter-server run reads the variables from the servers.
    """
    labels, predictions = [], []
    if host_loop:
        call = tf.function(lambda features: model(features, training=False))
        for features, label in dataset:
            predictions.append(np.reshape(call(features).numpy(), [-1]))
            labels.append(np.reshape(label.numpy(), [-1]))
    else:
        for _, label in dataset:
            labels.append(np.reshape(label.numpy(), [-1]))
        predictions.append(np.reshape(model.predict(dataset.map(lambda features, label: features), verbose=0), [-1]))
    return np.concatenate(predictions).astype(np.float64), np.concatenate(labels).astype(np.float64)


def undefined_auc_reason(labels: ArrayLike, split: str) -> Optional[str]:
    """Why the AUC of a split is NaN, in one line naming the split and its only class; None when it is defined.

    The AUC ranks positives against negatives, so a split holding one class (e.g. a time split whose last days have
    no click) has none: its AUC is NaN by definition, not a failure of the model.

    Example:
        >>> undefined_auc_reason([0.0, 0.0], "test")[:44]
        'the test split holds only negatives (label 0'
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if labels.size == 0:
        return f"the {split} split is empty, so its AUC and log loss are undefined (NaN)."
    positives = int(np.count_nonzero(labels > 0.5))
    if 0 < positives < labels.size:
        return None
    only, missing = ("positives (label 1)", "negative") if positives else ("negatives (label 0)", "positive")
    return (f"the {split} split holds only {only} in all its {labels.size} rows, with no {missing} example, so its "
            f"AUC is undefined (NaN); log loss is still computed. A split with both classes needs another --split, "
            f"--split_seed or more data.")


def exact_metrics(labels: ArrayLike, predictions: ArrayLike, prefix: str = "") -> Dict[str, float]:
    """`{prefix + "auc", prefix + "logloss", prefix + "ece", prefix + "calibration_ratio"}` of labels and
    probabilities (the metrics' stateless forms, so no variable is created inside whatever strategy scope the caller
    is in; the calibration measures are `tf_multiembed.calibration`'s)."""
    return {f"{prefix}auc": float(exact_auc(labels, predictions)),
            f"{prefix}logloss": float(log_loss(labels, predictions)),
            **calibration_metrics(labels, predictions, prefix)}


class ExactValidation(tf.keras.callbacks.Callback):
    """Adds `val_auc`, `val_logloss`, `val_ece` and `val_calibration_ratio` to the epoch logs: the exact values of
    the whole validation split, from its predictions (`predict_with_labels` + `exact_metrics`, the same path as the
    training loop and `evaluate`).

    Works under every strategy and with XLA. Put it before callbacks that read the logs (TensorBoard, early stopping).

    Args:
        validation_data: a finite `(features, label)` dataset in a fixed order.
        host_loop: predict batch by batch in this process (multi-worker, parameter-server coordinator) instead of
            `model.predict`.

    Example:
        >>> model.fit(train, epochs=10, callbacks=[ExactValidation(valid)])  # doctest: +SKIP
    """

    def __init__(self, validation_data: tf.data.Dataset, host_loop: bool = False) -> None:
        super().__init__()
        self.validation_data = validation_data
        self.host_loop = host_loop
        self.last: Optional[Dict[str, float]] = None
        self._warned = False

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        predictions, labels = predict_with_labels(self.model, self.validation_data, host_loop=self.host_loop)
        reason = undefined_auc_reason(labels, "validation")
        if reason is not None and not self._warned:  # once: the split is the same every epoch
            self._warned = True
            warnings.warn(reason[0].upper() + reason[1:], RuntimeWarning, stacklevel=2)
        self.last = exact_metrics(labels, predictions, prefix="val_")
        if logs is not None:
            logs.update(self.last)
