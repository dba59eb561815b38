"""Checkpoints of a training run: model, optimizer and the loop's progress, written so a killed run can resume.

`model_dir/checkpoints/` holds the latest checkpoints (every epoch, optionally every N steps) and
`model_dir/best/` the weights of the best validation epoch. Each save is a `tf.train.CheckpointManager` save, which
updates the `checkpoint` index file only after the data is written, so a SIGKILL during a save leaves the previous
checkpoint usable (the `ckpt-*_temp` folder such a kill leaves is removed by the next run, see `run_directory`). The
progress (epoch, step in the epoch, early-stopping state, per-epoch history, wall time) is saved *inside* the
checkpoint, so it always matches the weights it sits with.

Weights are saved **by object graph**: each variable is found by its layer's name and the path of attributes from
that layer to it (e.g. `layers/set_cross/kernel_0`), so a refactor that builds the same variables or layers in
another order still restores each one into its own place, and a variable that is missing or of another shape fails
the restore. (Keras' own
optimizer object is not put in the checkpoint: it refers to the model's variables through a positional list, and
a checkpoint restores a variable through the first path it was saved under, which would make the restore
positional again.) The optimizer's variables are saved as a list together with the object-graph paths of the model
variables in the order the optimizer was built for; a restore into a model whose trainable variables come in
another order is refused instead of pairing moments with the wrong weights. Variables that TensorFlow's object graph
cannot reach (Keras 3 keeps dropout seed states in objects it does not track) are saved in model order; a
*trainable* variable out of the graph's reach is an error, because a checkpoint would lose it.

In a multi-worker run every worker must save (saving may use collectives); only the chief writes to `model_dir`,
the others write to a scratch directory that is deleted right after (the pattern of the tf.distribute guide), and
every worker restores from the chief's directory, which must therefore be shared (one machine, NFS, GCS, ...).
"""

import json
import os
import shutil
from typing import Any, Dict, List, Optional

import tensorflow as tf

from tf_multiembed import artifacts
from tf_multiembed.training.early_stopping import EarlyStoppingRule

CHECKPOINTS_SUBDIR = artifacts.CHECKPOINTS_DIR
BEST_SUBDIR = artifacts.BEST_CHECKPOINT_DIR


class CheckpointMismatchError(ValueError):
    """A checkpoint that cannot be restored into this model without mixing up its variables."""


class ModelState(tf.Module):
    """What a checkpoint holds of a model: its layers by name, each layer's variables by attribute path (the object
    graph), plus the few non-trainable variables the object graph cannot reach, in model order.

    Raises:
        ValueError: when a trainable variable cannot be reached through the object graph.
    """

    def __init__(self, model: tf.keras.Model):
        super().__init__(name="model_state")
        self.layers = artifacts.layers_by_name(model)
        paths = artifacts.model_variable_paths(model)
        unreachable = [variable for variable in model.variables if id(variable) not in paths]
        trainable = [getattr(variable, "path", variable.name) for variable in unreachable if variable.trainable]
        if trainable:
            raise ValueError(
                f"Model {model.name!r}: the trainable variables {trainable} are not reachable through layer "
                "attributes, so a checkpoint would lose them. Keep sub-layers and weights that live in Python lists "
                "also as attributes (tf_multiembed.validation.track_as_attribute).")
        self.untracked_state = list(unreachable)
        self.trainable_paths = [paths[id(variable)] for variable in model.trainable_variables]


class OptimizerState(tf.Module):
    """The optimizer's variables (iterations, learning rate, slots) and the order of the model variables it holds
    slots for (object-graph paths, checked before a restore)."""

    def __init__(self, optimizer: tf.keras.optimizers.Optimizer, trainable_paths: List[str]) -> None:
        super().__init__(name="optimizer_state")
        self.variables_list = list(optimizer.variables() if callable(optimizer.variables) else optimizer.variables)
        self.slot_order = tf.Variable(json.dumps(trainable_paths), dtype=tf.string, trainable=False,
                                      name="slot_order")



class TrainingProgress(tf.Module):
    """The loop's resumable state, as variables that live in the checkpoint.

    Attributes: epoch (epochs completed), step_in_epoch (steps of the current epoch completed), global_step,
    early_stopping (the `EarlyStoppingRule` state), elapsed_seconds (training wall time over all runs), finished,
    history (list of per-epoch dicts), resumes (list of {"epoch", "step"} where earlier runs stopped).

    Args:
        patience: the early-stopping patience.
    """

    def __init__(self, patience: int = 3):
        super().__init__(name="progress")
        # Plain variables (created outside any strategy scope): bookkeeping, identical on every worker.
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.early_stopping = EarlyStoppingRule(patience)
        self.elapsed_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
        self.finished = tf.Variable(False, trainable=False, name="finished")
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False, name="history")
        self._resumes = tf.Variable("[]", dtype=tf.string, trainable=False, name="resumes")

    # Methods rather than property setters: tf.Module wraps assigned lists and dicts in trackable wrappers.
    @property
    def history(self) -> List[Dict[str, Any]]:
        return json.loads(self._history.numpy().decode("utf-8"))

    def set_history(self, value: List[Dict[str, Any]]) -> None:
        self._history.assign(json.dumps(value))

    @property
    def resumes(self) -> List[Dict[str, Any]]:
        return json.loads(self._resumes.numpy().decode("utf-8"))

    def set_resumes(self, value: List[Dict[str, Any]]) -> None:
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
        self.model_state = ModelState(model)
        trackables = dict(model=self.model_state, progress=progress)
        self.optimizer_state = None
        if getattr(model, "optimizer", None) is not None:
            self.optimizer_state = OptimizerState(model.optimizer, self.model_state.trainable_paths)
            trackables["optimizer"] = self.optimizer_state
        self._latest = tf.train.Checkpoint(**trackables)
        self._best = tf.train.Checkpoint(model=self.model_state)
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
        if self.optimizer_state is not None:
            self._check_slot_order(path)
        # Every variable of this model must find its value (by object-graph path; shapes must agree).
        self._latest.restore(path).assert_existing_objects_matched().expect_partial()
        return True

    def _check_slot_order(self, path: str) -> None:
        key = "optimizer/slot_order/.ATTRIBUTES/VARIABLE_VALUE"
        reader = tf.train.load_checkpoint(path)
        if not reader.has_tensor(key):
            raise CheckpointMismatchError(f"{path}: no optimizer slot order; it was not written by this version of "
                                          "tf_multiembed's training loop. Start over (train.py --restart).")
        value = reader.get_tensor(key)
        saved = json.loads(value.decode("utf-8") if isinstance(value, bytes) else str(value))
        current = self.model_state.trainable_paths
        if saved != current:
            first = next((index for index, (a, b) in enumerate(zip(saved, current)) if a != b),
                         min(len(saved), len(current)))
            raise CheckpointMismatchError(
                f"{path}: the optimizer state was saved for {len(saved)} trainable variables in another order than "
                f"this model's {len(current)} (first difference at position {first}: "
                f"{saved[first] if first < len(saved) else None!r} then, "
                f"{current[first] if first < len(current) else None!r} now), so its moments would go to the wrong "
                "weights. Resume with the code that wrote it, or start over (train.py --restart).")

    def restore_best(self) -> bool:
        """Restores the model weights of the best epoch. False if no best checkpoint exists."""
        path = self.best_path()
        if path is None:
            return False
        self._best.restore(path).assert_existing_objects_matched().expect_partial()
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
