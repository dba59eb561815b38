"""Checkpoints of a training run: model, optimizer and the loop's progress, written so a killed run can resume.

`model_dir/checkpoints/` holds the latest checkpoints (every epoch, optionally every N steps) and
`model_dir/best/` the weights of the best validation epoch. Each save is a `tf.train.CheckpointManager` save, which
updates the `checkpoint` index file only after the data is written, so a SIGKILL during a save leaves the previous
checkpoint usable. The progress (epoch, step in the epoch, early-stopping state, per-epoch history, wall time) is
saved *inside* the checkpoint, so it always matches the weights it sits with.

In a multi-worker run every worker must save (saving may use collectives); only the chief writes to `model_dir`,
the others write to a scratch directory that is deleted right after (the pattern of the tf.distribute guide), and
every worker restores from the chief's directory, which must therefore be shared (one machine, NFS, GCS, ...).
"""

import json
import os
import shutil
from typing import List, Optional

import tensorflow as tf

CHECKPOINTS_SUBDIR = "checkpoints"
BEST_SUBDIR = "best"


class TrainingProgress:
    """The loop's resumable state, as variables that live in the checkpoint.

    Attributes (read with the properties): epoch (epochs completed), step_in_epoch (steps of the current epoch
    completed), global_step, best_value, best_epoch (1-based, 0 = none yet), epochs_without_improvement,
    elapsed_seconds (training wall time over all runs), finished, history (list of per-epoch dicts),
    resumes (list of {"epoch", "step"} where earlier runs stopped).
    """

    def __init__(self):
        # Plain variables (created outside any strategy scope): bookkeeping, identical on every worker.
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.best_value = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False, name="best_value")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.epochs_without_improvement = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
        self.elapsed_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
        self.finished = tf.Variable(False, trainable=False, name="finished")
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
        self._resumes = tf.Variable("[]", dtype=tf.string, trainable=False, name="resumes")

    def trackables(self) -> dict:
        return dict(epoch=self.epoch, step_in_epoch=self.step_in_epoch, global_step=self.global_step,
                    best_value=self.best_value, best_epoch=self.best_epoch,
                    epochs_without_improvement=self.epochs_without_improvement,
                    elapsed_seconds=self.elapsed_seconds, finished=self.finished, history=self._history,
                    resumes=self._resumes)

    @property
    def history(self) -> List[dict]:
        return json.loads(self._history.numpy().decode("utf-8"))

    @history.setter
    def history(self, value: List[dict]) -> None:
        self._history.assign(json.dumps(value))

    @property
    def resumes(self) -> List[dict]:
        return json.loads(self._resumes.numpy().decode("utf-8"))

    @resumes.setter
    def resumes(self, value: List[dict]) -> None:
        self._resumes.assign(json.dumps(value))


class RunCheckpoints:
    """Saves and restores the run's latest and best checkpoints in `model_dir`.

    Args:
        model_dir: the run directory (shared by all workers of a multi-worker run).
        model: the Keras model (its optimizer must be built before `restore_latest` for an exact resume).
        progress: the run's `TrainingProgress`.
        is_chief: whether this process owns `model_dir`; other workers write to a scratch directory.
        task_id: a name for this process, used for its scratch directory.
        max_to_keep: latest checkpoints kept.

    Example:
        >>> checkpoints = RunCheckpoints("runs/a", model, TrainingProgress())  # doctest: +SKIP
        >>> checkpoints.restore_latest()  # doctest: +SKIP
        >>> checkpoints.save()  # doctest: +SKIP
    """

    def __init__(self, model_dir: str, model: tf.keras.Model, progress: TrainingProgress, *, is_chief: bool = True,
                 task_id: str = "chief", max_to_keep: int = 2):
        self.model_dir = model_dir
        self.is_chief = is_chief
        self.progress = progress
        write_dir = model_dir if is_chief else os.path.join(model_dir, ".scratch", task_id)
        self._write_dir = write_dir
        # The model's variables as one positional list: Keras 3 layers that keep sub-layers in Python lists are
        # invisible to TensorFlow's object-graph tracking, so `Checkpoint(model=model)` can miss e.g. batch-norm
        # statistics. The order of `model.variables` is fixed by the architecture, and a restore into a different
        # architecture fails on the shapes.
        model_variables = list(model.variables)
        trackables = dict(model_variables=model_variables, **progress.trackables())
        if getattr(model, "optimizer", None) is not None:
            trackables["optimizer"] = model.optimizer
        self._latest = tf.train.Checkpoint(**trackables)
        self._best = tf.train.Checkpoint(model_variables=model_variables)
        self._latest_manager = tf.train.CheckpointManager(
            self._latest, os.path.join(write_dir, CHECKPOINTS_SUBDIR), max_to_keep=max_to_keep)
        self._best_manager = tf.train.CheckpointManager(
            self._best, os.path.join(write_dir, BEST_SUBDIR), max_to_keep=1)

    def latest_path(self) -> Optional[str]:
        """The chief's latest checkpoint, or None for a fresh run."""
        return tf.train.latest_checkpoint(os.path.join(self.model_dir, CHECKPOINTS_SUBDIR))

    def best_path(self) -> Optional[str]:
        return tf.train.latest_checkpoint(os.path.join(self.model_dir, BEST_SUBDIR))

    def restore_latest(self) -> bool:
        """Restores model, optimizer and progress from the chief's latest checkpoint. False for a fresh run."""
        path = self.latest_path()
        if path is None:
            return False
        # Metric and other unsaved objects may be absent; every saved value must find its variable.
        self._latest.restore(path).assert_existing_objects_matched().expect_partial()
        return True

    def restore_best(self) -> bool:
        """Restores the model weights of the best epoch. False if no best checkpoint exists."""
        path = self.best_path()
        if path is None:
            return False
        self._best.restore(path).expect_partial()
        return True

    def save(self) -> str:
        """Writes a checkpoint numbered by the global step (every worker must call it)."""
        path = self._latest_manager.save(checkpoint_number=int(self.progress.global_step.numpy()))
        self._clean_scratch()
        return path

    def save_best(self) -> str:
        """Writes the current weights as the best checkpoint (every worker must call it)."""
        path = self._best_manager.save(checkpoint_number=int(self.progress.epoch.numpy()))
        self._clean_scratch()
        return path

    def _clean_scratch(self) -> None:
        if not self.is_chief:
            shutil.rmtree(self._write_dir, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self._write_dir))  # `.scratch`, once no worker uses it
            except OSError:
                pass
