"""One training run from a `RunConfig`: data -> model -> paper recipe -> test metrics -> SavedModel.

`train.py` builds a `RunConfig` from its flags and calls `run`; notebooks and benchmarks can call `run` (or
`train_prepared`, on data prepared once) directly. What the run leaves behind follows `tf_multiembed.artifacts`.
"""

import dataclasses
import logging
import math
import os
import pathlib
import sys
import time
from typing import TYPE_CHECKING, Any, ContextManager, Dict, List, Optional, Sequence, TextIO, Tuple, Union

import tensorflow as tf

from tf_multiembed import artifacts
from tf_multiembed.training import distribute
from tf_multiembed.training.config import (  # noqa: F401  (DATASETS: public)
    CUSTOM_DATASET, DATASETS, PREPARED_DATASET, RunConfig, comparable_settings, setting_defaults)
from tf_multiembed.training.loop import train
from tf_multiembed.training.recipe import compile_model
from tf_multiembed.training.run_directory import check_writable, open_run_directory

if TYPE_CHECKING:
    import numpy as np

    from tf_multiembed.data.pipeline import PreparedData
    from tf_multiembed.data.schema import Schema
    from tf_multiembed.training.warm_start import WarmStartSource


def _input_paths(data_path: str) -> Union[str, List[str]]:
    paths = [part for part in data_path.split(",") if part]
    return paths[0] if len(paths) == 1 else paths


def configure_threads(threads: int) -> None:
    """Sets TensorFlow's intra- and inter-op threads (0 keeps TensorFlow's default); before the first op runs."""
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            print(f"--threads={threads} ignored: TensorFlow is already running with {current or 'default'} threads "
                  "(set it before the first TensorFlow operation).", flush=True)


# logging.StreamHandler[TextIO] would fail at run time before Python 3.11 (not subscriptable there).
class _PlainHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler of `show_package_logs` (so a second call finds it); `below` keeps only records under that level."""

    def __init__(self, stream: TextIO, below: Optional[int] = None) -> None:
        super().__init__(stream)
        self.below = below

    def filter(self, record: logging.LogRecord) -> bool:
        return (self.below is None or record.levelno < self.below) and bool(super().filter(record))


def show_package_logs() -> None:
    """Shows the package's own log lines (the data build's progress, rate and ETA; cache reuse) as plain timestamped
    lines: INFO on stdout, warnings on stderr, whatever the root logger's level (absl's WARNING under `train.py`).
    Only the `tf_multiembed` loggers change, so TensorFlow's INFO lines stay hidden. Calling it again changes nothing.
    """
    logger = logging.getLogger("tf_multiembed")
    if any(isinstance(handler, _PlainHandler) for handler in logger.handlers):
        return
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    problems = _PlainHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    for handler in (_PlainHandler(sys.stdout, below=logging.WARNING), problems):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not a second time through absl's handler


def plain_when_not_a_terminal(verbose: int) -> int:
    """`verbose` 1 (progress bar) becomes 2 (one plain line per epoch) when stdout is not a terminal, so a log file
    gets no carriage-return progress bars."""
    isatty = getattr(sys.stdout, "isatty", None)
    return 2 if verbose == 1 and not (isatty and isatty()) else verbose


def prepare_data(config: RunConfig) -> Tuple["PreparedData", "Schema", Union[str, List[str], None]]:
    """(PreparedData, schema, input paths) for the configured data set (input paths are None for a prepared folder)."""
    from tf_multiembed.data import PreparedData, prepare_dataset
    from tf_multiembed.data.layout import match_built_in

    if config.dataset == PREPARED_DATASET:
        if config.min_count is not None:
            raise ValueError("--min_count cannot change a prepared folder's vocabularies; prepare the data again with "
                             "it (prepare_dataset or the Beam pipeline).")
        data = PreparedData.load(config.data_path)
        if config.warm_start_from:  # the folder's vocabularies as they are (tokens matched by value)
            _refuse_warm_start_of_new_input_kinds(data.schema)
            warm_start_source(config, data.field_names, data.hash_buckets)
        return data, data.schema, None
    cache_dir = pathlib.Path(config.data_dir)
    input_paths: Union[str, List[str]]
    if config.dataset == "synthetic":
        from tf_multiembed.data.synthetic import SyntheticCriteoConfig, synthetic_criteo_file

        click_model = SyntheticCriteoConfig(interaction_order=config.synthetic_interaction_order,
                                            num_interacting_pairs=config.synthetic_interactions,
                                            interaction_share=config.synthetic_interaction_share)
        synthetic = synthetic_criteo_file(cache_dir / "synthetic", num_rows=config.synthetic_rows,
                                          config=click_model)
        schema, input_paths = synthetic.schema, str(synthetic.path)
    else:
        input_paths = _input_paths(config.data_path)
        # A built-in name reads the Kaggle layout or a tutorial's CSV sample with a header (data/layout.py).
        schema, note = match_built_in(config.schema if config.dataset == CUSTOM_DATASET else config.dataset,
                                      input_paths)
        if note and config.verbose:
            print(f"Note: {note}", flush=True)
    if config.min_count is not None:
        schema = schema.with_min_count(config.min_count)
    base_vocabulary = None
    if config.warm_start_from:  # refused before the build when the model or fields differ
        from tf_multiembed.data.growth import BaseVocabulary

        _refuse_warm_start_of_new_input_kinds(schema)
        source = warm_start_source(config, schema.field_names,
                                   {name: field.hash_buckets for field in schema.fields
                                    if field.hash_buckets is not None for name in field.output_names})
        base_vocabulary = BaseVocabulary(source.vocab_dir, source.ages_dir, config.warm_start_evict_after,
                                         config.warm_start_max_new_tokens, source=str(source.path))
    data = prepare_dataset(schema, input_paths, cache_dir, split=config.split, seed=config.split_seed,
                           base_vocabulary=base_vocabulary)
    return data, schema, input_paths


def _refuse_warm_start_of_new_input_kinds(schema: "Schema") -> None:
    # The remap moves rows by vocabulary token; bucketized boundaries, normalisation statistics and bag vocabularies
    # are learned per build and would need their own carry-over rule (not built yet).
    unsupported = [field.name for field in (*schema.treated_fields, *schema.bag_fields)]
    if unsupported:
        raise ValueError(f"--warm_start_from does not support numeric treatments or bag fields yet ({unsupported}); "
                         "train this schema from scratch (or describe those fields as categorical).")


def warm_start_source(config: RunConfig, field_names: Sequence[str],
                      hash_buckets: Dict[str, int]) -> "WarmStartSource":
    """The `warm_start.WarmStartSource` of `--warm_start_from`, checked against this run's model and fields."""
    from tf_multiembed.models import resolve_embedding_shape
    from tf_multiembed.training.warm_start import check_compatible, resolve_source

    source = resolve_source(config.warm_start_from)
    num_sets, embedding_dim = resolve_embedding_shape(config.model, config.scale, config.multi_embedding,
                                                      config.embedding_dim, config.num_sets)
    check_compatible(source, config.model, num_sets, embedding_dim, field_names, hash_buckets)
    return source


def lineage(config: RunConfig, data: "PreparedData", name: str) -> List[Dict[str, Any]]:
    """The runs this run's model descends from (through --warm_start_from), each with the data it trained on, and
    this run last (`config.model_dir` must be set: `RunConfig.with_defaults`)."""
    from tf_multiembed.training.warm_start import lineage_entry, resolve_source

    ancestors = list(resolve_source(config.warm_start_from).lineage) if config.warm_start_from else []
    return ancestors + [lineage_entry("run", config.model_dir, config.model_name(), data, name)]


def data_name(config: RunConfig, data: "PreparedData") -> str:
    """The data's name in default run and export names: the dataset, or the schema's name for custom input."""
    name = data.schema.name if config.dataset in (CUSTOM_DATASET, PREPARED_DATASET) else config.dataset
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in name) or "data"


def _configure_cpu_devices(count: int) -> None:
    if count > 1:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)


def create_strategy(config: RunConfig) -> distribute.StrategyInfo:
    devices = None
    if config.strategy == "mirrored" and config.num_cpu_devices > 1:
        _configure_cpu_devices(config.num_cpu_devices)
        devices = [f"/cpu:{index}" for index in range(config.num_cpu_devices)]
    return distribute.create_strategy(config.strategy, devices=devices, tpu=config.tpu)


def build_and_compile(config: RunConfig, vocabulary_sizes: Sequence[int], field_names: Sequence[str],
                      info: distribute.StrategyInfo, model_inputs: Optional[Dict[str, Any]] = None,
                      bag_sizes: Optional[Sequence[int]] = None, bag_combiner: str = "mean") -> tf.keras.Model:
    """The configured model, built and compiled with the recipe inside the strategy's scope; `model_inputs` are the
    prepared data's float numeric fields with their statistics (`PreparedData.model_inputs`), `bag_sizes` its bags
    (`PreparedData.model_fields`), if any."""
    from tf_multiembed.models import NumericInputs, build_model

    tf.keras.utils.set_random_seed(config.seed)
    # Always set: a process running several configurations must not inherit the previous run's policy.
    tf.keras.mixed_precision.set_global_policy(config.mixed_precision or "float32")
    with info.strategy.scope():
        model = build_model(config.model, list(vocabulary_sizes), scale=config.scale,
                            multi_embedding=config.multi_embedding, embedding_dim=config.embedding_dim,
                            num_sets=config.num_sets, field_names=list(field_names),
                            numeric_inputs=NumericInputs.from_dict(model_inputs), bag_sizes=bag_sizes,
                            bag_combiner=bag_combiner, **config.model_kwargs())
        compile_model(model, config.recipe(), jit_compile=config.jit_compile)
    return model


def run_record(config: RunConfig, data: "PreparedData", name: str) -> Dict[str, Any]:
    """What `run.json` says about a run (see `tf_multiembed.artifacts`)."""
    return {"format_version": artifacts.FORMAT_VERSION, "package_version": artifacts.package_version(),
            "config": dataclasses.asdict(config), "data": artifacts.data_record(data, name),
            "model": {"name": config.model_name(), "family": config.model,
                      # what the model options were built with (set or defaults), for models that take any
                      **({"options": config.model_options()} if config.model_options() else {})},
            "lineage": lineage(config, data, name)}


def _open(config: RunConfig, data: "PreparedData", name: str,
          info: distribute.StrategyInfo) -> ContextManager[pathlib.Path]:
    return open_run_directory(config.model_dir, run_record(config, data, name), list(config.result_settings()),
                              is_chief=info.is_chief, restart=config.restart, defaults=setting_defaults(),
                              resolve=comparable_settings)


def check_output_folders(config: RunConfig) -> None:
    """Fails at once, naming the flag, when the run directory or the export folder is not writable, instead of after
    data preparation or training. The default run directory (runs/<data>-<model name>) is checked through runs/.
    (The data cache is not: a cache that is up to date is only read.)"""
    folders = [("model_dir", config.model_dir or "runs")]
    if config.export_dir:
        folders.append(("export_dir", config.export_dir))
    for flag, folder in folders:
        check_writable(folder, flag)


def _shard_by_file_if_possible(dataset: tf.data.Dataset, num_files: int,
                               info: distribute.StrategyInfo) -> tf.data.Dataset:
    """Multi-worker runs read disjoint shard files when the split has at least one per worker (else the loop shards
    by element: every worker reads every file and keeps its share of the rows)."""
    if info.name != "multi_worker" or info.cluster_resolver is None:
        return dataset
    cluster = info.cluster_resolver.cluster_spec().as_dict()
    if num_files < len(cluster.get("worker", [])) + len(cluster.get("chief", [])):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    return dataset.with_options(options)


def train_prepared(config: RunConfig, data: "PreparedData", info: distribute.StrategyInfo, name: Optional[str] = None
                   ) -> Tuple[Dict[str, Any], tf.keras.Model]:
    """Builds, compiles and trains (or resumes) the configured model on prepared data; returns (results, model).

    The run directory is locked and checked first (`run_directory.open_run_directory`); at the end it holds the
    best model as `best.keras` and the ingest report. The model holds the best epoch's weights afterwards. `run`
    adds data preparation and the export; experiment runners (benchmarks/quality/scaling.py) call this once per
    configuration on data prepared once. `config` is not changed.
    """
    name = name or data_name(config, data)
    config = config.with_defaults(name)
    with _open(config, data, name, info) as run_dir:
        field_names, vocabulary_sizes, bag_sizes = data.model_fields()
        model = build_and_compile(config, vocabulary_sizes, field_names, info, data.model_inputs, bag_sizes,
                                  data.schema.bag_pooling)
        warm_start = _warm_start(config, model, data, info) if config.warm_start_from else None
        if config.verbose and info.is_chief:
            floats = f", float fields {list(data.float_columns)}" if data.float_columns else ""
            print(f"Data: {data.split_rows} rows, {len(field_names)} fields, vocabulary sizes "
                  f"{list(vocabulary_sizes)}{floats}\nModel: {model.name} ({model.count_params():,} parameters), "
                  f"strategy {info.name} ({info.strategy.num_replicas_in_sync} replica(s)), run directory "
                  f"{config.model_dir}", flush=True)
        seed, batch_size = config.seed, config.batch_size
        report = artifacts.ingest_report(data)
        if info.is_chief:
            artifacts.write_json(run_dir / artifacts.INGEST_REPORT_FILE, report)
        full_epoch = math.ceil(data.split_rows["train"] / batch_size)
        results = train(
            model,
            # TPUs compile for one batch shape: no partial last batch there.
            train_data=lambda epoch: _shard_by_file_if_possible(
                data.train_dataset(batch_size, shuffle=config.shuffle, seed=seed * 1_000_003 + epoch,
                                   drop_remainder=info.name == "tpu"), len(data.shards["train"]), info),
            validation_data=data.validation_dataset(batch_size), test_data=data.test_dataset(batch_size),
            model_dir=config.model_dir, recipe=config.recipe(), strategy_info=info,
            steps_per_epoch=min(config.steps_per_epoch or full_epoch, full_epoch),
            checkpoint_every_steps=config.checkpoint_every_steps,
            config={**dataclasses.asdict(config), "vocabulary_sizes": list(data.vocabulary_sizes),
                    "num_parameters": int(model.count_params())},
            extra_results={"data": {**artifacts.data_record(data, name), "ingest_report": report},
                           "warm_start": warm_start, "lineage": lineage(config, data, name)},
            verbose=plain_when_not_a_terminal(config.verbose))
        if config.calibration != "none":
            results = calibrate(config.calibration, model, data, info, results, batch_size)
            if info.is_chief:  # `train` wrote the results before the calibrator existed
                artifacts.write_json(run_dir / artifacts.RESULTS_FILE, results)
        if info.is_chief:
            artifacts.write_best_model(model, run_dir)
    return results, model


def _warm_start(config: RunConfig, model: tf.keras.Model, data: "PreparedData", info: distribute.StrategyInfo
                ) -> Optional[Dict[str, Any]]:
    """Carries the --warm_start_from weights and Adam state into a fresh run's model (`warm_start.py`); a run that
    already has checkpoints resumes from them instead. Returns the record of what was carried over."""
    from tf_multiembed.training.warm_start import warm_start_model

    if tf.train.latest_checkpoint(os.path.join(config.model_dir, artifacts.CHECKPOINTS_DIR)) is not None:
        previous = pathlib.Path(config.model_dir) / artifacts.RESULTS_FILE
        return artifacts.read_json(previous, "the run's results").get("warm_start") if previous.is_file() else None
    source = warm_start_source(config, data.field_names, data.hash_buckets)
    with info.strategy.scope():
        record = warm_start_model(model, source, data.vocab_dir, data.vocabulary_sizes)
    record["vocabulary_growth"] = data.vocabulary_growth
    if config.verbose and info.is_chief:
        rows = record["table_rows"]
        adam = ", with its Adam state" if record["optimizer_state"] else ""
        print(f"Warm start from {source.path} ({source.kind}{adam}): "
              f"{rows['carried_over']:,} table rows carried over, {rows['fresh']:,} fresh"
              + (f"; vocabulary {data.vocabulary_growth['totals']}" if data.vocabulary_growth else ""), flush=True)
    return record


def calibrate(kind: str, model: tf.keras.Model, data: "PreparedData", info: distribute.StrategyInfo,
              results: Dict[str, Any], batch_size: int = 2048) -> Dict[str, Any]:
    """Fits a `kind` calibrator ("platt" or "isotonic") on the validation split's predictions of `model` (the kept
    weights) and returns `results` with `calibration`: its parameters and the validation and test metrics before
    and after it (the test split is not used for fitting)."""
    from tf_multiembed.calibration import fit_calibrator
    from tf_multiembed.training.callbacks import exact_metrics, predict_with_labels

    def predictions(dataset: tf.data.Dataset) -> Tuple["np.ndarray", "np.ndarray"]:
        return predict_with_labels(model, dataset, host_loop=info.predicts_on_host)

    valid_predictions, valid_labels = predictions(data.validation_dataset(batch_size))
    calibrator = fit_calibrator(kind, valid_labels, valid_predictions)
    record: Dict[str, Any] = {"kind": kind, "fitted_on": "validation", "parameters": calibrator.to_dict()}
    splits = [("validation", valid_predictions, valid_labels)]
    if results.get("test") is not None:
        splits.append(("test", *predictions(data.test_dataset(batch_size))))
    for split, predicted, labels in splits:
        record[split] = {"before": exact_metrics(labels, predicted),
                         "after": exact_metrics(labels, calibrator.apply(predicted))}
    return {**results, "calibration": record}


def _warmup_columns(schema: "Schema", input_paths: Union[str, List[str], None],
                    data: "PreparedData") -> Optional[Dict[str, List[Any]]]:
    from tf_multiembed.serving.examples import raw_columns_from_files, raw_columns_from_vocabularies

    try:
        import tensorflow_serving.apis  # noqa: F401  (the warm-up records are its protos)
    except ImportError:
        print("tensorflow-serving-api is not installed (pip install tf-multiembed[serving]): exporting without "
              "assets.extra/tf_serving_warmup_requests.", flush=True)
        return None
    if input_paths is None:  # a prepared folder: no raw files at hand
        return raw_columns_from_vocabularies(schema, data.vocab_dir, 16)
    return raw_columns_from_files(schema, input_paths, 16)


def _export(config: RunConfig, model: tf.keras.Model, data: "PreparedData", schema: "Schema",
            input_paths: Union[str, List[str], None], info: distribute.StrategyInfo, name: str,
            results: Dict[str, Any]) -> Optional[pathlib.Path]:
    from tf_multiembed.calibration import calibrator_from_dict
    from tf_multiembed.serving import export_for_serving

    if not config.export_dir:
        return None
    export_dir = config.export_dir if info.is_chief else os.path.join(config.model_dir, ".scratch", info.task_id)
    path = export_for_serving(model, data.feature_encoder(), export_dir, config.export_name,
                              version=config.export_version, warmup_columns=_warmup_columns(schema, input_paths, data),
                              data_name=name, data_fingerprint=artifacts.data_fingerprint(data),
                              model_family=config.model, model_options=config.model_options(),
                              kept_checkpoint=results.get("kept_checkpoint"),
                              calibrator=calibrator_from_dict(results["calibration"]["parameters"])
                              if results.get("calibration") else None, lineage=results.get("lineage"))
    if not info.is_chief:
        import shutil

        shutil.rmtree(export_dir, ignore_errors=True)
        return None
    return path


def summary_lines(results: Dict[str, Any]) -> str:
    """The end-of-run lines of `train.py`: the kept epoch and why, its validation and test metrics (with
    calibration), and the calibrator's effect when there is one."""
    nan = float("nan")
    kept = results.get("kept_checkpoint") or {}
    best: Dict[str, Any] = next((entry for entry in results["epochs"] if entry["epoch"] == results["best_epoch"]),
                                {})
    test = results.get("test") or {}
    undefined = next((f" (AUC undefined: {note.split(', so')[0]})" for note in results.get("warnings", ())
                      if note.startswith("the test split")), "")
    lines = [f"Kept epoch {results['best_epoch']}, {kept.get('reason', 'no finite validation score')}: validation "
             f"AUC {best.get('val_auc', nan):.6f}, logloss {best.get('val_logloss', nan):.6f}, ECE "
             f"{best.get('val_ece', nan):.4f}",
             f"Test (kept checkpoint): AUC {test.get('auc', nan):.6f}, logloss {test.get('logloss', nan):.6f}, ECE "
             f"{test.get('ece', nan):.4f}, mean prediction / click rate {test.get('calibration_ratio', nan):.3f}"
             + undefined]
    calibration = results.get("calibration")
    if calibration and "test" in calibration:
        before, after = calibration["test"]["before"], calibration["test"]["after"]
        lines.append(f"Test after {calibration['kind']} calibration (fitted on validation): AUC {after['auc']:.6f}, "
                     f"logloss {before['logloss']:.6f} -> {after['logloss']:.6f}, ECE {before['ece']:.4f} -> "
                     f"{after['ece']:.4f}, mean prediction / click rate {after['calibration_ratio']:.3f}")
    return "\n".join(lines)


def run(config: RunConfig) -> Tuple[Dict[str, Any], Optional[pathlib.Path]]:
    """Trains (or resumes) the configured run, evaluates it, exports it; returns (results, export path).

    Raises:
        RunMismatchError: the run directory was trained with other settings or data (and `restart` is off).
        RunDirectoryLockedError: another process trains in the run directory.
        ExportMismatchError: the export name already serves a model with other inputs (checked before training).
        TrainingDivergedError: the loss became NaN or grew past the divergence bound, or a weight is not finite
            (nothing is exported).
        FolderNotWritableError: --model_dir, --export_dir or --data_dir cannot be written (checked first).
        ForeignDirectoryError: --model_dir holds files of someone else and is not a run directory.

    Example:
        >>> results, export_path = run(RunConfig(epochs=2, synthetic_rows=20_000))  # doctest: +SKIP
        >>> results["test"]["auc"]  # doctest: +SKIP
    """
    from tf_multiembed.data import raw_feature_signature
    from tf_multiembed.serving import check_export_target

    started = time.time()
    configure_threads(config.threads)
    info = create_strategy(config)
    if info.is_chief:
        check_output_folders(config)
    data, schema, input_paths = prepare_data(config)
    name = data_name(config, data)
    config = config.with_defaults(name)
    with _open(config, data, name, info):
        if config.export_dir and info.is_chief:  # a wrong export target fails before hours of training
            check_export_target(config.export_dir, config.export_name, raw_feature_signature(data.schema),
                                version=config.export_version)
        results, model = train_prepared(config, data, info, name)
        export_path = _export(config, model, data, schema, input_paths, info, name, results)
    if config.verbose and info.is_chief:
        print(summary_lines(results) + "\n"
              f"Run directory: {config.model_dir} (best model: "
              f"{os.path.join(config.model_dir, artifacts.BEST_MODEL_FILE)})"
              + (f"\nSavedModel: {export_path}" if export_path else "")
              + f"\nWall time: {time.time() - started:.1f} s", flush=True)
    return results, export_path
