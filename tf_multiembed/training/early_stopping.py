"""The one early-stopping rule of the package, with its state in variables so a checkpoint carries it.

What is monitored is a `Monitor`: the exact validation AUC (the paper's rule, the default), the validation log loss,
or AUC - w * log loss. An epoch improves when its monitored score (larger is better: the log loss enters with a
minus sign) is finite and larger than the best so far; NaN or infinity (e.g. an AUC of one class only) never
improves. Training stops after `patience` epochs without an
improvement, and the best epoch's weights are the result. The training loop (`loop.train`) keeps an
`EarlyStoppingRule` inside its checkpointed progress; `PaperEarlyStopping` applies the same rule in a plain
`model.fit`.
"""

import dataclasses
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import tensorflow as tf

MONITOR = "val_auc"
MONITORS = ("auc", "logloss", "auc_logloss")
# The single-metric rules: the epoch log they follow and how the kept epoch is described.
_RULE_LOGS = {"auc": ("val_auc", "highest validation AUC"), "logloss": ("val_logloss", "lowest validation log loss")}

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Monitor:
    """What early stopping and the kept checkpoint follow, as a score to maximise from an epoch's validation logs.

    Args:
        rule: "auc" (the paper's: highest validation AUC), "logloss" (lowest validation log loss, the checkpoint
            whose probabilities are best) or "auc_logloss" (highest AUC - `logloss_weight` * log loss).
        logloss_weight: w of "auc_logloss" (ignored by the other rules).

    Example:
        >>> logs = {"val_auc": 0.78, "val_logloss": 0.45}
        >>> Monitor("auc").score(logs), Monitor("logloss").score(logs), Monitor("auc_logloss", 0.1).score(logs)
        (0.78, -0.45, 0.735)
        >>> Monitor("logloss").describe(logs)
        'lowest validation log loss (0.450000)'
    """

    rule: str = "auc"
    logloss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.rule not in MONITORS:
            raise ValueError(f"Monitor: `rule` must be one of {list(MONITORS)}, received {self.rule!r}.")
        weight = self.logloss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"Monitor: `logloss_weight` must be a finite number >= 0, received {weight!r}.")

    def score(self, logs: Mapping[str, float]) -> float:
        """The score of an epoch (larger is better) from its `val_auc` / `val_logloss`."""
        auc, logloss = float(logs.get("val_auc", math.nan)), float(logs.get("val_logloss", math.nan))
        if self.rule == "auc":
            return auc
        if self.rule == "logloss":
            return -logloss
        return round(auc - self.logloss_weight * logloss, 12)

    def displayed(self, logs: Mapping[str, float]) -> Tuple[str, float]:
        """What the epoch lines print: ("val_auc", AUC), ("val_logloss", log loss) or ("score", AUC - w log loss)."""
        if self.rule in _RULE_LOGS:
            key = _RULE_LOGS[self.rule][0]
            return key, float(logs.get(key, math.nan))
        return "score", self.score(logs)

    def describe(self, logs: Optional[Mapping[str, float]] = None) -> str:
        """Why an epoch with these logs is kept, in words (e.g. "highest validation AUC (0.781200)")."""
        what = (_RULE_LOGS[self.rule][1] if self.rule in _RULE_LOGS
                else f"highest validation AUC - {self.logloss_weight:g} x log loss")
        return what if logs is None else f"{what} ({self.displayed(logs)[1]:.6f})"


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
    """`EarlyStoppingRule` for `model.fit`: monitors `val_auc` (put `ExactValidation` before it) or the score of a
    `Monitor`, stops after `patience` epochs without improvement and restores the best epoch's weights when training
    ends.

    The best weights are kept in memory; for a run that survives a kill use `tf_multiembed.training.train`.

    Example:
        >>> model.fit(train, epochs=100, callbacks=[ExactValidation(valid), PaperEarlyStopping(3)])  # doctest: +SKIP
    """

    def __init__(self, patience: int = 3, monitor: Union[str, Monitor] = MONITOR) -> None:
        super().__init__()
        self.rule = EarlyStoppingRule(patience)
        self.monitor = monitor
        self._best_weights: Optional[List[Any]] = None

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        needed = ["val_auc", "val_logloss"] if isinstance(self.monitor, Monitor) else [self.monitor]
        if not logs or any(key not in logs for key in needed):
            raise KeyError(f"PaperEarlyStopping: the epoch logs have no {needed} (got {sorted(logs or {})}); "
                           "put tf_multiembed.training.ExactValidation(validation_data) before it in `callbacks`.")
        value = self.monitor.score(logs) if isinstance(self.monitor, Monitor) else logs[self.monitor]
        if self.rule.update(epoch + 1, value):
            self._best_weights = self.model.get_weights()
        if self.rule.should_stop:
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)
