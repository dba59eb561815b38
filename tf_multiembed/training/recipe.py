"""The paper's training recipe (paper.md §1.5) as one dataclass and a `compile` helper.

Adam (lr 1e-3, betas 0.9/0.999, epsilon 1e-8) with coupled L2 1e-6 on every trainable parameter, batch 2048, binary
cross-entropy on the sigmoid output, early stopping on the exact validation AUC with patience 3 (at most 100
epochs) restoring the best weights, and test metrics from that best checkpoint.
"""

import dataclasses
from typing import List, Optional

import tensorflow as tf

from tf_multiembed.training.callbacks import ExactValidation
from tf_multiembed.training.early_stopping import Monitor, PaperEarlyStopping
from tf_multiembed.training.optimizers import EMBEDDING_UPDATES, SPARSE, CoupledL2Adam


@dataclasses.dataclass
class PaperRecipe:
    """Hyper-parameters of the paper's recipe; every field can be overridden.

    Attributes:
        learning_rate: Adam step size.
        beta_1: Adam first-moment decay.
        beta_2: Adam second-moment decay.
        epsilon: Adam epsilon (PyTorch's 1e-8, not Keras' 1e-7).
        l2: coupled L2 coefficient on every trainable parameter, embeddings included.
        embedding_updates: "sparse" (lazy Adam: only the looked-up embedding rows are updated, fast) or "dense"
            (every row gets the L2 term and an Adam step every step, as the reference code).
        batch_size: global batch size (split over replicas by tf.distribute).
        max_epochs: the most epochs to train.
        patience: epochs without an improvement of the monitored score before stopping.
        monitor: what early stopping and the kept checkpoint follow: "auc" (the paper's), "logloss" or "auc_logloss"
            (see `early_stopping.Monitor`).
        monitor_logloss_weight: w of the "auc_logloss" rule (AUC - w * log loss).

    Example:
        >>> PaperRecipe().learning_rate, PaperRecipe(patience=5).patience
        (0.001, 5)
    """

    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    l2: float = 1e-6
    embedding_updates: str = SPARSE
    batch_size: int = 2048
    max_epochs: int = 100
    patience: int = 3
    monitor: str = "auc"
    monitor_logloss_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"PaperRecipe: `{name}` must be a positive integer, received {value!r}.")
        if self.embedding_updates not in EMBEDDING_UPDATES:
            raise ValueError(f"PaperRecipe: `embedding_updates` must be one of {EMBEDDING_UPDATES}, received "
                             f"{self.embedding_updates!r}.")
        for name in ("learning_rate", "epsilon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"PaperRecipe: `{name}` must be a positive number, received {value!r}.")
        self.monitor_rule()  # its own checks

    def monitor_rule(self) -> Monitor:
        """The `Monitor` of early stopping and the kept checkpoint."""
        return Monitor(self.monitor, self.monitor_logloss_weight)

    def optimizer(self, xla_compatible: Optional[bool] = None) -> CoupledL2Adam:
        """A fresh `CoupledL2Adam` with this recipe's settings (create it inside the strategy scope)."""
        return CoupledL2Adam(learning_rate=self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon, l2=self.l2, embedding_updates=self.embedding_updates,
                             xla_compatible=xla_compatible)


def compile_model(model: tf.keras.Model, recipe: Optional[PaperRecipe] = None, *, jit_compile: bool = False,
                  steps_per_execution: int = 1) -> tf.keras.Model:
    """Compiles `model` with the recipe's optimizer and binary cross-entropy on probabilities.

    No metric runs inside the step: the exact AUC and log loss come from predictions of the whole split after each
    epoch (`ExactValidation`, `tf_multiembed.training.evaluate`), so XLA (`jit_compile=True`) works with every
    strategy. Call it inside `strategy.scope()` when training under a strategy.

    Example:
        >>> model = build_model("dcnv2", [10, 20, 30], scale=2)  # doctest: +SKIP
        >>> compile_model(model, PaperRecipe())  # doctest: +SKIP
        >>> model.fit(train, epochs=100, callbacks=paper_callbacks(valid))  # doctest: +SKIP
    """
    recipe = recipe or PaperRecipe()
    optimizer = recipe.optimizer(xla_compatible=True if jit_compile else None)
    model.compile(optimizer=optimizer, loss=tf.keras.losses.BinaryCrossentropy(), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def paper_callbacks(validation_data: tf.data.Dataset, recipe: Optional[PaperRecipe] = None
                    ) -> List[tf.keras.callbacks.Callback]:
    """Early stopping for a notebook `model.fit`: the exact validation AUC and log loss of `validation_data` after
    each epoch, the package's one early-stopping rule with the recipe's patience and monitor, best weights restored at
    the end.

    `tf_multiembed.training.train` applies the same rule with its state in checkpoints, so a killed run resumes.

    Example:
        >>> model.fit(train, epochs=100, callbacks=paper_callbacks(valid))  # doctest: +SKIP
    """
    recipe = recipe or PaperRecipe()
    return [ExactValidation(validation_data), PaperEarlyStopping(recipe.patience, monitor=recipe.monitor_rule())]
