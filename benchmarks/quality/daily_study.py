"""The continual-training study of docs/training.md ("Continual training"): warm vs cold start, growing vs frozen
vocabulary, day by day (`tf_multiembed.training.daily`), on drifting synthetic days with new ids and on
MovieLens-100K split by timestamp.

    python benchmarks/quality/daily_study.py --out=/tmp/daily_study    # both data sets (about 10 min on 2 cores)
    python benchmarks/quality/daily_study.py --data=synthetic --days=5

The synthetic days (`write_synthetic_days`): fields user (a pool of 4000 ids), ad (each day 30% of the ads are new,
and new ads are shown more: a Zipf draw over the ads in order of appearance, newest first), site (200) and hour (24);
the click logit is a bias + user + ad + site + hour effects + an ad x site interaction, and it drifts: every day the
ad effects move by N(0, 0.3) and the bias by -0.1. Rows per day: `--rows`. The result JSON goes to
benchmarks/results/daily_<data>.json.
"""

import json
import pathlib
import shutil
import sys
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import REPO, RESULTS_DIR  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import define_flags  # noqa: E402

define_flags(["epochs", "threads"])  # train.py's names; the study's own default for --epochs below
flags.adopt_module_key_flags(run_config)
FLAGS = flags.FLAGS
FLAGS.set_default("epochs", 2)
flags.DEFINE_list("data", ["synthetic", "movielens"], "Data sets: synthetic (drifting days) and/or movielens.")
flags.DEFINE_integer("days", 5, "Days (periods) of each data set.", lower_bound=2)
flags.DEFINE_integer("rows", 20_000, "Synthetic rows per day.", lower_bound=100)
flags.DEFINE_string("out", "/tmp/daily_study", "Working folder (day files, data cache, runs).")

SCHEMA = {"name": "drift", "delimiter": ",", "has_header": True, "label": {"column": "click"}, "min_count": 2,
          "fields": [{"name": name, "kind": "categorical"} for name in ("user", "ad", "site", "hour")]}


def write_synthetic_days(folder: pathlib.Path, days: int, rows: int, seed: int = 0):
    """Writes day1.csv ... and schema.json; returns the day paths."""
    rng = np.random.default_rng(seed)
    num_users, num_sites, ads_per_day, new_share = 4000, 200, 600, 0.3
    user_effect = rng.normal(0, 0.6, num_users)
    site_effect = rng.normal(0, 0.5, num_sites)
    hour_effect = rng.normal(0, 0.2, 24)
    total_ads = ads_per_day + int(new_share * ads_per_day) * days
    ad_effect = rng.normal(0, 0.8, total_ads)
    ad_site = rng.normal(0, 0.5, (8, 8))  # an interaction of ad and site groups
    bias = -1.2
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    paths = []
    for day in range(days):
        newest = ads_per_day + int(new_share * ads_per_day) * day  # ads known up to this day
        live = np.arange(max(0, newest - ads_per_day), newest)[::-1]  # the live ads, newest first
        weights = 1.0 / np.arange(1, len(live) + 1) ** 0.8
        ads = rng.choice(live, size=rows, p=weights / weights.sum())
        users = np.minimum(rng.zipf(1.3, rows) - 1, num_users - 1)
        sites = rng.integers(0, num_sites, rows)
        hours = rng.integers(0, 24, rows)
        logit = (bias + user_effect[users] + ad_effect[ads] + site_effect[sites] + hour_effect[hours]
                 + ad_site[ads % 8, sites % 8])
        clicks = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
        path = folder / f"day{day + 1}.csv"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("click,user,ad,site,hour\n")
            handle.writelines(f"{c},u{u},a{a},s{s},h{h}\n" for c, u, a, s, h in zip(clicks, users, ads, sites, hours))
        paths.append(str(path))
        ad_effect += rng.normal(0, 0.3, total_ads)  # drift
        bias -= 0.1
    return paths


def write_movielens_days(folder: pathlib.Path, source: pathlib.Path, days: int):
    """ml-100k split by timestamp into `days` periods of equal rows, one folder each (the ratings of the period and
    the user and item files)."""
    lines = (source / "ml-100k.inter").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    stamps = np.array([float(row.split("\t")[3]) for row in rows])
    order = np.argsort(stamps, kind="stable")
    paths = []
    for day, part in enumerate(np.array_split(order, days), start=1):
        day_dir = folder / f"period{day}"
        day_dir.mkdir(parents=True, exist_ok=True)
        (day_dir / "ml-100k.inter").write_text("\n".join([header] + [rows[index] for index in part]) + "\n",
                                               encoding="utf-8")
        for name in ("ml-100k.user", "ml-100k.item"):
            shutil.copy(source / name, day_dir / name)
        paths.append(str(day_dir))
    return paths


def main(argv) -> None:
    del argv
    args = FLAGS
    from tf_multiembed.training.config import RunConfig
    from tf_multiembed.training.daily import TABLE_HEADER, daily_road, mean_next_day

    out = pathlib.Path(args.out)
    common = dict(model="dnn", scale=2, embedding_dim=10, epochs=args.epochs, patience=args.epochs + 1,
                  batch_size=512, verbose=0, threads=args.threads, data_dir=str(out / "cache"), export_dir="")
    for data in args.data:
        started = time.time()
        if data == "synthetic":
            days = write_synthetic_days(out / "synthetic_days", args.days, args.rows)
            config = RunConfig(dataset="custom", schema=str(out / "synthetic_days" / "schema.json"),
                               data_path=days[0], **common)
        else:
            days = write_movielens_days(out / "movielens_days", REPO.parent / "shared" / "data" / "ml-100k",
                                        args.days)
            config = RunConfig(dataset="movielens", data_path=days[0], **common)
        print(f"\n{data}: {len(days)} days\n{TABLE_HEADER}", flush=True)
        rows = daily_road(config, days, out / f"runs_{data}", log=lambda line: print(line, flush=True))
        summary = mean_next_day(rows)
        for mode, values in summary.items():
            print(f"{mode}: mean next-day AUC {values['auc']:.4f}, log loss {values['logloss']:.4f}, ECE "
                  f"{values['ece']:.4f}", flush=True)
        result = {"data": data, "days": args.days, "rows_per_day": args.rows if data == "synthetic" else None,
                  "settings": common, "rows": rows, "mean_next_day": summary,
                  "seconds": round(time.time() - started, 1)}
        path = RESULTS_DIR / f"daily_{data}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"{data}: {result['seconds']} s -> {path}", flush=True)


if __name__ == "__main__":
    app.run(main)
