"""Keras callbacks of the training loop: step checkpoints, divergence, exact validation from predictions (the one
exact-AUC path of the package), one-epoch fits."""

import math
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

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


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite: the run stops before anything diverged is saved or exported.

    Attributes:
        epoch: the (1-based) epoch.
        step: the (1-based) step within the epoch, or None where it is not known (parameter servers).
        loss: the loss value (nan, inf).
    """

    def __init__(self, epoch: int, step: Optional[int], loss: float, what: str = "loss") -> None:
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        super().__init__(f"training diverged at {where} ({what} {loss}): lower --learning_rate")
        self.epoch, self.step, self.loss = epoch, step, loss


class DivergenceGuard(tf.keras.callbacks.Callback):
    """Raises `TrainingDivergedError` after the first step whose loss is not finite.

    Keras logs the running mean of the epoch's loss, which stays NaN from the first bad batch on, so the step named
    is the first one that diverged. `first_step` counts the steps of the epoch done before this `fit` (a resumed
    epoch).

    Example:
        >>> model.fit(data, callbacks=[DivergenceGuard(epoch=1)])  # doctest: +SKIP
    """

    def __init__(self, epoch: int, first_step: int = 0) -> None:
        super().__init__()
        self.epoch = epoch
        self.first_step = first_step

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDivergedError(self.epoch, self.first_step + batch + 1, float(loss))


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


def exact_metrics(labels: ArrayLike, predictions: ArrayLike, prefix: str = "") -> Dict[str, float]:
    """`{prefix + "auc": ..., prefix + "logloss": ...}` of labels and probabilities (the metrics' stateless forms,
    so no variable is created inside whatever strategy scope the caller is in)."""
    return {f"{prefix}auc": float(exact_auc(labels, predictions)),
            f"{prefix}logloss": float(log_loss(labels, predictions))}


class ExactValidation(tf.keras.callbacks.Callback):
    """Adds `val_auc` and `val_logloss` to the epoch logs: the exact values of the whole validation split, from its
    predictions (`predict_with_labels` + `exact_metrics`, the same path as the training loop and `evaluate`).

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

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        predictions, labels = predict_with_labels(self.model, self.validation_data, host_loop=self.host_loop)
        self.last = exact_metrics(labels, predictions, prefix="val_")
        if logs is not None:
            logs.update(self.last)
