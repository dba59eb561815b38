"""Train a CTR model of the zoo with the paper's recipe, evaluate it and export it for TF Serving.

With no flags: ME-DCNv2 (2 sets of width 10) on the embedded synthetic Criteo-shaped data, Adam 1e-3 with coupled
L2 1e-6, batch 2048, early stopping on the exact validation AUC (patience 3), test metrics from the best epoch,
the run directory runs/<data>-<model name>/ (run.json, checkpoints, best.keras, results.json) and a SavedModel with
a raw-feature `serving_default` signature under export/<data>-<model name>/<version>/.

Examples:
    python train.py
    python train.py --model=dnn --embedding=se --scale=4
    python train.py --preset=paper --dataset=movielens --data_path=../shared/data/ml-100k --scale=4
    python train.py --dataset=criteo --data_path=/data/criteo/train.txt --scale=10 --strategy=mirrored
    python train.py --dataset=custom --schema=clicks.yaml --data_path='clicks/*.parquet' --min_count=5
    TF_CONFIG=... python train.py --strategy=multi_worker --model_dir=/shared/run1
    TF_USE_LEGACY_KERAS=1 TF_CONFIG=... python train.py --strategy=parameter_server --steps_per_epoch=1000

A run killed at any point and started again with the same command resumes from its latest checkpoint in
--model_dir (every epoch, and every --checkpoint_every_steps steps). The same --model_dir with other settings or
other data is refused with the differences named; --restart starts it over.

Every flag is generated from `tf_multiembed.training.config.RunConfig` (the benchmarks' flags too), except
--traceback. An error ends the run with one line, `train.py: <what happened>`, and what to do, exit status 1;
--traceback (or TF_MULTIEMBED_TRACEBACK=1) adds the traceback.
"""

import os
import sys
from typing import List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # before TensorFlow is imported: keep C++ INFO lines out

from absl import app, flags, logging  # noqa: E402

from tf_multiembed.training import distribute  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import config_from_flags, define_flags  # noqa: E402

define_flags()
flags.adopt_module_key_flags(run_config)  # --help lists them as this script's flags
flags.DEFINE_bool("traceback", False, "Print the traceback of an error after its one-line message (also: the "
                  "environment variable TF_MULTIEMBED_TRACEBACK=1).")
FLAGS = flags.FLAGS


def main(argv: List[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every setting is a --flag (see --help).")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's Python INFO lines (checkpoint sharding, SavedModel assets)
    if FLAGS.strategy == "parameter_server" and distribute.parameter_server_role():
        distribute.run_server()  # a worker or ps task of the cluster: serve until killed
        return
    from tf_multiembed.training.errors import report_error

    try:
        config = config_from_flags()
    except ValueError as error:  # a bad combination of flags: one line naming the flag, as every other error
        sys.exit(report_error(error, "train.py", show_traceback=FLAGS.traceback))
    from tf_multiembed.training.run import run, show_package_logs

    show_package_logs()  # the data build's progress and ETA (absl's WARNING verbosity would hide them)
    try:
        run(config)
    except (Exception, KeyboardInterrupt) as error:  # every error as one line (the traceback with --traceback)
        sys.exit(report_error(error, "train.py", show_traceback=FLAGS.traceback))


if __name__ == "__main__":
    app.run(main)
