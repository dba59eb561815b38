"""Which checkpoint and which calibrator: `--monitor` and `--calibration` measured on real runs.

For every model x monitor x seed it trains one run with train.py's configuration (`--preset=paper` for the paper's
protocol), keeps the checkpoint its monitor names, then fits both calibrators (Platt and isotonic) on the validation
split and records the test AUC, log loss, ECE and mean prediction / click rate before and after each. Each run's
record goes to `<out>/runs/<model>-<monitor>-seed<seed>.json` (a finished run is skipped when the command is
repeated); `<out>/table.md` has mean ± population std over seeds.

    python benchmarks/quality/calibration_study.py --preset=paper --dataset=movielens \\
        --data_path=../shared/data/ml-100k --models=ipnn,nfwfm --scale=10 --monitors=auc,logloss --seeds=0,1,2 \\
        --out=docs/results/calibration_ml100k
"""

import json
import os
import pathlib
import shutil
import sys
import tempfile

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import config_from_flags, define_flags  # noqa: E402

RUN_SETTINGS = ("dataset", "data_path", "schema", "data_dir", "synthetic_rows", "min_count", "split", "split_seed",
                "embedding", "scale", "batch_size", "learning_rate", "l2", "embedding_updates", "epochs", "patience",
                "shuffle", "preset", "threads")
define_flags(RUN_SETTINGS)
flags.adopt_module_key_flags(run_config)
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["ipnn", "nfwfm"], "Registered model names.")
flags.DEFINE_list("monitors", ["auc", "logloss"], "--monitor rules to compare.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Initialisation seeds.")
flags.DEFINE_string("out", "", "Output folder (runs/, table.md).")

CALIBRATORS = ("platt", "isotonic")
METRICS = ("auc", "logloss", "ece", "calibration_ratio")


def run_one(model: str, monitor: str, seed: int, data) -> dict:
    from tf_multiembed.training.run import calibrate, create_strategy, train_prepared

    with tempfile.TemporaryDirectory() as run_dir:
        config = config_from_flags(RUN_SETTINGS, model=model, monitor=monitor, seed=seed, model_dir=run_dir,
                                   export_dir="", verbose=0)
        info = create_strategy(config)
        results, trained = train_prepared(config, data, info)
        record = {"model": model, "monitor": monitor, "seed": seed, "embedding": config.embedding,
                  "scale": config.scale, "preset": config.preset, "epochs": len(results["epochs"]),
                  "kept_epoch": results["best_epoch"], "wall_seconds": round(results["wall_seconds"], 1),
                  "test": results["test"]}
        for kind in CALIBRATORS:
            calibrated = calibrate(kind, trained, data, info, results, config.batch_size)["calibration"]
            record[kind] = {"parameters": calibrated["parameters"] if kind == "platt" else None,
                            "test": calibrated["test"]["after"]}
        shutil.rmtree(run_dir, ignore_errors=True)
    return record


def _cell(values) -> str:
    import numpy as np

    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def write_table(out: pathlib.Path, records) -> None:
    lines = ["| model | monitor | kept epoch | calibration | test AUC | test log loss | test ECE | mean pred / rate |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    groups = {}
    for record in records:
        groups.setdefault((record["model"], record["monitor"]), []).append(record)
    for (model, monitor), group in sorted(groups.items()):
        kept = "/".join(str(record["kept_epoch"]) for record in group)
        for kind in ("none",) + CALIBRATORS:
            tests = [record["test"] if kind == "none" else record[kind]["test"] for record in group]
            cells = " | ".join(_cell([test[metric] for test in tests]) for metric in METRICS)
            lines.append(f"| {model} | {monitor} | {kept} | {kind} | {cells} |")
    seeds = sorted({record["seed"] for record in records})
    first = records[0]
    lines += ["", f"{first['embedding'].upper()} at {first['scale']}x, preset '{first['preset']}', seeds {seeds}; "
              "mean ± population std over seeds; calibrators fitted on the validation split, measured on test; "
              "kept epoch per seed."]
    (out / "table.md").write_text("\n".join(lines) + "\n")


def main(argv):
    del argv
    from tf_multiembed.training.run import prepare_data

    from benchmarks.common import RESULTS_DIR

    out = pathlib.Path(FLAGS.out) if FLAGS.out else RESULTS_DIR / "calibration"
    (out / "runs").mkdir(parents=True, exist_ok=True)
    data, _, _ = prepare_data(config_from_flags(RUN_SETTINGS))
    records = []
    for model in FLAGS.models:
        for monitor in FLAGS.monitors:
            for seed in map(int, FLAGS.seeds):
                path = out / "runs" / f"{model}-{monitor}-seed{seed}.json"
                if not path.is_file():
                    record = run_one(model, monitor, seed, data)
                    path.write_text(json.dumps(record, indent=1))
                    print(f"{path.name}: kept epoch {record['kept_epoch']}, test logloss "
                          f"{record['test']['logloss']:.4f} -> platt {record['platt']['test']['logloss']:.4f}, "
                          f"isotonic {record['isotonic']['test']['logloss']:.4f}", flush=True)
                records.append(json.loads(path.read_text()))
    write_table(out, records)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    app.run(main)
