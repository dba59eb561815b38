"""One prepared GPU run: correctness checks on the GPU, then the throughput table, in at most about 8 minutes.

    python benchmarks/speed/gpu.py                    # on a machine whose TensorFlow sees a GPU
    python benchmarks/speed/gpu.py --short            # CPU smoke run of every code path (the test-suite runs it)

Checks (each trains a small model for a few steps on the first accelerator):
- `mirrored_one_device`: `training.distribute.create_strategy("mirrored")` over the one GPU gives the same weights as
  the default strategy after the same steps (dropout off);
- `mixed_float16`: the Keras policy trains with loss scaling, losses finite, float32 probabilities out;
- `xla`: `compile_model(jit_compile=True)` (static-shape sparse update) gives the losses of the plain step;
- `export`: `train.py` on a small synthetic data set ends in a SavedModel whose `serving_default` answers raw rows
  with probabilities, loaded back in a fresh process.

Table: DNN and DCNv2, SE at 1x/4x/10x and ME at 4x/10x, sparse updates, in float32, mixed_float16 and mixed_bfloat16,
XLA off and on (Criteo cardinalities, Zipf ids in memory, batch 2048). Each (precision, XLA) group runs in its own
process, most informative groups first; a group that would start after `--budget_seconds` is recorded as skipped.
Writes `<output_dir>/gpu.json` and `<output_dir>/gpu.md`.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from benchmarks.common import REPO, RESULTS_DIR, criteo_vocabulary_sizes  # noqa: E402
from benchmarks.common import scheduling_report, time_training  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("short", False, "CPU smoke run: tiny vocabularies and batches, few variants, no GPU required.")
flags.DEFINE_string("output_dir", str(RESULTS_DIR / "gpu"), "Where gpu.json and gpu.md go.")
flags.DEFINE_integer("budget_seconds", 420, "No table group starts after this many seconds of the whole run.")
flags.DEFINE_integer("group_timeout_seconds", 240, "A table group still running after this is stopped.")
flags.DEFINE_string("part", "", "Internal: run 'checks' or one table group 'precision:xla' in this process.")

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
VARIANTS = (("dnn", False, 1), ("dnn", False, 4), ("dnn", True, 4), ("dnn", False, 10), ("dnn", True, 10),
            ("dcnv2", False, 1), ("dcnv2", False, 4), ("dcnv2", True, 4), ("dcnv2", False, 10), ("dcnv2", True, 10))
SHORT_VARIANTS = (("dnn", True, 2), ("dcnv2", False, 2))


def _settings() -> dict:
    if FLAGS.short:
        return {"sizes": [50] * 6, "batch_size": 64, "steps": 2, "timed_epochs": 1, "variants": SHORT_VARIANTS,
                "groups": [("float32", False), ("mixed_float16", False), ("float32", True)]}
    groups = [(precision, False) for precision in PRECISIONS] + [(precision, True) for precision in PRECISIONS]
    return {"sizes": criteo_vocabulary_sizes(), "batch_size": 2048, "steps": 20, "timed_epochs": 3,
            "variants": VARIANTS, "groups": groups}


def _device_name() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name, capability = details.get("device_name", "unknown"), details.get("compute_capability")
        return f"GPU:0 ({name}, compute capability {capability})"
    return "CPU"


# ----------------------------------------------------------------------------------------------------------------
# Checks

def _tiny_model(sizes, jit_compile=False, strategy=None):
    import contextlib

    import tensorflow as tf

    from tf_multiembed.models import build_model
    from tf_multiembed.training import PaperRecipe, compile_model

    tf.keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_model("dcnv2", sizes, scale=2, multi_embedding=True, dropout=0.0)
        compile_model(model, PaperRecipe(), jit_compile=jit_compile)
    return model


def _tiny_data(sizes, rows=512):
    import numpy as np

    rng = np.random.default_rng(1)
    ids = np.stack([rng.integers(0, size, rows) for size in sizes], axis=1).astype("int64")
    labels = ((ids[:, 0] % 3 == 0) ^ (rng.random(rows) < 0.1)).astype("float32")
    return ids, labels


def _fit_losses(model, ids, labels, steps=4):
    history = model.fit(ids, labels, batch_size=len(ids) // steps, epochs=2, shuffle=False, verbose=0)
    return [float(value) for value in history.history["loss"]]


def check_mirrored_one_device(sizes) -> dict:
    import numpy as np

    from tf_multiembed.training import distribute

    ids, labels = _tiny_data(sizes)
    plain = _tiny_model(sizes)
    _fit_losses(plain, ids, labels)
    device = "/gpu:0" if not FLAGS.short else "/cpu:0"
    info = distribute.create_strategy("mirrored", devices=[device])
    mirrored = _tiny_model(sizes, strategy=info.strategy)
    _fit_losses(mirrored, ids, labels)
    difference = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                     for a, b in zip(plain.weights, mirrored.weights))
    return {"passed": difference < 1e-3, "max_weight_difference": difference,
            "replicas": info.strategy.num_replicas_in_sync}


def check_mixed_float16(sizes) -> dict:
    import numpy as np
    import tensorflow as tf

    ids, labels = _tiny_data(sizes)
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _tiny_model(sizes)
        losses = _fit_losses(model, ids, labels)
        probabilities = model(ids[:8], training=False)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    return {"passed": bool(np.isfinite(losses).all() and probabilities.dtype == tf.float32
                           and type(model.optimizer).__name__ == "LossScaleOptimizer"),
            "losses": losses, "optimizer": type(model.optimizer).__name__, "output_dtype": probabilities.dtype.name}


def check_xla(sizes) -> dict:
    import numpy as np

    ids, labels = _tiny_data(sizes)
    plain = _fit_losses(_tiny_model(sizes), ids, labels)
    compiled = _fit_losses(_tiny_model(sizes, jit_compile=True), ids, labels)
    difference = float(np.max(np.abs(np.array(plain) - np.array(compiled)) / np.abs(plain)))
    return {"passed": difference < 1e-3, "losses": plain, "xla_losses": compiled, "max_relative_difference": difference}


def check_export() -> dict:
    """train.py end to end on the accelerator, then the SavedModel served in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        command = [sys.executable, str(REPO / "train.py"), "--synthetic_rows=2000", "--epochs=1", "--verbose=0",
                   f"--data_dir={folder / 'data'}", f"--model_dir={folder / 'run'}",
                   f"--export_dir={folder / 'export'}", "--export_name=check", "--batch_size=512"]
        trained = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if trained.returncode != 0:
            return {"passed": False, "error": trained.stderr[-2000:]}
        exported = sorted((folder / "export" / "check").iterdir())[-1]
        serve = subprocess.run([sys.executable, "-c", _SERVE_SNIPPET, str(exported), str(folder / "data")],
                               capture_output=True, text=True, cwd=REPO)
        lines = [line for line in serve.stdout.splitlines() if line.startswith("{")]
        if serve.returncode != 0 or not lines:
            return {"passed": False, "error": serve.stderr[-2000:]}
        served = json.loads(lines[-1])
        return {"passed": served["rows"] == 4 and all(0.0 <= p <= 1.0 for p in served["probabilities"]), **served}


# Serves the first rows of train.py's synthetic data file through the exported signature, in a fresh process.
_SERVE_SNIPPET = """
import json, sys
import tensorflow as tf
from tf_multiembed.data.synthetic import synthetic_criteo_file
from tf_multiembed.serving.examples import raw_features_from_files
synthetic = synthetic_criteo_file(sys.argv[2] + "/synthetic", num_rows=2000)  # the file train.py generated
signature = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
specs = signature.structured_input_signature[1]
features = raw_features_from_files(synthetic.schema, str(synthetic.path), 4)
outputs = signature(**{name: tf.constant(values, dtype=specs[name].dtype) for name, values in features.items()})
probabilities = next(iter(outputs.values())).numpy().ravel().tolist()
print(json.dumps({"rows": len(probabilities), "probabilities": probabilities}))
"""


def run_checks() -> dict:
    sizes = [50] * 6
    results = {}
    for name, check in (("mirrored_one_device", lambda: check_mirrored_one_device(sizes)),
                        ("mixed_float16", lambda: check_mixed_float16(sizes)),
                        ("xla", lambda: check_xla(sizes)), ("export", check_export)):
        started = time.perf_counter()
        try:
            results[name] = check()
        except Exception as error:  # a failed check is a result, not the end of the run
            results[name] = {"passed": False, "error": f"{type(error).__name__}: {error}"[-2000:]}
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
    return results


# ----------------------------------------------------------------------------------------------------------------
# Table

def run_group(precision: str, xla: bool) -> list:
    settings = _settings()
    rows = []
    for model_name, multi_embedding, scale in settings["variants"]:
        started = time.perf_counter()
        try:
            row = time_training(model_name, multi_embedding, scale, "sparse", settings["sizes"],
                                batch_size=settings["batch_size"], steps=settings["steps"],
                                timed_epochs=settings["timed_epochs"], jit_compile=xla, mixed_precision=precision)
        except Exception as error:
            row = {"model": f"{'me' if multi_embedding else 'se'}_{model_name}_{scale}x", "mixed_precision": precision,
                   "jit_compile": xla, "error": f"{type(error).__name__}: {error}"[-500:]}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps({"row": row}), flush=True)
    return rows


def _run_part(part: str, timeout: float) -> tuple:
    """Runs one part in a child process; returns (its JSON lines, error text or None)."""
    try:
        process = subprocess.run([sys.executable, __file__, f"--part={part}", f"--short={FLAGS.short}"],
                                 capture_output=True, text=True, timeout=timeout)
        output, error = process.stdout, (None if process.returncode == 0 else process.stderr[-2000:])
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        error = f"stopped after {timeout:.0f} s"
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")], error


def markdown(report: dict) -> str:
    lines = [f"Measured {report['date']} on {report['device']} (TensorFlow {report['tensorflow']}), "
             f"batch {report['batch_size']}, sparse updates, {'SHORT CPU smoke run' if report['short'] else 'full run'}"
             f", {report['seconds']:.0f} s in all.", "", "| check | result | details |", "|---|---|---|"]
    for name, result in report["checks"].items():
        details = {key: value for key, value in result.items() if key not in ("passed", "losses", "xla_losses")}
        lines.append(f"| {name} | {'passed' if result.get('passed') else 'FAILED'} | {json.dumps(details)[:200]} |")
    lines += ["", "| model | precision | XLA | step (ms) | examples/s | first epoch (s) |",
              "|---|---|---|---:|---:|---:|"]
    for row in report["table"]:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['mixed_precision']} | {'on' if row['jit_compile'] else 'off'} | "
                         f"failed: {row['error'][:80]} | | |")
        else:
            lines.append(f"| {row['model']} | {row['mixed_precision']} | {'on' if row['jit_compile'] else 'off'} | "
                         f"{1000 * row['step_s']:.1f} | {row['examples_per_s']:,.0f} | {row['first_epoch_s']:.1f} |")
    for skipped in report["skipped_groups"]:
        lines.append(f"| (group {skipped} not run: over the time budget) | | | | | |")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.part == "checks":
        print(json.dumps({"checks": run_checks(), "device": _device_name()}), flush=True)
        return
    if FLAGS.part:
        precision, xla = FLAGS.part.split(":")
        run_group(precision, xla == "True")
        return
    import tensorflow as tf

    if not FLAGS.short and not tf.config.list_physical_devices("GPU"):
        raise app.UsageError("TensorFlow sees no GPU here; use --short for the CPU smoke run.")
    started = time.perf_counter()
    settings = _settings()
    parts, errors = _run_part("checks", FLAGS.group_timeout_seconds)
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "short": FLAGS.short, "tensorflow": tf.__version__,
              "batch_size": settings["batch_size"], "build": dict(tf.sysconfig.get_build_info()),
              "scheduling": scheduling_report(), "checks": parts[-1]["checks"] if parts else {"checks": {
                  "passed": False, "error": errors}}, "device": parts[-1]["device"] if parts else "unknown",
              "table": [], "skipped_groups": [], "group_errors": {}}
    for precision, xla in settings["groups"]:
        if time.perf_counter() - started > FLAGS.budget_seconds:
            report["skipped_groups"].append(f"{precision}/XLA {'on' if xla else 'off'}")
            continue
        lines, error = _run_part(f"{precision}:{xla}", FLAGS.group_timeout_seconds)
        report["table"].extend(line["row"] for line in lines)
        if error:
            report["group_errors"][f"{precision}:{xla}"] = error
    report["seconds"] = time.perf_counter() - started
    output = pathlib.Path(FLAGS.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "gpu.json").write_text(json.dumps(report, indent=1, default=str))
    table = markdown(report)
    (output / "gpu.md").write_text(table + "\n")
    print(table)
    if not all(result.get("passed") for result in report["checks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
