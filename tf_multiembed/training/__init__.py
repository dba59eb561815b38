"""Training: exact AUC and log loss metrics, the paper's recipe (coupled-L2 Adam, early stopping on exact AUC),
tf.distribute strategies, resumable checkpoints and the `train` loop behind `python train.py`.

Example:
    >>> from tf_multiembed import training
    >>> model.compile(optimizer=training.CoupledL2Adam(), loss="binary_crossentropy",
    ...               metrics=[training.ExactAUC(), training.LogLoss()])  # doctest: +SKIP
"""

from tf_multiembed.training.callbacks import EveryNSteps, ExactValidation, StopAfterEpoch, exact_metrics
from tf_multiembed.training.checkpointing import RunCheckpoints, TrainingProgress
from tf_multiembed.training.distribute import STRATEGY_NAMES, StrategyInfo, create_strategy
from tf_multiembed.training.loop import evaluate, train
from tf_multiembed.training.metrics import ExactAUC, LogLoss, exact_auc, log_loss
from tf_multiembed.training.optimizers import CoupledL2Adam
from tf_multiembed.training.recipe import PaperRecipe, compile_model, paper_callbacks, paper_metrics

__all__ = [
    "CoupledL2Adam", "EveryNSteps", "ExactAUC", "ExactValidation", "LogLoss", "PaperRecipe", "RunCheckpoints",
    "STRATEGY_NAMES", "StopAfterEpoch", "StrategyInfo", "TrainingProgress", "compile_model", "create_strategy",
    "evaluate", "exact_auc", "exact_metrics", "log_loss", "paper_callbacks", "paper_metrics", "train",
]
