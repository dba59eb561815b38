"""The one early-stopping rule of the package, with its state in variables so a checkpoint carries it.

An epoch improves when its monitored value (the exact validation AUC) is finite and larger than the best so far;
NaN or infinity (e.g. an AUC of one class only) never improves. Training stops after `patience` epochs without an
improvement, and the best epoch's weights are the result. The training loop (`loop.train`) keeps an
`EarlyStoppingRule` inside its checkpointed progress; `PaperEarlyStopping` applies the same rule in a plain
`model.fit`.
"""

import logging
import math
from typing import Any, Dict, List, Optional

import tensorflow as tf

MONITOR = "val_auc"

_logger = logging.getLogger(__name__)


class EarlyStoppingRule(tf.Module):
    """Patience bookkeeping on a value to maximise, in `tf.Variable`s (save it with `tf.train.Checkpoint`).

    Args:
        patience: epochs without an improvement before `should_stop`.
        name: module name.

    Example:
        >>> rule = EarlyStoppingRule(patience=2)
        >>> [rule.update(epoch, value) for epoch, value in [(1, 0.70), (2, float("nan")), (3, 0.69)]]
        [True, False, False]
        >>> rule.should_stop, rule.best_epoch_number, rule.best_value_number
        (True, 1, 0.7)
    """

    def __init__(self, patience: int, name: str = "early_stopping"):
        super().__init__(name=name)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience <= 0:
            raise ValueError(f"EarlyStoppingRule: `patience` must be a positive integer, received {patience!r}.")
        self.patience = patience
        self.best_value = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_value")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")  # 1-based, 0 = none
        self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False,
                                                      name="epochs_without_improvement")

    def update(self, epoch: int, value: float) -> bool:
        """Records the value of (1-based) `epoch`; returns whether it is the new best."""
        value = float(value)
        if math.isfinite(value) and value > float(self.best_value.numpy()):
            self.best_value.assign(value)
            self.best_epoch.assign(epoch)
            self.epochs_without_improvement.assign(0)
            return True
        if not math.isfinite(value):
            _logger.warning("Epoch %d: the monitored value is %s (one class only?); counted as no improvement.",
                            epoch, value)
        self.epochs_without_improvement.assign_add(1)
        return False

    @property
    def should_stop(self) -> bool:
        return int(self.epochs_without_improvement.numpy()) >= self.patience

    @property
    def best_epoch_number(self) -> Optional[int]:
        """The best epoch (1-based), or None before any finite value."""
        return int(self.best_epoch.numpy()) or None

    @property
    def best_value_number(self) -> Optional[float]:
        return float(self.best_value.numpy()) if self.best_epoch_number else None


class PaperEarlyStopping(tf.keras.callbacks.Callback):
    """`EarlyStoppingRule` for `model.fit`: monitors `val_auc` (put `ExactValidation` before it), stops after
    `patience` epochs without improvement and restores the best epoch's weights when training ends.

    The best weights are kept in memory; for a run that survives a kill use `tf_multiembed.training.train`.

    Example:
        >>> model.fit(train, epochs=100, callbacks=[ExactValidation(valid), PaperEarlyStopping(3)])  # doctest: +SKIP
    """

    def __init__(self, patience: int = 3, monitor: str = MONITOR):
        super().__init__()
        self.rule = EarlyStoppingRule(patience)
        self.monitor = monitor
        self._best_weights: Optional[List[Any]] = None

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if not logs or self.monitor not in logs:
            raise KeyError(f"PaperEarlyStopping: the epoch logs have no {self.monitor!r} (got {sorted(logs or {})}); "
                           "put tf_multiembed.training.ExactValidation(validation_data) before it in `callbacks`.")
        if self.rule.update(epoch + 1, logs[self.monitor]):
            self._best_weights = self.model.get_weights()
        if self.rule.should_stop:
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
