"""Train a CTR model of the zoo with the paper's recipe, evaluate it and export it for TF Serving.

With no flags: ME-DCNv2 (2 sets of width 10) on the embedded synthetic Criteo-shaped data, Adam 1e-3 with coupled
L2 1e-6, batch 2048, early stopping on the exact validation AUC (patience 3), test metrics from the best epoch,
and a SavedModel with a raw-feature `serving_default` signature under export/<model name>/<version>/.

Examples:
    python train.py
    python train.py --model=dnn --embedding=se --scale=4
    python train.py --dataset=movielens --data_path=../shared/data/ml-100k --model=dcnv2 --scale=4
    python train.py --dataset=criteo --data_path=/data/criteo/train.txt --scale=10 --strategy=mirrored
    TF_CONFIG=... python train.py --strategy=multi_worker --model_dir=/shared/run1
    TF_USE_LEGACY_KERAS=1 TF_CONFIG=... python train.py --strategy=parameter_server --steps_per_epoch=1000

A run killed at any point and started again with the same command resumes from its latest checkpoint in
--model_dir (every epoch, and every --checkpoint_every_steps steps).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # before TensorFlow is imported: keep C++ INFO lines out

from absl import app, flags, logging  # noqa: E402

from tf_multiembed.training import distribute  # noqa: E402
from tf_multiembed.training.run import DATASETS, RunConfig  # noqa: E402

_DEFAULTS = RunConfig()
FLAGS = flags.FLAGS

flags.DEFINE_enum("dataset", _DEFAULTS.dataset, DATASETS,
                  "Data set: 'synthetic' (generated Criteo-shaped data with a planted click model, the default), "
                  "'criteo' (Kaggle train.txt layout), 'avazu' (Kaggle CSV), 'movielens' (MovieLens-100K folder) "
                  "or 'csv' (any CSV/TSV described by --schema).")
flags.DEFINE_string("data_path", _DEFAULTS.data_path,
                    "Input files: a path, glob pattern or comma-separated list (plain or .gz); the ml-100k folder "
                    "for movielens. Not used for synthetic.")
flags.DEFINE_string("schema", _DEFAULTS.schema, "JSON/YAML schema file for --dataset=csv (columns, kinds, label).")
flags.DEFINE_string("data_dir", _DEFAULTS.data_dir,
                    "Cache of prepared data: vocabularies, encoded shards and the synthetic file; reused when the "
                    "inputs and settings match.")
flags.DEFINE_integer("synthetic_rows", _DEFAULTS.synthetic_rows, "Rows of the synthetic data set.", lower_bound=100)
flags.DEFINE_enum("split", _DEFAULTS.split, ["random", "time"],
                  "'random': the paper's seeded 8:1:1 permutation; 'time': in time-column (or file) order.")
flags.DEFINE_integer("split_seed", _DEFAULTS.split_seed, "Seed of the random split.")
flags.DEFINE_string("model", _DEFAULTS.model,
                    "Model name: dnn, ipnn, nfwfm, xdeepfm, dcnv2, finalmlp, autoint (or any registered name).")
flags.DEFINE_enum("embedding", "me" if _DEFAULTS.multi_embedding else "se", ["me", "se"],
                  "'me': multi-embedding (scale sets of width K); 'se': single embedding of width scale*K.")
flags.DEFINE_integer("scale", _DEFAULTS.scale,
                     "Scale factor s of the embedding: SE width s*K, ME s sets of width K (same embedding size).",
                     lower_bound=1)
flags.DEFINE_integer("num_sets", None, "Explicit number of ME sets (instead of --scale).", lower_bound=1)
flags.DEFINE_integer("embedding_dim", None, "Base width K (default: the paper's, 10; 50 for nfwfm).", lower_bound=1)
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_float("l2", _DEFAULTS.l2,
                   "Coupled L2 coefficient (PyTorch Adam weight_decay) on every trainable parameter.", lower_bound=0.0)
flags.DEFINE_enum("embedding_updates", _DEFAULTS.embedding_updates, ["sparse", "dense"],
                  "'sparse': lazy Adam, only the embedding rows looked up in a batch are read and updated (fast); "
                  "'dense': every row gets the L2 term and an Adam step every step (the paper's reference code).")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Maximum number of epochs.", lower_bound=1)
flags.DEFINE_integer("patience", _DEFAULTS.patience,
                     "Early stopping: epochs without a validation-AUC improvement before stopping.", lower_bound=1)
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the initialisation, dropout and the per-epoch shuffles.")
flags.DEFINE_bool("shuffle", _DEFAULTS.shuffle,
                  "Reshuffle the training split every epoch (seeded); --noshuffle walks the split's own random order "
                  "every epoch, as the paper's reference code.")
flags.DEFINE_bool("jit_compile", _DEFAULTS.jit_compile,
                  "Compile the training step with XLA (on CPU it measured slower; see docs/benchmarks.md).")
flags.DEFINE_enum("mixed_precision", _DEFAULTS.mixed_precision, ["", "mixed_bfloat16", "mixed_float16"],
                  "Keras mixed-precision policy: 16-bit matmuls with float32 weights (GPUs: mixed_float16 or "
                  "mixed_bfloat16; CPUs with AMX: mixed_bfloat16). '' = float32.")
flags.DEFINE_integer("steps_per_epoch", None,
                     "Steps per epoch (default: the whole training split; required for parameter_server).",
                     lower_bound=1)
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, list(distribute.STRATEGY_NAMES),
                  "tf.distribute strategy: default (one device), one_device, mirrored (all local GPUs), multi_worker "
                  "(MultiWorkerMirroredStrategy from TF_CONFIG), tpu, parameter_server (legacy tf-keras only: "
                  "TF_USE_LEGACY_KERAS=1; worker and ps processes of TF_CONFIG serve until killed).")
flags.DEFINE_integer("num_cpu_devices", _DEFAULTS.num_cpu_devices,
                     "With --strategy=mirrored on a machine without GPUs: split the CPU into this many logical "
                     "devices (a correctness check, not a speed-up).", lower_bound=0)
flags.DEFINE_string("tpu", _DEFAULTS.tpu, "TPU name or address for --strategy=tpu ('' = local TPU VM).")
flags.DEFINE_string("model_dir", _DEFAULTS.model_dir,
                    "Run directory: checkpoints/, best/, logs/ (TensorBoard) and results.json. Default "
                    "runs/<dataset>-<model name>. Rerunning the same command resumes from it.")
flags.DEFINE_integer("checkpoint_every_steps", None,
                     "Also checkpoint every N training steps (default: every epoch only).", lower_bound=1)
flags.DEFINE_string("export_dir", _DEFAULTS.export_dir,
                    "Base directory of the TF Serving export: <export_dir>/<export_name>/<version>/. '' skips it.")
flags.DEFINE_string("export_name", _DEFAULTS.export_name, "TF Serving model name (default: the model's name).")
flags.DEFINE_integer("export_version", None, "SavedModel version (default: the next free number).", lower_bound=1)
flags.DEFINE_integer("verbose", _DEFAULTS.verbose, "0 silent, 1 progress bar, 2 one line per epoch.",
                     lower_bound=0, upper_bound=2)


def config_from_flags() -> RunConfig:
    """The `RunConfig` of the parsed flags."""
    return RunConfig(
        dataset=FLAGS.dataset, data_path=FLAGS.data_path, schema=FLAGS.schema, data_dir=FLAGS.data_dir,
        synthetic_rows=FLAGS.synthetic_rows, split=FLAGS.split, split_seed=FLAGS.split_seed, model=FLAGS.model,
        multi_embedding=FLAGS.embedding == "me", scale=FLAGS.scale, num_sets=FLAGS.num_sets,
        embedding_dim=FLAGS.embedding_dim, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        l2=FLAGS.l2, embedding_updates=FLAGS.embedding_updates, epochs=FLAGS.epochs, patience=FLAGS.patience,
        seed=FLAGS.seed, shuffle=FLAGS.shuffle, jit_compile=FLAGS.jit_compile, mixed_precision=FLAGS.mixed_precision,
        steps_per_epoch=FLAGS.steps_per_epoch, strategy=FLAGS.strategy, num_cpu_devices=FLAGS.num_cpu_devices,
        tpu=FLAGS.tpu, model_dir=FLAGS.model_dir, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
        export_dir=FLAGS.export_dir, export_name=FLAGS.export_name, export_version=FLAGS.export_version,
        verbose=FLAGS.verbose)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every setting is a --flag (see --help).")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's Python INFO lines (checkpoint sharding, SavedModel assets)
    if FLAGS.strategy == "parameter_server" and distribute.parameter_server_role():
        distribute.run_server()  # a worker or ps task of the cluster: serve until killed
        return
    from tf_multiembed.training.run import run

    run(config_from_flags())


if __name__ == "__main__":
    app.run(main)
