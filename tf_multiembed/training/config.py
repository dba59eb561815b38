"""The run configuration, declared once: `RunConfig`, its presets, and the command-line flags generated from it.

`train.py` and the benchmarks define their flags with `define_flags` (the same names, defaults, bounds and help)
and turn them back into a `RunConfig` with `config_from_flags`; Python code builds a `RunConfig` directly. Values are
validated once, in `RunConfig.__post_init__`, whichever way they arrive.

Example:
    >>> RunConfig(model="dnn", scale=4).model_name()
    'me_dnn_4x10'
    >>> RunConfig.from_preset("paper").embedding_updates, RunConfig.from_preset("paper").shuffle
    ('dense', False)
"""

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from tf_multiembed import artifacts
from tf_multiembed import settings as settings_lib
from tf_multiembed.calibration import CALIBRATIONS
from tf_multiembed.models.common import SET_COMBINERS
from tf_multiembed.settings import setting as _setting
from tf_multiembed.training.distribute import STRATEGY_NAMES
from tf_multiembed.training.early_stopping import MONITORS
from tf_multiembed.training.optimizers import EMBEDDING_UPDATES
from tf_multiembed.training.recipe import PaperRecipe

# "custom" is any input described by a schema file (--schema); "csv" is its older name and means the same.
# "prepared" is a folder already written by `prepare_dataset` or the Beam pipeline (tf_multiembed.data.beam).
DATASETS = ("synthetic", "criteo", "avazu", "movielens", "custom", "csv", "prepared")
CUSTOM_DATASET = "custom"
PREPARED_DATASET = "prepared"
SPLITS = ("random", "time")
EMBEDDINGS = ("me", "se")
MIXED_PRECISION_POLICIES = ("", "mixed_bfloat16", "mixed_float16")
_RECIPE = PaperRecipe()
# Seeds go to NumPy (`np.random.seed` takes 0 <= seed < 2**32), Python and TensorFlow: one range for all of them.
MAX_SEED = 2**32 - 1

if TYPE_CHECKING:
    from absl import flags

# Settings that are options of some models only (`models.registry.model_options`): '' / None leaves the model's
# default; a value for a model that does not take the option is refused.
MODEL_OPTIONS = ("set_interactions", "set_combiner", "space_similarity_coefficient", "singular_value_coefficient")

# The paper's protocol (paper.md §1.5 and the reference code): seeded 8:1:1 split, Adam 1e-3 with coupled L2 1e-6 on
# every row every step (dense updates), batch 2048, the split's own fixed order every epoch, early stopping with
# patience 3 (at most 100 epochs), float32.
PRESETS: Dict[str, Dict[str, Any]] = {
    "paper": dict(split="random", split_seed=0, batch_size=2048, learning_rate=1e-3, l2=1e-6,
                  embedding_updates="dense", epochs=100, patience=3, monitor="auc", shuffle=False,
                  mixed_precision="", jit_compile=False),
}


def _model_help() -> str:
    """`--model`'s help: the registered names, read from the registry when the flags are defined."""
    from tf_multiembed.models import available_models

    return f"Model name, one of the registered models: {', '.join(available_models())}."


def _models_taking(option: str) -> List[str]:
    from tf_multiembed.models import available_models
    from tf_multiembed.models.registry import model_options

    return [name for name in available_models() if option in model_options(name)]


def _option_help(option: str, text: str) -> Callable[[], str]:
    """A model option's help: `text` and the registered models that take it (read when the flags are defined)."""
    return lambda: f"{text} Models: {', '.join(_models_taking(option))}; refused for the others."


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a training run needs; the defaults train ME-DCNv2 on the embedded synthetic data.

    Each field is a `train.py` flag of the same name (`--help` prints the texts below). `RunConfig.from_preset("paper")`
    sets the paper's whole protocol. The config is frozen: derive variants with `dataclasses.replace`.

    Example:
        >>> config = RunConfig(dataset="movielens", data_path="ml-100k", model="dcnv2", scale=4)
        >>> config.multi_embedding, config.num_sets
        (True, None)
    """

    # Data
    dataset: str = _setting(str, "synthetic", "'synthetic' (generated Criteo-shaped data with a planted click model), "
                            "'criteo' (Kaggle train.txt layout), 'avazu' (Kaggle CSV), 'movielens' (the ml-100k "
                            "folder), 'custom' (any input described by --schema; 'csv' is accepted as a synonym) or "
                            "'prepared' (--data_path is a folder written by prepare_dataset or the Beam pipeline).",
                            choices=DATASETS)
    data_path: str = _setting(str, "", "Input files: a path, glob pattern or comma-separated list (plain or .gz); the "
                              "ml-100k folder for movielens. Not used for synthetic.", changes_result=False)
    schema: str = _setting(str, "", "JSON/YAML schema file describing the input for --dataset=custom (columns, kinds, "
                           "label; see docs/data.md).", changes_result=False)
    data_dir: str = _setting(str, "runs/data", "Cache of prepared data (vocabularies, encoded shards, the synthetic "
                             "file), reused while the input files and settings are unchanged.", changes_result=False)
    synthetic_rows: int = _setting(int, 200_000, "Rows of the synthetic data set.", lower_bound=100)
    # The synthetic data's planted click model (SyntheticCriteoConfig); the defaults are the embedded data set's.
    synthetic_interaction_order: int = _setting(int, 2, "Fields in each planted interaction of the synthetic data (2: "
                                                "pairwise; k > 2: order-k products).", lower_bound=2)
    synthetic_interactions: int = _setting(int, 30, "Planted interactions (field tuples) of the synthetic data.",
                                           lower_bound=0)
    synthetic_interaction_share: float = _setting(float, 0.5, "Share of the planted logit's variance carried by the "
                                                  "interactions of the synthetic data.", lower_bound=0.0,
                                                  upper_bound=1.0)
    min_count: Optional[int] = _setting(int, None, "Minimum count for every field: values seen fewer times get the OOV "
                                        "id 0 (Schema.with_min_count). Default: the schema's own counts.",
                                        lower_bound=1, optional=True)
    split: str = _setting(str, "random", "'random': the paper's seeded 8:1:1 permutation; 'time': in time-column (or "
                          "file) order.", choices=SPLITS)
    split_seed: int = _setting(int, 0, f"Seed of the random split, 0 to {MAX_SEED}.", lower_bound=0,
                               upper_bound=MAX_SEED)
    warm_start_from: str = _setting(str, "", "Start from a trained run directory (its latest checkpoint: weights and "
                                    "Adam state) or export (its weights) on this data: the vocabularies grow from "
                                    "the source's (its tokens keep their trained rows, new tokens get fresh ones); "
                                    "the model must be the same (family, sets, width, fields). See docs/training.md, "
                                    "'Continual training'.")
    warm_start_evict_after: Optional[int] = _setting(int, None, "With --warm_start_from: drop source tokens that did "
                                                     "not reach min_count in more than this many consecutive builds "
                                                     "(default: keep them all).", lower_bound=0, optional=True)
    warm_start_max_new_tokens: Optional[int] = _setting(int, None, "With --warm_start_from: add at most this many new "
                                                        "tokens per field (the most frequent; the rest are counted "
                                                        "and OOV). 0 freezes the vocabulary.", lower_bound=0,
                                                        optional=True)
    # Model
    model: str = _setting(str, "dcnv2", _model_help)
    embedding: str = _setting(str, "me", "'me': multi-embedding (scale sets of width K); 'se': single embedding of "
                              "width scale*K.", choices=EMBEDDINGS)
    scale: int = _setting(int, 2, "Scale factor s of the embedding: SE width s*K, ME s sets of width K (the same "
                          "embedding size).", lower_bound=1)
    num_sets: Optional[int] = _setting(int, None, "Explicit number of ME sets (instead of --scale).", lower_bound=1,
                                       optional=True)
    embedding_dim: Optional[int] = _setting(int, None, "Base width K (default: the paper's, 10; 50 for nfwfm).",
                                            lower_bound=1, optional=True)
    # Model options (MODEL_OPTIONS): '' or unset = the model's default
    set_interactions: str = _setting(str, "", _option_help(
        "set_interactions", "Heterogeneous ME: the interaction of each embedding set, comma-separated, name:count for "
        "several sets (cross:2,inner_product:2 = cross,cross,inner_product,inner_product), one per set; names: cross, "
        "inner_product, fwfm, cin, self_attention, dnn. '' = the first half of the sets cross, the rest "
        "inner_product."))
    set_combiner: str = _setting(str, "", _option_help(
        "set_combiner", "How the per-set outputs are combined before the shared head: 'mean' (the paper's) or 'gate' "
        "(learned per-example softmax weights over the sets, starting as the mean). '' = the model's default (gate "
        "for heterogeneous_gated, else mean)."), choices=("",) + SET_COMBINERS)
    space_similarity_coefficient: Optional[float] = _setting(float, None, _option_help(
        "space_similarity_coefficient", "Weight of the space-similarity penalty on the embeddings (ME; the reference's "
        "1e-3 to 1e-5). Default: the model's (1e-4 for dcnv2_space_similarity, else 0)."), lower_bound=0.0,
        optional=True)
    singular_value_coefficient: Optional[float] = _setting(float, None, _option_help(
        "singular_value_coefficient", "Weight of the singular-value penalty on the embeddings (the reference's SE "
        "regulariser; ME: every set). Default: the model's (1e-4 for dcnv2_singular_value, else 0)."),
        lower_bound=0.0, optional=True)
    # Recipe (PaperRecipe holds the defaults and checks the values)
    batch_size: int = _setting(int, _RECIPE.batch_size, "Global batch size.", lower_bound=1)
    learning_rate: float = _setting(float, _RECIPE.learning_rate, "Adam learning rate.", lower_bound=0.0)
    l2: float = _setting(float, _RECIPE.l2, "Coupled L2 coefficient (PyTorch Adam weight_decay) on every trainable "
                         "parameter.", lower_bound=0.0)
    embedding_updates: str = _setting(str, _RECIPE.embedding_updates, "'sparse': lazy Adam, only the embedding rows "
                                      "looked up in a batch are read and updated (fast); 'dense': every row gets the "
                                      "L2 term and an Adam step every step (the paper's reference code).",
                                      choices=EMBEDDING_UPDATES)
    epochs: int = _setting(int, _RECIPE.max_epochs, "Maximum number of epochs (a larger value continues a run that "
                           "stopped at the limit).", lower_bound=1, changes_result=False)
    patience: int = _setting(int, _RECIPE.patience, "Early stopping: epochs without an improvement of the "
                             "monitored validation score before stopping.", lower_bound=1)
    monitor: str = _setting(str, _RECIPE.monitor, "What early stopping and the kept checkpoint follow: 'auc' (highest "
                            "validation AUC, the paper's rule), 'logloss' (lowest validation log loss: the checkpoint "
                            "with the best probabilities) or 'auc_logloss' (highest AUC - "
                            "--monitor_logloss_weight x log loss).", choices=MONITORS)
    monitor_logloss_weight: float = _setting(float, _RECIPE.monitor_logloss_weight, "w of --monitor=auc_logloss "
                                             "(AUC - w x log loss).", lower_bound=0.0)
    seed: int = _setting(int, 0, f"Seed of the initialisation, dropout and the per-epoch shuffles, 0 to {MAX_SEED}.",
                         lower_bound=0, upper_bound=MAX_SEED)
    shuffle: bool = _setting(bool, True, "Reshuffle the training split every epoch (seeded); --noshuffle walks the "
                             "split's own random order every epoch, as the paper's reference code.")
    preset: str = _setting(str, "", "Set a whole protocol at once; explicit flags still win. 'paper': the paper's "
                           "(dense embedding updates, the split's fixed order every epoch, batch 2048, Adam 1e-3, L2 "
                           "1e-6, patience 3, float32).", choices=("",) + tuple(PRESETS),
                           changes_result=False)
    calibration: str = _setting(str, "none", "Post-hoc calibration fitted on the validation split after training: "
                                "'platt' (sigmoid(a logit(p) + b)), 'isotonic' (monotone piecewise-linear) or 'none'. "
                                "The export's serving_default then returns calibrated click_probability and the raw "
                                "uncalibrated_click_probability; results.json has the before/after metrics.",
                                choices=CALIBRATIONS, changes_result=False)
    # Speed
    jit_compile: bool = _setting(bool, False, "Compile the training step with XLA (on CPU it measured slower; see "
                                 "docs/benchmarks.md).", changes_result=False)
    mixed_precision: str = _setting(str, "", "Keras mixed-precision policy: 16-bit matmuls with float32 weights "
                                    "(GPUs: mixed_float16 or mixed_bfloat16; CPUs with AMX: mixed_bfloat16). '' = "
                                    "float32.", choices=MIXED_PRECISION_POLICIES)
    threads: int = _setting(int, 0, "TensorFlow intra- and inter-op threads of this process (0 = TensorFlow's "
                            "default, all cores).", lower_bound=0, changes_result=False)
    # Distribution
    steps_per_epoch: Optional[int] = _setting(int, None, "Steps per epoch (default: the whole training split; "
                                              "required for parameter_server).", lower_bound=1, optional=True)
    strategy: str = _setting(str, "default", "tf.distribute strategy: default (one device), one_device, mirrored "
                             "(all local GPUs), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG), tpu, "
                             "parameter_server (legacy tf-keras only: TF_USE_LEGACY_KERAS=1; worker and ps processes "
                             "of TF_CONFIG serve until killed).", choices=STRATEGY_NAMES, changes_result=False)
    num_cpu_devices: int = _setting(int, 0, "With --strategy=mirrored on a machine without GPUs: split the CPU into "
                                    "this many logical devices (a correctness check, not a speed-up).",
                                    lower_bound=0, changes_result=False)
    tpu: str = _setting(str, "", "TPU name or address for --strategy=tpu ('' = local TPU VM).", changes_result=False)
    # Run directory
    model_dir: str = _setting(str, "", "Run directory: run.json, checkpoints/, best/, best.keras, logs/, results.json "
                              "(docs/training.md). Default runs/<data>-<model name>. Rerunning the same command "
                              "resumes from it; other settings or data are refused.", changes_result=False)
    restart: bool = _setting(bool, False, "Delete the run directory's checkpoints, results and logs and start over "
                             "(instead of refusing a rerun with other settings or data).", changes_result=False)
    checkpoint_every_steps: Optional[int] = _setting(int, None, "Also checkpoint every N training steps (default: "
                                                     "every epoch only).", lower_bound=1, optional=True,
                                                     changes_result=False)
    verbose: int = _setting(int, 1, "0 silent, 1 progress bar (becomes 2 when stdout is not a "
                            "terminal), 2 one plain line per epoch.", lower_bound=0, upper_bound=2,
                            changes_result=False)
    # Export
    export_dir: str = _setting(str, "export", "Base directory of the TF Serving export: "
                               "<export_dir>/<export_name>/<version>/. '' skips it.", changes_result=False)
    export_name: str = _setting(str, "", "TF Serving model name (default <data>-<model name>). One name keeps one "
                                "signature: a version with other inputs is refused.", changes_result=False)
    export_version: Optional[int] = _setting(int, None, "SavedModel version (default: the next free number).",
                                             lower_bound=1, optional=True, changes_result=False)

    def __post_init__(self) -> None:
        settings_lib.check_settings(self, spell="--{}")
        if self.dataset == "csv":
            object.__setattr__(self, "dataset", CUSTOM_DATASET)
        if self.dataset != "synthetic" and not self.data_path:
            what = {"movielens": "the ml-100k folder", PREPARED_DATASET: "the prepared-data folder"}.get(
                self.dataset, "the input files")
            raise ValueError(f"--data_path is required for dataset {self.dataset!r} ({what}).")
        if self.dataset == CUSTOM_DATASET and not self.schema:
            raise ValueError("--schema is required for dataset 'custom' (or its synonym 'csv'): a JSON/YAML file "
                             "describing the input (see docs/data.md).")
        if self.export_name and not artifacts.is_valid_export_name(self.export_name):
            raise ValueError(f"--export_name must be {artifacts.EXPORT_NAME_RULE}, received {self.export_name!r}.")
        if self.strategy == "parameter_server" and not self.steps_per_epoch:
            raise ValueError("--steps_per_epoch is required for --strategy=parameter_server (its datasets repeat).")
        if not self.warm_start_from and (self.warm_start_evict_after is not None
                                         or self.warm_start_max_new_tokens is not None):
            raise ValueError("--warm_start_evict_after and --warm_start_max_new_tokens need --warm_start_from.")
        self.recipe()  # the recipe's own checks (positive sizes, known update mode)
        self.model_name()  # a registered model and a consistent embedding shape
        self.model_kwargs()  # model options the model takes, with valid values

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "RunConfig":
        """The preset's settings with `overrides` on top (e.g. `RunConfig.from_preset("paper", model="dnn")`)."""
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[preset], "preset": preset, **overrides})

    @property
    def multi_embedding(self) -> bool:
        return self.embedding == "me"

    def recipe(self) -> PaperRecipe:
        """The `PaperRecipe` (optimizer and early stopping) of this run."""
        return PaperRecipe(learning_rate=self.learning_rate, l2=self.l2, embedding_updates=self.embedding_updates,
                           batch_size=self.batch_size, max_epochs=self.epochs, patience=self.patience,
                           monitor=self.monitor, monitor_logloss_weight=self.monitor_logloss_weight)

    def model_name(self) -> str:
        """The Keras name `build_model` gives this model, e.g. "me_dcnv2_2x10" (without building it)."""
        from tf_multiembed.models import resolve_embedding_shape
        from tf_multiembed.models.common import model_name

        num_sets, embedding_dim = resolve_embedding_shape(self.model, self.scale, self.multi_embedding,
                                                          self.embedding_dim, self.num_sets)
        return model_name(self.model, num_sets, embedding_dim)

    def model_kwargs(self) -> Dict[str, Any]:
        """The model options set (`MODEL_OPTIONS` not left at '' / None) as `build_model` keyword arguments.

        Example:
            >>> RunConfig(model="heterogeneous", scale=3, set_interactions="cross:2,dnn").model_kwargs()
            {'set_interactions': ['cross', 'cross', 'dnn']}
        """
        return given_model_options(dataclasses.asdict(self))

    def model_options(self) -> Dict[str, Any]:
        """Every model option this model takes with the value it is built with (set or the model's default), as
        run.json and the export metadata record them.

        Example:
            >>> RunConfig(model="heterogeneous_gated", scale=2).model_options()
            {'set_interactions': ['cross', 'inner_product'], 'set_combiner': 'gate'}
        """
        return resolved_model_options(dataclasses.asdict(self))

    def with_defaults(self, data_name: str) -> "RunConfig":
        """This config with the run directory and export name filled in for data called `data_name`:
        `runs/<data>-<model name>` and `<data>-<model name>` (so a model trained on other data is another served
        model, not a new version of this one)."""
        label = f"{data_name}-{self.model_name()}"
        return dataclasses.replace(self, model_dir=self.model_dir or f"runs/{label}",
                                   export_name=self.export_name or label)

    def result_settings(self) -> Dict[str, Any]:
        """The settings a resumed run must share with the run it resumes (see `changes_result`)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                if field.metadata["changes_result"]}


def _num_sets(settings: Mapping[str, Any]) -> int:
    from tf_multiembed.models import resolve_embedding_shape

    num_sets, _ = resolve_embedding_shape(settings["model"], settings["scale"], settings["embedding"] == "me",
                                          settings.get("embedding_dim"), settings.get("num_sets"))
    return num_sets


def given_model_options(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The `MODEL_OPTIONS` set in `settings` (a `RunConfig` as a dict) as `build_model` keyword arguments, checked
    against the model (`set_interactions` expanded to one name per set); a one-line error names the flag."""
    from tf_multiembed.models.heterogeneous import parse_set_interactions, set_groups
    from tf_multiembed.models.registry import model_options

    given: Dict[str, Any] = {name: settings[name] for name in MODEL_OPTIONS if settings.get(name) not in ("", None)}
    taken = model_options(settings["model"])
    for name in given:
        if name not in taken:
            raise ValueError(f"--{name} is an option of the models {_models_taking(name)}; --model="
                             f"{settings['model']} does not take it (leave the flag out).")
    if "set_interactions" in given:
        names = parse_set_interactions(str(given["set_interactions"]))
        num_sets = _num_sets(settings)
        if len(names) != num_sets:
            source = (f"--num_sets={settings['num_sets']}" if settings.get("num_sets") else
                      f"--scale={settings['scale']}" if settings["embedding"] == "me" else "--embedding=se")
            raise ValueError(f"--set_interactions names {len(names)} sets ({given['set_interactions']!r}), the model "
                             f"has {num_sets} ({source}); give one interaction per set.")
        set_groups(names, num_sets, spell="--set_interactions", owner="")
        given["set_interactions"] = names
    return given


def resolved_model_options(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """Every `MODEL_OPTIONS` entry the model of `settings` takes, with its value: the given one or the model's
    default (`set_interactions`: the heterogeneous default for its number of sets, one name per set)."""
    from tf_multiembed.models.heterogeneous import default_set_interactions
    from tf_multiembed.models.registry import model_options

    taken = model_options(settings["model"])
    resolved = {name: taken[name] for name in MODEL_OPTIONS if name in taken}
    resolved.update(given_model_options(settings))
    if "set_interactions" in resolved and resolved["set_interactions"] is None:
        resolved["set_interactions"] = default_set_interactions(_num_sets(settings))
    return {name: list(value) if name == "set_interactions" else value for name, value in resolved.items()}


def setting_defaults() -> Dict[str, Any]:
    """Every `RunConfig` setting's default: what a run recorded before a setting existed used (for rerun checks)."""
    return {field.name: field.default for field in dataclasses.fields(RunConfig)}


def comparable_settings(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """`settings` (a `RunConfig` as a dict, e.g. from run.json) with the embedding shape resolved, for rerun checks.

    `--embedding_dim`, `--num_sets` and `--scale` left at their defaults describe the same model as the resolved
    values given explicitly: the base width K (the model's default when None), the number of sets (ME: the scale
    when None) and, for ME, the scale as the number of sets. Settings that do not resolve are returned unchanged.

    Example:
        >>> comparable_settings({"model": "dnn", "embedding": "me", "scale": 2, "num_sets": None,
        ...                      "embedding_dim": None})
        {'model': 'dnn', 'embedding': 'me', 'scale': 2, 'num_sets': 2, 'embedding_dim': 10}
    """
    from tf_multiembed.models import resolve_embedding_shape

    values = dict(settings)
    try:
        multi_embedding = values["embedding"] == "me"
        num_sets, _ = resolve_embedding_shape(values["model"], values["scale"], multi_embedding,
                                              values.get("embedding_dim"), values.get("num_sets"))
        _, base_width = resolve_embedding_shape(values["model"], 1, True, values.get("embedding_dim"))
    except (KeyError, TypeError, ValueError):  # an unknown model or a record of another layout: compare as recorded
        return values
    values.update(num_sets=num_sets, embedding_dim=base_width)
    if multi_embedding:
        values["scale"] = num_sets
    try:  # the model options as built: '' / None and an explicit model default are the same model
        values.update(resolved_model_options(values))
    except (KeyError, TypeError, ValueError):
        pass
    return values


def setting_names() -> Sequence[str]:
    """Every setting (= flag) name, in declaration order."""
    return [field.name for field in dataclasses.fields(RunConfig)]


def define_flags(names: Optional[Iterable[str]] = None, flag_values: Optional["flags.FlagValues"] = None) -> None:
    """Defines absl flags for `RunConfig` fields (all by default): the same name, default, bounds, choices and help.

    Example:
        >>> define_flags(["batch_size", "threads"])  # doctest: +SKIP
    """
    settings_lib.define_flags(RunConfig, names, flag_values)


def config_from_flags(names: Optional[Iterable[str]] = None, flag_values: Optional["flags.FlagValues"] = None,
                      **fixed: Any) -> RunConfig:
    """The `RunConfig` of parsed flags: defined settings from the flags (a `--preset` fills the settings not given
    explicitly), `fixed` settings from the caller, the rest their defaults.

    Example:
        >>> config = config_from_flags(model_dir="runs/x")  # doctest: +SKIP
    """
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    names = [name for name in (setting_names() if names is None else names) if name not in fixed]
    values: Dict[str, Any] = {name: flag_values[name].value for name in names}
    preset = fixed.get("preset", values.get("preset", ""))
    if preset:
        for name, value in PRESETS[preset].items():
            explicit = name in names and flag_values[name].present
            if not explicit and name not in fixed:
                values[name] = value
    return RunConfig(**{**values, **fixed})
