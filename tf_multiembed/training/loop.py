"""`train`: the paper's recipe around `model.fit`, one epoch per `fit`, with state that survives a SIGKILL.

Each epoch: `fit` on that epoch's training data (resumed epochs skip the steps already done; a loss that turns NaN
or infinite or grows past `callbacks.divergence_bound`, or a weight that is not finite, stops the run with
`TrainingDivergedError` before anything is saved), the exact validation AUC and log
loss from predictions of the whole split, the early-stopping rule, a checkpoint with the progress inside, the results
JSON and TensorBoard scalars. When patience runs out (or at `max_epochs`), the best epoch's weights are restored and
the test split is evaluated with them. Started again with the same arguments, `train` resumes from the latest
checkpoint; a finished run only re-evaluates its best checkpoint.
"""

import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_multiembed import artifacts, compat
from tf_multiembed.training import callbacks as callbacks_lib
from tf_multiembed.training import results as results_lib
from tf_multiembed.training.checkpointing import RunCheckpoints, TrainingProgress
from tf_multiembed.training.distribute import StrategyInfo, barrier, create_strategy
from tf_multiembed.training.recipe import PaperRecipe


def _with_data_sharding(dataset: tf.data.Dataset) -> tf.data.Dataset:
    # A dataset that chose its sharding keeps it (train_prepared gives a prepared split with enough shard files
    # FILE sharding: each worker reads its own files). Otherwise shard by element: in-memory data has no files, and
    # FILE sharding fails outright with fewer files than workers.
    if dataset.options().experimental_distribute.auto_shard_policy != tf.data.experimental.AutoShardPolicy.AUTO:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class _StepCounter(tf.keras.callbacks.Callback):
    def __init__(self, first_step: int):
        super().__init__()
        self.steps = first_step

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self.steps += 1


def _build_optimizer(model: tf.keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Creates the optimizer's slots now, so a restore finds them (Keras creates them lazily at the first step)."""
    if getattr(model, "optimizer", None) is None:
        raise ValueError("train: compile the model first (e.g. tf_multiembed.training.compile_model).")
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)


def _float_logs(logs: Mapping[str, Any]) -> Dict[str, float]:
    return {key: float(value) for key, value in logs.items() if isinstance(value, (int, float)) or hasattr(value,
                                                                                                          "item")}


def _exact_metrics(model: tf.keras.Model, dataset: tf.data.Dataset, info: StrategyInfo, epoch: Optional[int],
                   prefix: str = "", split: str = "test", notes: Optional[List[str]] = None) -> Dict[str, float]:
    """The exact metrics of a split; the reason its AUC is undefined (one class) is appended to `notes`, or warned
    when there is no list to append to."""
    predictions, labels = callbacks_lib.predict_with_labels(model, dataset, host_loop=info.predicts_on_host)
    reason = callbacks_lib.undefined_auc_reason(labels, split)
    if reason is not None and notes is None:
        warnings.warn(reason[0].upper() + reason[1:], RuntimeWarning, stacklevel=3)
    elif reason is not None and notes is not None and reason not in notes:
        notes.append(reason)
    if not np.all(np.isfinite(predictions)):
        bad = predictions[~np.isfinite(predictions)][0]
        if epoch is not None:
            raise callbacks_lib.TrainingDivergedError(epoch, None, float(bad), what="validation prediction")
        raise ValueError(f"evaluate: the model predicts {bad} for {int(np.sum(~np.isfinite(predictions)))} of "
                         f"{predictions.size} examples; its weights are not finite.")
    return callbacks_lib.exact_metrics(labels, predictions, prefix=prefix)


def train(model: tf.keras.Model, *, train_data: Callable[[int], tf.data.Dataset], validation_data: tf.data.Dataset,
          test_data: Optional[tf.data.Dataset], model_dir: str, recipe: Optional[PaperRecipe] = None,
          strategy_info: Optional[StrategyInfo] = None, steps_per_epoch: Optional[int] = None,
          checkpoint_every_steps: Optional[int] = None, config: Optional[Mapping[str, Any]] = None,
          extra_results: Optional[Mapping[str, Any]] = None, verbose: int = 1,
          extra_callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> Dict[str, object]:
    """Trains `model` with early stopping on the exact validation metrics (the recipe's monitor: AUC by default),
    resumably; returns the results dict.

    Args:
        model: a model compiled with `compile_model` inside `strategy_info.strategy.scope()`.
        train_data: `epoch -> dataset` of `(ids, label)` batches for that (0-based) epoch; building it per epoch
            with a seed derived from the epoch makes the order of a resumed epoch the same as the killed one's.
        validation_data: finite `(ids, label)` batches in a fixed order.
        test_data: finite `(ids, label)` batches, evaluated with the best weights at the end (None to skip).
        model_dir: where checkpoints (`checkpoints/`, `best/`), TensorBoard logs (`logs/`) and `results.json` go.
        recipe: max epochs, patience and monitor (the optimizer settings were used by `compile_model`).
        strategy_info: from `distribute.create_strategy`; the default strategy if None.
        steps_per_epoch: steps per epoch; required for parameter-server training (datasets repeat).
        checkpoint_every_steps: also checkpoint every this many steps inside an epoch.
        config: the run's configuration, copied into the results JSON.
        extra_results: more entries for the results JSON (e.g. the data record and its ingest report).
        verbose: 0 silent; 1 Keras' progress bar and a line per epoch; 2 only the line per epoch (loss, exact
            validation AUC, best so far, seconds): plain text for log files.
        extra_callbacks: more Keras callbacks for every `fit`.

    Returns:
        The results: config, per-epoch history (validation AUC, log loss, ECE, calibration ratio), the kept epoch and
        why, test metrics, wall time, resumes, runtime.

    Raises:
        TrainingDivergedError: when the loss is not finite or over `callbacks.divergence_bound` (1000 x max(ln 2,
            the starting loss)), or a weight or validation prediction is not finite; `results.json` then says
            "diverged" and no checkpoint of the diverged weights is written.

    Example:
        >>> with info.strategy.scope():  # doctest: +SKIP
        ...     model = compile_model(build_model("dcnv2", sizes, scale=2))
        >>> results = train(model, train_data=lambda epoch: data.train_dataset(2048, True, seed + epoch),
        ...                 validation_data=data.validation_dataset(2048), test_data=data.test_dataset(2048),
        ...                 model_dir="runs/me_dcnv2", strategy_info=info)  # doctest: +SKIP
    """
    recipe = recipe or PaperRecipe()
    info = strategy_info or create_strategy("default")
    strategy = info.strategy
    if checkpoint_every_steps is not None and (not isinstance(checkpoint_every_steps, int)
                                               or checkpoint_every_steps <= 0):
        raise ValueError(f"train: `checkpoint_every_steps` must be a positive integer or None, received "
                         f"{checkpoint_every_steps!r}.")
    if info.is_parameter_server and not steps_per_epoch:
        raise ValueError("train: parameter-server training needs `steps_per_epoch` (its datasets repeat forever).")
    if info.is_parameter_server and checkpoint_every_steps:
        raise ValueError("train: `checkpoint_every_steps` needs batch-level callbacks, which Keras does not run under "
                         "ParameterServerStrategy; parameter-server runs checkpoint every epoch.")
    compat.check_no_string_inputs(model, strategy)
    _build_optimizer(model, strategy)
    validation_data = _with_data_sharding(validation_data)
    test_data = _with_data_sharding(test_data) if test_data is not None else None

    progress = TrainingProgress(recipe.patience)
    stopping = progress.early_stopping
    monitor = recipe.monitor_rule()
    checkpoints = RunCheckpoints(model_dir, model, progress, is_chief=info.is_chief, task_id=info.task_id)
    barrier(strategy)  # every worker reads the chief's checkpoints: all must see the same files
    if checkpoints.restore_latest() and not bool(progress.finished.numpy()):
        resume = {"epoch": int(progress.epoch.numpy()) + 1, "step": int(progress.step_in_epoch.numpy())}
        progress.set_resumes(progress.resumes + [resume])
        print(f"Resuming from {checkpoints.latest_path()}: epoch {resume['epoch']}, step {resume['step']}.",
              flush=True)

    summaries = results_lib.EpochSummaries(model_dir) if info.is_chief else None
    results_path = os.path.join(model_dir, artifacts.RESULTS_FILE)
    runtime = results_lib.runtime_description(info.name, strategy)

    notes: List[str] = []  # why a split's AUC is undefined: printed once, kept in the results as "warnings"

    def warn_new_notes(count_before: int) -> None:
        if info.is_chief:
            for note in notes[count_before:]:
                print(f"Warning: {note}", file=sys.stderr, flush=True)

    def results(status: str, test_metrics: Optional[Dict[str, float]] = None,
                error: Optional[str] = None) -> Dict[str, object]:
        history = progress.history
        kept = next((entry for entry in history if entry["epoch"] == stopping.best_epoch_number), None)
        payload = {
            "status": status,
            "config": dict(config or {}),
            "epochs": history,
            "best_epoch": stopping.best_epoch_number,
            "best_val_auc": kept["val_auc"] if kept else None,
            # Which epoch's weights the run keeps (test metrics, best.keras, the export) and why.
            "kept_checkpoint": {"epoch": kept["epoch"], "monitor": monitor.rule, "score": stopping.best_value_number,
                                "reason": monitor.describe(kept)} if kept else None,
            "stopped_early": stopping.should_stop,
            "test": test_metrics,
            "wall_seconds": float(progress.elapsed_seconds.numpy()),
            "resumes": progress.resumes,
            "runtime": runtime,
            **dict(extra_results or {}),
        }
        if error:
            payload["error"] = error
        if notes:
            payload["warnings"] = list(notes)
        if info.is_chief:
            artifacts.write_json(results_path, payload)
        return payload

    sync_statistics = compat.replica_statistics_sync(strategy)
    # The divergence bound's reference: the run's first logged loss (after a resume, its first epoch's mean).
    starting_loss = next((entry["loss"] for entry in progress.history[:1] if entry.get("loss") is not None), None)
    run_started = time.time()
    elapsed_at_start = float(progress.elapsed_seconds.numpy())

    def save_progress(step_in_epoch: int, global_step: int) -> None:
        progress.step_in_epoch.assign(step_in_epoch)
        progress.global_step.assign(global_step)
        progress.elapsed_seconds.assign(elapsed_at_start + time.time() - run_started)
        checkpoints.save()

    while not bool(progress.finished.numpy()) and int(progress.epoch.numpy()) < recipe.max_epochs:
        epoch = int(progress.epoch.numpy())
        first_step = int(progress.step_in_epoch.numpy())
        steps_before_epoch = int(progress.global_step.numpy()) - first_step
        dataset = train_data(epoch)
        epoch_steps = steps_per_epoch
        if epoch_steps is None and int(dataset.cardinality()) > 0:
            epoch_steps = int(dataset.cardinality())
        if info.is_parameter_server:
            dataset = dataset.repeat()
        if first_step:
            dataset = dataset.skip(first_step)
        counter = _StepCounter(first_step)
        # Keras refuses batch-level callbacks under ParameterServerStrategy; there every epoch has steps_per_epoch.
        guard = callbacks_lib.DivergenceGuard(epoch + 1, first_step, starting_loss)
        fit_callbacks: List[tf.keras.callbacks.Callback] = [] if info.is_parameter_server else [counter, guard]
        if sync_statistics is not None:
            fit_callbacks.append(sync_statistics)
        if checkpoint_every_steps:
            fit_callbacks.append(callbacks_lib.EveryNSteps(
                checkpoint_every_steps,
                lambda step, before=steps_before_epoch: save_progress(step, before + step),  # type: ignore[misc]
                first_step, last_step=epoch_steps))
        fit_callbacks += [*extra_callbacks, callbacks_lib.StopAfterEpoch()]
        epoch_started = time.time()
        try:
            history = model.fit(
                _with_data_sharding(dataset), epochs=recipe.max_epochs, initial_epoch=epoch,
                steps_per_epoch=(steps_per_epoch - first_step) if steps_per_epoch else None,
                callbacks=fit_callbacks, verbose=1 if verbose == 1 else 0, shuffle=False)
            logs = _float_logs({key: values[-1] for key, values in history.history.items() if values})
            starting_loss = guard.starting_loss
            if "loss" in logs:  # parameter servers: no batch-level check
                starting_loss = logs["loss"] if starting_loss is None else starting_loss
                callbacks_lib.check_loss(logs["loss"], epoch + 1, None, starting_loss)
            if not info.is_parameter_server:  # there the tables live on the servers: no copy of them every epoch
                callbacks_lib.check_weights(model, epoch + 1)
            known_notes = len(notes)
            logs.update(_exact_metrics(model, validation_data, info, epoch + 1, prefix="val_", split="validation",
                                       notes=notes))
            warn_new_notes(known_notes)
        except callbacks_lib.TrainingDivergedError as error:
            results("diverged", error=str(error))
            raise
        value = monitor.score(logs)
        if stopping.update(epoch + 1, value):
            progress.epoch.assign(epoch + 1)  # numbers the best checkpoint
            checkpoints.save_best()
        record = {"epoch": epoch + 1, **logs, "seconds": time.time() - epoch_started}
        progress.set_history([entry for entry in progress.history if entry["epoch"] <= epoch] + [record])
        progress.epoch.assign(epoch + 1)
        if stopping.should_stop:
            progress.finished.assign(True)  # a rerun with a larger max_epochs continues an unfinished run
        # Parameter-server epochs have `steps_per_epoch` steps (checked above); the others counted theirs.
        save_progress(0, steps_before_epoch + (steps_per_epoch if info.is_parameter_server and steps_per_epoch
                                               else counter.steps))
        if summaries is not None:
            summaries.write(epoch + 1, logs)
        results("running")
        if verbose and info.is_chief:
            loss = f" loss={logs['loss']:.6f}," if "loss" in logs else ""
            name, shown = monitor.displayed(logs)
            best = next((entry for entry in progress.history if entry["epoch"] == stopping.best_epoch_number), None)
            print(f"Epoch {epoch + 1}/{recipe.max_epochs}:{loss} {name}={shown:.6f} "
                  f"(best {monitor.displayed(best)[1] if best else float('nan'):.6f} at epoch "
                  f"{stopping.best_epoch_number}, "
                  f"{int(stopping.epochs_without_improvement.numpy())}/{recipe.patience} without improvement), "
                  f"{record['seconds']:.1f} s", flush=True)

    barrier(strategy)  # the chief may still be writing the last best checkpoint
    if checkpoints.restore_best() and verbose and info.is_chief:
        print(f"Restored the weights of the best epoch {stopping.best_epoch_number}.", flush=True)
    if sync_statistics is not None:
        sync_statistics.synchronize(model)
    test_metrics = None
    if test_data is not None:
        known_notes = len(notes)
        test_metrics = _exact_metrics(model, test_data, info, epoch=None, split="test", notes=notes)
        warn_new_notes(known_notes)
    return results("finished", test_metrics)


def evaluate(model: tf.keras.Model, dataset: tf.data.Dataset, strategy_info: Optional[StrategyInfo] = None
             ) -> Dict[str, float]:
    """Exact AUC and log loss of `model` on a finite `(ids, label)` dataset, from predictions of the whole split
    (the same path as the validation metrics of `train`). A dataset holding one class has no AUC: it is NaN, with a
    `RuntimeWarning` saying so.

    Example:
        >>> evaluate(model, data.test_dataset(2048))  # doctest: +SKIP
        {'auc': 0.79, 'logloss': 0.45}
    """
    info = strategy_info or StrategyInfo("default", tf.distribute.get_strategy())
    return _exact_metrics(model, dataset, info, epoch=None, split="given")
