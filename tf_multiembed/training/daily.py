"""The day-by-day road: train on day d, test on day d+1, then train day d+1 from day d (warm start).

    python -m tf_multiembed.training.daily --days=day1.csv,day2.csv,day3.csv --dataset=custom --schema=clicks.json \\
        --model=dnn --scale=2 --epochs=2 --daily_dir=runs/daily --modes=warm,cold,frozen

For each mode and each day d (in the order given: files split by a time column, one per day; or a MovieLens folder
per day), the model trained through day d-1 is first evaluated on all of day d's rows, encoded with *its* vocabulary
(day d's new tokens are OOV for it: that is what it would see when serving day d), then trained on day d:

- `warm`: from day d-1's run directory (`--warm_start_from`: weights, Adam state, the vocabulary grown by day d's
  new tokens);
- `cold`: from scratch on day d alone (its own vocabulary);
- `frozen`: like warm, with the vocabulary frozen at day 1's (`--warm_start_max_new_tokens=0`: new ids stay OOV).

Each day's run directory is `<daily_dir>/<mode>/day<d>`. The table (printed, and `<daily_dir>/daily.json`) has per
mode and day the next-day AUC, log loss, expected calibration error and mean prediction / click rate
(`tf_multiembed.calibration` via `callbacks.exact_metrics`), the vocabulary growth and the training time.
"""

import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_multiembed.training.config import RunConfig

MODES = ("warm", "cold", "frozen")
# Settings the road sets per day (not flags of the command).
_PER_DAY = ("data_path", "model_dir", "warm_start_from", "warm_start_max_new_tokens", "export_dir", "export_name",
            "export_version", "restart")


def _flag_names() -> List[str]:
    from tf_multiembed.training.config import setting_names

    return [name for name in setting_names() if name not in _PER_DAY]


def _day_data(config: RunConfig, frozen_vocab_dir: Optional[pathlib.Path] = None) -> Any:
    """The prepared data of `config`'s day; with `frozen_vocab_dir`, encoded with that vocabulary (no new tokens)."""
    from tf_multiembed.data import prepare_dataset
    from tf_multiembed.data.growth import BaseVocabulary
    from tf_multiembed.training import run as run_lib

    if frozen_vocab_dir is None:
        return run_lib.prepare_data(config)[0]
    schema, input_paths = _schema_and_inputs(config)
    return prepare_dataset(schema, input_paths, pathlib.Path(config.data_dir), split=config.split,
                           seed=config.split_seed, base_vocabulary=BaseVocabulary(frozen_vocab_dir, max_new_tokens=0))


def _schema_and_inputs(config: RunConfig) -> Tuple[Any, Any]:
    from tf_multiembed.data.layout import match_built_in
    from tf_multiembed.training.config import CUSTOM_DATASET

    paths = [part for part in config.data_path.split(",") if part]
    input_paths = paths[0] if len(paths) == 1 else paths
    schema, _ = match_built_in(config.schema if config.dataset == CUSTOM_DATASET else config.dataset, input_paths)
    if config.min_count is not None:
        schema = schema.with_min_count(config.min_count)
    return schema, input_paths


def next_day_metrics(model: Any, data: Any, batch_size: int = 4096) -> Dict[str, float]:
    """AUC, log loss, ECE and calibration ratio of `model` on every row of `data` (all three splits)."""
    from tf_multiembed.training.callbacks import exact_metrics

    parts = [data.numpy_split(split) for split in ("train", "validation", "test")]
    ids = np.concatenate([part[0] for part in parts])
    labels = np.concatenate([part[1] for part in parts])
    predictions = np.asarray(model.predict(ids, batch_size=batch_size, verbose=0)).reshape(-1)
    return {"rows": int(len(labels)), **exact_metrics(labels, predictions)}


def daily_road(config: RunConfig, day_paths: Sequence[str], daily_dir: Any, modes: Sequence[str] = MODES,
               log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Runs the day-by-day protocol (module docstring) for each mode; returns the table's rows.

    Args:
        config: the run settings of every day (its data_path, model_dir, warm start and export are set per day).
        day_paths: one input (a file, glob, comma-free) per day, in time order.
        daily_dir: where the per-day run directories go.
        modes: some of "warm", "cold", "frozen".
        log: where progress lines go.
    """
    from tf_multiembed.training import run as run_lib

    unknown = sorted(set(modes) - set(MODES))
    if unknown or len(day_paths) < 2:
        raise ValueError(f"daily_road: modes must be among {list(MODES)} (got {unknown}) and at least two days "
                         f"are needed (got {len(day_paths)}).")
    daily_dir = pathlib.Path(daily_dir)
    info = run_lib.create_strategy(config)
    rows: List[Dict[str, Any]] = []
    for mode in modes:
        previous: Optional[Dict[str, Any]] = None
        for day, path in enumerate(day_paths, start=1):
            day_config = dataclasses.replace(
                config, data_path=path, model_dir=str(daily_dir / mode / f"day{day}"), export_dir="", restart=True,
                warm_start_from=previous["model_dir"] if previous and mode != "cold" else "",
                warm_start_max_new_tokens=0 if previous and mode == "frozen" else None)
            row: Dict[str, Any] = {"mode": mode, "day": day}
            if previous is not None:  # test on day d with the model of day d-1, before training on day d
                evaluation = _day_data(day_config, frozen_vocab_dir=previous["vocab_dir"])
                row["next_day"] = next_day_metrics(previous["model"], evaluation)
            started = time.time()
            data = _day_data(day_config)
            results, model = run_lib.train_prepared(day_config, data, info)
            row.update(train_rows=int(data.split_rows["train"]), seconds=round(time.time() - started, 1),
                       vocabulary=int(sum(data.vocabulary_sizes)),
                       added=(data.vocabulary_growth or {}).get("totals", {}).get("added"),
                       new_dropped=(data.vocabulary_growth or {}).get("totals", {}).get("new_dropped_by_cap"),
                       kept_epoch=results["best_epoch"],
                       val_auc=results["best_val_auc"])
            rows.append(row)
            log(format_row(row))
            previous = {"model": model, "model_dir": day_config.model_dir, "vocab_dir": data.vocab_dir}
    return rows


def format_row(row: Dict[str, Any]) -> str:
    """One line of the table: mode, day, next-day metrics (before training on it), training rows, vocabulary."""
    nan = float("nan")
    test = row.get("next_day") or {}
    return (f"| {row['mode']:<6} | {row['day']:>3} | {test.get('auc', nan):.4f} | {test.get('logloss', nan):.4f} | "
            f"{test.get('ece', nan):.4f} | {test.get('calibration_ratio', nan):.3f} | {row['train_rows']:>7,} | "
            f"{row['vocabulary']:>7,} | {'' if row['added'] is None else row['added']:>6} | "
            f"{row['val_auc'] if row['val_auc'] is not None else nan:.4f} | {row['seconds']:>6.1f} |")


TABLE_HEADER = ("| mode   | day | AUC on this day (model of day-1) | log loss | ECE | mean pred / rate | train rows | "
                "table rows | added tokens | val AUC after training | seconds |\n"
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def mean_next_day(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """Per mode, the mean next-day AUC, log loss and ECE over the days that have one."""
    summary: Dict[str, Dict[str, float]] = {}
    for mode in dict.fromkeys(row["mode"] for row in rows):
        tested = [row["next_day"] for row in rows if row["mode"] == mode and row.get("next_day")]
        if tested:
            summary[mode] = {key: float(np.mean([entry[key] for entry in tested]))
                             for key in ("auc", "logloss", "ece", "calibration_ratio")}
    return summary


def main(argv: Sequence[str]) -> None:
    from absl import flags, logging

    from tf_multiembed.training import run as run_lib
    from tf_multiembed.training.config import config_from_flags

    logging.set_verbosity(logging.WARNING)  # TensorFlow's Python INFO lines (checkpoint sharding)
    flag_values = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"Unexpected arguments {list(argv[1:])}; every setting is a --flag.")
    days = [part for part in flag_values.days.split(",") if part]
    config = config_from_flags(_flag_names(), data_path=days[0] if days else "", export_dir="")
    run_lib.show_package_logs()
    print(TABLE_HEADER, flush=True)
    rows = daily_road(config, days, flag_values.daily_dir, [mode for mode in flag_values.modes.split(",") if mode],
                      log=lambda line: print(line, flush=True))
    summary = mean_next_day(rows)
    for mode, values in summary.items():
        print(f"{mode}: mean next-day AUC {values['auc']:.4f}, log loss {values['logloss']:.4f}, ECE "
              f"{values['ece']:.4f}", flush=True)
    output = pathlib.Path(flag_values.daily_dir) / "daily.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"days": days, "rows": rows, "mean_next_day": summary}, indent=1) + "\n")
    print(f"Table: {output}", flush=True)


def _define_flags() -> None:
    from absl import flags

    from tf_multiembed.training.config import define_flags

    define_flags(_flag_names())
    flags.DEFINE_string("days", None, "Comma-separated inputs, one per day, in time order (a file or glob each; a "
                        "MovieLens folder for --dataset=movielens).", required=True)
    flags.DEFINE_string("daily_dir", "runs/daily", "Where the per-day run directories and daily.json go.")
    flags.DEFINE_string("modes", ",".join(MODES), "Some of warm (from the day before, growing vocabulary), cold "
                        "(from scratch each day), frozen (warm, vocabulary of day 1).")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
    sys.exit(0)
