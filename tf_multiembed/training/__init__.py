"""Training: the run configuration (`RunConfig`, declared once, flags generated from it), exact AUC and log loss,
the paper's recipe (coupled-L2 Adam, one early-stopping rule on the exact validation AUC), tf.distribute strategies,
checkpoints by object graph and the resumable `train` loop behind `python train.py`.

Example:
    >>> from tf_multiembed import training
    >>> model = training.compile_model(build_model("dcnv2", sizes, scale=2), training.PaperRecipe())  # doctest: +SKIP
    >>> model.fit(train, epochs=100, callbacks=training.paper_callbacks(valid))  # doctest: +SKIP
"""

from tf_multiembed.training.callbacks import (DivergenceGuard, EveryNSteps, ExactValidation, StopAfterEpoch,
                                              TrainingDivergedError, exact_metrics)
from tf_multiembed.training.checkpointing import CheckpointMismatchError, RunCheckpoints, TrainingProgress
from tf_multiembed.training.config import RunConfig
from tf_multiembed.training.distribute import STRATEGY_NAMES, StrategyInfo, create_strategy
from tf_multiembed.training.early_stopping import EarlyStoppingRule, PaperEarlyStopping
from tf_multiembed.training.loop import evaluate, train
from tf_multiembed.training.metrics import ExactAUC, LogLoss, exact_auc, log_loss
from tf_multiembed.training.optimizers import CoupledL2Adam
from tf_multiembed.training.recipe import PaperRecipe, compile_model, paper_callbacks

__all__ = [
    "CheckpointMismatchError", "CoupledL2Adam", "DivergenceGuard", "EarlyStoppingRule", "EveryNSteps", "ExactAUC",
    "ExactValidation", "LogLoss", "PaperEarlyStopping", "PaperRecipe", "RunCheckpoints", "RunConfig",
    "STRATEGY_NAMES", "StopAfterEpoch", "StrategyInfo", "TrainingDivergedError", "TrainingProgress",
    "compile_model", "create_strategy", "evaluate", "exact_auc", "exact_metrics", "log_loss", "paper_callbacks",
    "train",
]
