"""One training run from a flat configuration: data -> model -> paper recipe -> test metrics -> SavedModel.

`train.py` fills a `RunConfig` from its flags and calls `run`; notebooks and benchmarks can call `run` directly.
"""

import dataclasses
import math
import os
import pathlib
import time
from typing import Optional, Sequence, Tuple

import tensorflow as tf

from tf_multiembed.training import distribute
from tf_multiembed.training.loop import train
from tf_multiembed.training.recipe import PaperRecipe, compile_model

DATASETS = ("synthetic", "criteo", "avazu", "movielens", "csv")


@dataclasses.dataclass
class RunConfig:
    """Everything a run needs; the defaults train ME-DCNv2 on the embedded synthetic data with the paper's recipe.

    Attributes:
        dataset: "synthetic" (generated Criteo-shaped data, the default), "criteo", "avazu", "movielens" or "csv".
        data_path: the input files (a path, glob pattern, or comma-separated list; the folder for MovieLens-100K).
        schema: for "csv": the JSON/YAML schema file describing the columns.
        data_dir: where prepared data (vocabularies, encoded shards, the synthetic file) are cached.
        synthetic_rows: rows of the synthetic data set.
        split: "random" (the paper's 8:1:1 permutation) or "time" (file order / time column).
        split_seed: the seed of the random split.
        model: a registered model name.
        multi_embedding: ME (True) or SE (False).
        scale: the scale factor (SE width scale*K, ME scale sets of width K).
        num_sets: explicit number of ME sets (overrides scale).
        embedding_dim: the base width K (default: the model's, 10; 50 for NFwFM).
        batch_size, learning_rate, l2, embedding_updates, epochs, patience: the recipe (see `PaperRecipe`).
        seed: seed of the initialisation, dropout and the per-epoch shuffles.
        shuffle: reshuffle the training split every epoch (seeded by seed and epoch); False walks the split's own
            (already random) order every epoch, as the reference code does.
        jit_compile: compile the training step with XLA (the exact AUC then comes from a callback after each epoch).
        mixed_precision: a Keras dtype policy for the run, "mixed_bfloat16" or "mixed_float16" ("" = float32);
            the weights and the output stay float32, matmuls run in 16 bits (see docs/benchmarks.md).
        steps_per_epoch: limit the steps per epoch (None = the whole training split).
        strategy: a `distribute.STRATEGY_NAMES` entry.
        num_cpu_devices: for `mirrored` on a machine without GPUs: split the CPU into this many logical devices.
        tpu: the TPU address for `tpu`.
        model_dir: checkpoints, logs and results; default `runs/<dataset>-<model name>`.
        checkpoint_every_steps: also checkpoint every N steps (None = every epoch only).
        export_dir: where the TF Serving SavedModel goes (`<export_dir>/<export_name>/<version>`); "" to skip.
        export_name: the TF Serving model name (default: the model's name, e.g. "me_dcnv2_2x10").
        export_version: the version number (default: the next free one).
        verbose: Keras progress output (0, 1 or 2).
    """

    dataset: str = "synthetic"
    data_path: str = ""
    schema: str = ""
    data_dir: str = "runs/data"
    synthetic_rows: int = 200_000
    split: str = "random"
    split_seed: int = 0
    model: str = "dcnv2"
    multi_embedding: bool = True
    scale: int = 2
    num_sets: Optional[int] = None
    embedding_dim: Optional[int] = None
    batch_size: int = 2048
    learning_rate: float = 1e-3
    l2: float = 1e-6
    embedding_updates: str = "sparse"
    epochs: int = 100
    patience: int = 3
    seed: int = 0
    shuffle: bool = True
    jit_compile: bool = False
    mixed_precision: str = ""
    steps_per_epoch: Optional[int] = None
    strategy: str = "default"
    num_cpu_devices: int = 0
    tpu: str = ""
    model_dir: str = ""
    checkpoint_every_steps: Optional[int] = None
    export_dir: str = "export"
    export_name: str = ""
    export_version: Optional[int] = None
    verbose: int = 1

    def recipe(self) -> PaperRecipe:
        return PaperRecipe(learning_rate=self.learning_rate, l2=self.l2, embedding_updates=self.embedding_updates,
                           batch_size=self.batch_size, max_epochs=self.epochs, patience=self.patience)


def _input_paths(data_path: str):
    paths = [part for part in data_path.split(",") if part]
    return paths[0] if len(paths) == 1 else paths


def prepare_data(config: RunConfig):
    """(PreparedData, schema, input paths) for the configured data set."""
    from tf_multiembed.data import prepare_dataset, resolve_schema

    if config.dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {config.dataset!r}; expected one of {DATASETS}.")
    cache_dir = pathlib.Path(config.data_dir)
    if config.dataset == "synthetic":
        from tf_multiembed.data.synthetic import synthetic_criteo_file

        synthetic = synthetic_criteo_file(cache_dir / "synthetic", num_rows=config.synthetic_rows)
        schema, input_paths = synthetic.schema, str(synthetic.path)
    else:
        if not config.data_path:
            raise ValueError(f"--data_path is required for dataset {config.dataset!r} (the input files"
                             f"{'; the ml-100k folder' if config.dataset == 'movielens' else ''}).")
        if config.dataset == "csv":
            if not config.schema:
                raise ValueError("--schema is required for dataset 'csv': a JSON/YAML file describing the columns "
                                 "(see tf_multiembed/data/schema.py).")
            schema = resolve_schema(config.schema)
        else:
            schema = resolve_schema(config.dataset)
        input_paths = _input_paths(config.data_path)
    data = prepare_dataset(schema, input_paths, cache_dir, split=config.split, seed=config.split_seed)
    return data, schema, input_paths


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
                      info: distribute.StrategyInfo) -> tf.keras.Model:
    """The configured model, built and compiled with the recipe inside the strategy's scope."""
    from tf_multiembed.models import build_model

    tf.keras.utils.set_random_seed(config.seed)
    # Always set: a process running several configurations must not inherit the previous run's policy.
    tf.keras.mixed_precision.set_global_policy(config.mixed_precision or "float32")
    with info.strategy.scope():
        model = build_model(config.model, list(vocabulary_sizes), scale=config.scale,
                            multi_embedding=config.multi_embedding, embedding_dim=config.embedding_dim,
                            num_sets=config.num_sets, field_names=list(field_names))
        compile_model(model, config.recipe(), metrics_in_step=info.metrics_in_step, jit_compile=config.jit_compile)
    return model


def _export(config: RunConfig, model, data, schema, input_paths, info) -> Optional[pathlib.Path]:
    from tf_multiembed.serving import export_for_serving
    from tf_multiembed.serving.examples import raw_columns_from_files

    if not config.export_dir:
        return None
    export_dir = config.export_dir if info.is_chief else os.path.join(config.model_dir, ".scratch", info.task_id)
    try:
        import tensorflow_serving.apis  # noqa: F401  (the warm-up records are its protos)

        warmup = raw_columns_from_files(schema, input_paths, 16)
    except ImportError:
        warmup = None
        print("tensorflow-serving-api is not installed (pip install tf-multiembed[serving]): exporting without "
              "assets.extra/tf_serving_warmup_requests.", flush=True)
    path = export_for_serving(model, data.feature_encoder(), export_dir, config.export_name or model.name,
                              version=config.export_version, warmup_columns=warmup)
    if not info.is_chief:
        import shutil

        shutil.rmtree(export_dir, ignore_errors=True)
        return None
    return path


def train_prepared(config: RunConfig, data, info: distribute.StrategyInfo) -> Tuple[dict, tf.keras.Model]:
    """Builds, compiles and trains (or resumes) the configured model on prepared data; returns (results, model).

    The model holds the best epoch's weights afterwards. `run` adds data preparation and the export; experiment
    runners (benchmarks/scaling.py) call this once per configuration on data prepared once.
    """
    if config.jit_compile:  # XLA cannot compile the exact-AUC buffer: it is measured by a callback instead
        info = dataclasses.replace(info, metrics_in_step=False)
    model = build_and_compile(config, data.vocabulary_sizes, data.field_names, info)
    if not config.model_dir:
        config.model_dir = os.path.join("runs", f"{config.dataset}-{model.name}")
    if config.verbose and info.is_chief:
        print(f"Data: {data.split_rows} rows, {data.num_fields} fields, vocabulary sizes {list(data.vocabulary_sizes)}"
              f"\nModel: {model.name} ({model.count_params():,} parameters), strategy {info.name} "
              f"({info.strategy.num_replicas_in_sync} replica(s)), run directory {config.model_dir}", flush=True)
    seed, batch_size = config.seed, config.batch_size
    # Known step counts give the progress bar its length and keep Keras from warning that the data "ran out".
    full_epoch = math.ceil(data.split_rows["train"] / batch_size)
    steps_per_epoch = min(config.steps_per_epoch or full_epoch, full_epoch)
    results = train(
        model,
        # TPUs compile for one batch shape: no partial last batch there.
        train_data=lambda epoch: data.train_dataset(batch_size, shuffle=config.shuffle,
                                                    seed=seed * 1_000_003 + epoch, drop_remainder=info.name == "tpu"),
        validation_data=data.validation_dataset(batch_size), test_data=data.test_dataset(batch_size),
        model_dir=config.model_dir, recipe=config.recipe(), strategy_info=info,
        steps_per_epoch=steps_per_epoch, checkpoint_every_steps=config.checkpoint_every_steps,
        config={**dataclasses.asdict(config), "vocabulary_sizes": list(data.vocabulary_sizes),
                "num_parameters": int(model.count_params())},
        verbose=config.verbose)
    return results, model


def run(config: RunConfig) -> Tuple[dict, Optional[pathlib.Path]]:
    """Trains (or resumes) the configured run, evaluates it, exports it; returns (results, export path).

    Example:
        >>> results, export_path = run(RunConfig(epochs=2, synthetic_rows=20_000))  # doctest: +SKIP
        >>> results["test"]["auc"]  # doctest: +SKIP
    """
    started = time.time()
    info = create_strategy(config)
    data, schema, input_paths = prepare_data(config)
    results, model = train_prepared(config, data, info)
    export_path = _export(config, model, data, schema, input_paths, info)
    if config.verbose and info.is_chief:
        test = results.get("test") or {}
        best_epochs = [entry for entry in results["epochs"] if entry["epoch"] == results["best_epoch"]]
        best = best_epochs[0] if best_epochs else {}
        print(f"Best epoch {results['best_epoch']}: validation AUC {best.get('val_auc', float('nan')):.6f}, "
              f"logloss {best.get('val_logloss', float('nan')):.6f}\n"
              f"Test (best checkpoint): AUC {test.get('auc', float('nan')):.6f}, "
              f"logloss {test.get('logloss', float('nan')):.6f}\n"
              f"Results: {os.path.join(config.model_dir, 'results.json')}"
              + (f"\nSavedModel: {export_path}" if export_path else "")
              + f"\nWall time: {time.time() - started:.1f} s", flush=True)
    return results, export_path
