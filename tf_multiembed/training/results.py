"""The run's results JSON and TensorBoard epoch summaries (written by the chief)."""

import os
import platform
from typing import Dict, Mapping

import tensorflow as tf

from tf_multiembed import artifacts, compat

RESULTS_FILE = artifacts.RESULTS_FILE
LOGS_SUBDIR = artifacts.LOGS_DIR


def runtime_description(strategy_name: str, strategy: tf.distribute.Strategy) -> Dict[str, object]:
    """Versions and hardware facts that go with every result."""
    return {
        "tensorflow": tf.__version__,
        "keras": compat.keras_version(),
        "legacy_keras": compat.is_legacy_keras(),
        "python": platform.python_version(),
        "strategy": strategy_name,
        "replicas": int(strategy.num_replicas_in_sync),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "cpu_count": os.cpu_count(),
    }


# What `tensorboard.summary.scalar` attaches (plugin "scalars", data class scalar), built from TensorFlow's own protos
# so the logs can be written without the tensorboard package (TensorFlow 2.21 no longer installs it).
_SCALAR_METADATA = tf.compat.v1.SummaryMetadata(
    plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars", content=b""),
    data_class=1,  # DATA_CLASS_SCALAR
)


class EpochSummaries:
    """TensorBoard scalars per epoch: `train/<metric>` and `validation/<metric>` under `model_dir/logs`.

    Written by the loop rather than Keras' TensorBoard callback, which not every strategy supports and which needs
    the tensorboard package; the step is the 1-based epoch. View them with `tensorboard --logdir model_dir/logs`.

    Example:
        >>> EpochSummaries("/tmp/run").write(1, {"loss": 0.5, "val_auc": 0.7})
    """

    def __init__(self, model_dir: str):
        self._writers = {
            "train": tf.summary.create_file_writer(os.path.join(model_dir, LOGS_SUBDIR, "train")),
            "validation": tf.summary.create_file_writer(os.path.join(model_dir, LOGS_SUBDIR, "validation")),
        }

    def write(self, epoch: int, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            if not isinstance(value, (int, float)) or key in ("epoch", "seconds"):
                continue
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[split].as_default():
                tf.summary.write(name, tf.constant(float(value), tf.float32), step=epoch, metadata=_SCALAR_METADATA)
        for writer in self._writers.values():
            writer.flush()
