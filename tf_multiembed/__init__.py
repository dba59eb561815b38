"""tf-multiembed: multi-embedding CTR models for TensorFlow/Keras, with embedding-collapse diagnostics.

`import tf_multiembed` is light (no TensorFlow import); the subpackages (`layers`, `models`, `data`, `training`,
`diagnostics`, `serving`) are imported where used. `load_model` opens a saved model without any prior import.
"""

import os
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # for the annotations only: importing the package must not import TensorFlow
    import tensorflow as tf


def load_model(path: Union[str, "os.PathLike[str]"], compile: bool = False, **kwargs: Any) -> "tf.keras.Model":
    """Loads a `.keras` file saved from a tf-multiembed model, e.g. a run's `best.keras`, or a run directory.

    Keras finds a custom layer only once its class is registered, which happens when the module defining it is
    imported; this function registers every tf-multiembed layer, metric and optimizer first, so a fresh process
    needs nothing else (`tf.keras.models.load_model` alone fails there with "Could not locate class ...").

    Args:
        path: a `.keras` file, or a `train.py` run directory (its `best.keras` is loaded).
        compile: also restore the compile settings stored in the file (a run's `best.keras` holds none: it is
            saved for inference, without optimizer state).
        **kwargs: passed on to `tf.keras.models.load_model` (e.g. `custom_objects` for layers of your own).

    Returns:
        The `tf.keras.Model`.

    Example:
        >>> import tf_multiembed
        >>> model = tf_multiembed.load_model("runs/synthetic-me_dcnv2_2x10/best.keras")  # doctest: +SKIP
        >>> model.predict(ids)  # doctest: +SKIP
    """
    import pathlib

    import tensorflow as tf

    from tf_multiembed import artifacts

    register_serializables()
    path = pathlib.Path(path)
    kind, resolved = artifacts.locate(path)
    if kind == "run":
        resolved = artifacts.best_model_path(resolved)
    elif kind != "keras":
        raise artifacts.ArtifactError(f"{path}: an export (SavedModel) is loaded with tf.saved_model.load, not as a "
                                      "Keras model; give a .keras file or a train.py run directory.")
    return tf.keras.models.load_model(str(resolved), compile=compile, **kwargs)


def register_serializables() -> None:
    """Imports every module that registers Keras-serializable classes (layers, metrics, optimizers).

    `load_model` calls it; call it yourself before `tf.keras.models.load_model` or `keras.saving` functions.
    """
    import tf_multiembed.layers  # noqa: F401
    import tf_multiembed.models  # noqa: F401  (every registered model's layers, the analysis models' too)
    import tf_multiembed.training.metrics  # noqa: F401
    import tf_multiembed.training.optimizers  # noqa: F401
