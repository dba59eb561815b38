"""The paper's training recipe (paper.md §1.5) as one dataclass and a `compile` helper.

Adam (lr 1e-3, betas 0.9/0.999, epsilon 1e-8) with coupled L2 1e-6 on every trainable parameter, batch 2048, binary
cross-entropy on the sigmoid output, early stopping on the exact validation AUC with patience 3 (at most 100
epochs) restoring the best weights, and test metrics from that best checkpoint.
"""

import dataclasses
from typing import List

import tensorflow as tf

from tf_multiembed.training.metrics import ExactAUC, LogLoss
from tf_multiembed.training.optimizers import EMBEDDING_UPDATES, SPARSE, CoupledL2Adam

AUC_NAME = "auc"
LOGLOSS_NAME = "logloss"
MONITOR = f"val_{AUC_NAME}"


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
        patience: epochs without a validation-AUC improvement before stopping.

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

    def __post_init__(self):
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

    def optimizer(self, xla_compatible=None) -> CoupledL2Adam:
        """A fresh `CoupledL2Adam` with this recipe's settings (create it inside the strategy scope)."""
        return CoupledL2Adam(learning_rate=self.learning_rate, beta_1=self.beta_1, beta_2=self.beta_2,
                             epsilon=self.epsilon, l2=self.l2, embedding_updates=self.embedding_updates,
                             xla_compatible=xla_compatible)


def paper_metrics(metrics_in_step: bool = True) -> List[tf.keras.metrics.Metric]:
    """`[ExactAUC("auc"), LogLoss("logloss")]`, or `[]` where they cannot run in the step (TPU, parameter servers)."""
    if not metrics_in_step:
        return []
    return [ExactAUC(name=AUC_NAME), LogLoss(name=LOGLOSS_NAME)]


def compile_model(model: tf.keras.Model, recipe: PaperRecipe = None, *, metrics_in_step: bool = True,
                  jit_compile=False, steps_per_execution: int = 1) -> tf.keras.Model:
    """Compiles `model` with the recipe's optimizer, BCE on probabilities, and the exact AUC and log loss metrics.

    Call it inside `strategy.scope()` when training under a strategy. `jit_compile` stays off by default because the
    exact-AUC buffer has a dynamic shape; with `metrics_in_step=False` (the metrics then come from
    `callbacks.ExactValidation`) XLA can be switched on.

    Example:
        >>> model = build_model("dcnv2", [10, 20, 30], scale=2)  # doctest: +SKIP
        >>> compile_model(model, PaperRecipe())  # doctest: +SKIP
        >>> model.fit(train, validation_data=valid, epochs=100, callbacks=paper_callbacks())  # doctest: +SKIP
    """
    recipe = recipe or PaperRecipe()
    if jit_compile and metrics_in_step:
        raise ValueError("compile_model: jit_compile=True needs metrics_in_step=False (the exact AUC buffer has a "
                         "dynamic shape that XLA cannot compile); use callbacks.ExactValidation for the metrics.")
    optimizer = recipe.optimizer(xla_compatible=True if jit_compile else None)
    model.compile(optimizer=optimizer, loss=tf.keras.losses.BinaryCrossentropy(),
                  metrics=paper_metrics(metrics_in_step), jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


def paper_callbacks(recipe: PaperRecipe = None) -> List[tf.keras.callbacks.Callback]:
    """In-memory early stopping for a notebook `model.fit`: exact validation AUC, patience, best weights restored.

    `tf_multiembed.training.loop.train` does the same with the state in checkpoints, so a killed run resumes.
    """
    recipe = recipe or PaperRecipe()
    return [tf.keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max", patience=recipe.patience,
                                             restore_best_weights=True)]
