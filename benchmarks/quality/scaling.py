"""The scaling study: SE vs ME across scale factors, with information abundance, resumable and spread over processes.

For every model x scale x seed it trains SE (one set of width s*K) and ME (s sets of width K) with train.py's
run configuration (the same flags, names and defaults, generated from `RunConfig`; `--preset=paper` sets the paper's
protocol: the seeded 8:1:1 split, Adam 1e-3 with coupled L2 1e-6 and dense embedding updates, batch 2048, the split's
fixed order every epoch, early stopping on the exact validation AUC with patience 3), and test AUC / log loss of the
best epoch's weights. ME at 1x is SE at 1x (one set) and is trained once. After training, the per-field IA of the
best weights is recorded: the IA of each field's `[D_i, M*K]` rows (comparable between SE and ME at the same total
width) and the mean per-set IA.

    python benchmarks/quality/scaling.py --preset=paper --dataset=movielens --data_path=../shared/data/ml-100k \\
        --models=dnn,dcnv2 --scales=1,2,4,10 --seeds=0,1,2 --out=docs/results/scaling_ml100k
    # the same on two processes of one thread each (2 cores): worker i takes runs i, i+2, ...
    for i in 0 1; do python benchmarks/quality/scaling.py ... --threads=1 --num_workers=2 --worker_index=$i & done; wait
    python benchmarks/quality/scaling.py ... --report_only     # rewrite runs.csv, table.md and the plots

Each run lives in `<out>/runs/<model>-<se|me>-<scale>x-seed<seed>/`; a run with a `record.json` is finished and is
skipped when the command is repeated, a killed run resumes from its checkpoint. The checkpoints of a finished run are
deleted, and so is its `best.keras` (its `run.json`, `results.json`, `record.json` and TensorBoard logs stay).
Outputs: `<out>/runs.csv`, `<out>/table.md`
(the paper's Table 1 layout, mean ± population std over seeds) and `<out>/auc_vs_scale.png`, `ia_vs_scale.png`;
with `--reference=<json>` also `<out>/fidelity.md` (format: `scaling_report.load_reference`; the reference's
MovieLens-100K figures are docs/results/reference_ml100k.json, obtained with a fixed epoch order: pass --noshuffle).
"""

import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time
from typing import List, Sequence

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from benchmarks.quality import scaling_report  # noqa: E402

from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import config_from_flags, define_flags  # noqa: E402

# train.py's settings that shape a study (the rest of each run's configuration comes from the study's plan).
RUN_SETTINGS = ("dataset", "data_path", "schema", "data_dir", "synthetic_rows", "synthetic_interaction_order",
                "synthetic_interactions", "synthetic_interaction_share", "min_count", "split", "split_seed",
                "batch_size", "learning_rate", "l2", "embedding_updates", "epochs", "patience", "shuffle", "preset",
                "jit_compile", "mixed_precision", "threads")
define_flags(RUN_SETTINGS)
flags.adopt_module_key_flags(run_config)  # --help lists them as this script's flags
FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["dnn", "dcnv2"], "Registered model names.")
flags.DEFINE_list("scales", ["1", "2", "4", "10"], "Scale factors.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Initialisation seeds.")
flags.DEFINE_list("me_only", [], "Models of --models trained as ME only: variants whose SE is another model's SE "
                  "(the space-similarity penalty and a shared interaction change nothing for one set).")
flags.DEFINE_string("out", "", "Output folder (runs/, runs.csv, table.md, plots).")
flags.DEFINE_integer("num_workers", 1, "Processes sharing the runs.", lower_bound=1)
flags.DEFINE_integer("worker_index", 0, "This process's index in [0, num_workers).", lower_bound=0)
flags.DEFINE_bool("report_only", False, "Only rewrite the CSV, tables and plots from the finished runs.")
flags.DEFINE_string("reference", "", "JSON of reference results (model, embedding, scale, mean, std) for fidelity.md.")

RECORD = "record.json"


@dataclasses.dataclass(frozen=True)
class Run:
    model: str
    embedding: str  # "se" or "me"
    scale: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.embedding}-{self.scale}x-seed{self.seed}"


def planned_runs(models: List[str], scales: List[int], seeds: List[int], me_only: Sequence[str] = ()) -> List[Run]:
    """Every run of the study, model-major (so a partial study has whole models): SE at every scale, ME above 1x;
    the models in `me_only` have their ME runs only.

    Example:
        >>> [run.name for run in planned_runs(["dnn"], [1, 2], [0])]
        ['dnn-se-1x-seed0', 'dnn-se-2x-seed0', 'dnn-me-2x-seed0']
        >>> [run.name for run in planned_runs(["dnn", "dcnv2"], [1, 2], [0], me_only=["dcnv2"])]
        ['dnn-se-1x-seed0', 'dnn-se-2x-seed0', 'dnn-me-2x-seed0', 'dcnv2-me-2x-seed0']
    """
    from tf_multiembed.models import available_models

    unknown = [model for model in models if model not in available_models()]
    if unknown:
        raise ValueError(f"scaling: unknown model(s) {unknown}; registered: {sorted(available_models())}.")
    if not models or not scales or not seeds:
        raise ValueError(f"scaling: --models, --scales and --seeds must not be empty (got {models}, {scales}, "
                         f"{seeds}).")
    stray = [model for model in me_only if model not in models]
    if stray:
        raise ValueError(f"scaling: --me_only names {stray}, which --models {models} does not have.")
    bad = [scale for scale in scales if scale < 1]
    if bad:
        raise ValueError(f"scaling: scale factors must be integers >= 1, got {bad}.")
    return [Run(model, embedding, scale, seed) for model in models for seed in seeds for embedding in ("se", "me")
            for scale in scales
            if not (embedding == "me" and scale == 1) and not (embedding == "se" and model in me_only)]


def worker_share(runs: List[Run], num_workers: int, worker_index: int) -> List[Run]:
    """The runs of one worker: runs[worker_index::num_workers] (every run goes to exactly one worker)."""
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"scaling: --worker_index must be in [0, {num_workers}), got {worker_index}.")
    return runs[worker_index::num_workers]


def abundance_summary(model) -> dict:
    """Mean and min over fields of the IA and RankMe of each field's [D_i, M*K] rows, and the mean per-set IA."""
    import numpy as np

    from tf_multiembed.diagnostics import analyze_embeddings

    diagnostics = analyze_embeddings(model)
    return {"ia_mean": float(np.nanmean(diagnostics.concat_abundance)),
            "ia_min": float(np.nanmin(diagnostics.concat_abundance)),
            "ia_set_mean": float(np.nanmean(diagnostics.set_abundance)),
            "rankme_mean": float(np.nanmean(diagnostics.concat_effective_rank)),
            "rankme_min": float(np.nanmin(diagnostics.concat_effective_rank))}


def train_run(run: Run, data, run_dir: pathlib.Path) -> dict:
    """Trains (or resumes) one run, records its metrics and IA in `record.json`, deletes its checkpoints."""
    from tf_multiembed.training.run import create_strategy, train_prepared

    config = config_from_flags(RUN_SETTINGS, model=run.model, embedding=run.embedding, scale=run.scale, seed=run.seed,
                               model_dir=str(run_dir), export_dir="", verbose=0)
    results, model = train_prepared(config, data, create_strategy(config))
    best = next(entry for entry in results["epochs"] if entry["epoch"] == results["best_epoch"])
    record = {"dataset": FLAGS.dataset, "model": run.model, "embedding": run.embedding, "scale": run.scale,
              "num_sets": run.scale if run.embedding == "me" else 1,
              "width": model.get_layer("multi_embedding").embedding_dim, "seed": run.seed,
              "embedding_updates": config.embedding_updates, "shuffle": config.shuffle, "preset": config.preset,
              "epochs": len(results["epochs"]),
              "best_epoch": results["best_epoch"], "wall_seconds": round(results["wall_seconds"], 1),
              "num_parameters": int(model.count_params()), "val_auc": best["val_auc"],
              "val_logloss": best["val_logloss"], "test_auc": results["test"]["auc"],
              "test_logloss": results["test"]["logloss"], **abundance_summary(model)}
    (run_dir / RECORD).write_text(json.dumps(record, indent=1))
    for folder in ("checkpoints", "best"):  # up to 3x the parameters each; the record has what the study needs
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    (run_dir / "best.keras").unlink(missing_ok=True)
    return record


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # checkpoint-sharding INFO lines on every save
    if not FLAGS.out:
        raise app.UsageError("--out is required: the folder of the study's runs and results.")
    out = pathlib.Path(FLAGS.out)
    runs = planned_runs(FLAGS.models, [int(scale) for scale in FLAGS.scales], [int(seed) for seed in FLAGS.seeds],
                        me_only=FLAGS.me_only)
    reference = scaling_report.load_reference(FLAGS.reference) if FLAGS.reference else None  # fails before training
    if not FLAGS.report_only:
        from tf_multiembed.training.run import configure_threads, prepare_data

        configure_threads(FLAGS.threads)

        mine = worker_share(runs, FLAGS.num_workers, FLAGS.worker_index)
        data = None
        for index, run in enumerate(mine, start=1):
            run_dir = out / "runs" / run.name
            if (run_dir / RECORD).is_file():
                print(f"[{index}/{len(mine)}] {run.name}: finished before, skipped", flush=True)
                continue
            if data is None:  # prepared once per process (and cached on disk between processes)
                data, _, _ = prepare_data(config_from_flags(RUN_SETTINGS))
            started = time.time()
            record = train_run(run, data, run_dir)
            print(f"[{index}/{len(mine)}] {run.name}: test AUC {record['test_auc']:.4f}, IA {record['ia_mean']:.2f}, "
                  f"{record['epochs']} epochs, {time.time() - started:.0f} s", flush=True)
    records = scaling_report.load_records(out / "runs")
    scaling_report.write_report(out, records, runs, reference=reference)
    finished = sum((out / "runs" / run.name / RECORD).is_file() for run in runs)
    print(f"{finished} of {len(runs)} planned runs finished ({len(records)} records in {out / 'runs'}); wrote "
          f"{out / 'runs.csv'}, {out / 'table.md'} and plots.")


if __name__ == "__main__":
    app.run(main)
