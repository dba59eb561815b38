"""Time and peak memory of the collapse diagnostics on a Criteo-sized multi-embedding model; SVD vs Gram route.

Part 1 (the issue's "1M rows x K = 100" question): singular values of one tall float32 matrix by the SVD of the
float64 matrix (LAPACK gesdd) and by the float64 Gram matrix accumulated in 64k-row chunks (the package's route).
Part 2: a full per-field report of an ME DCNv2 with the 39 vocabulary sizes of benchmarks/criteo_shape.json
(sum 1.14M rows), M = 10 sets of K = 10, random weights: each stage timed, with the extra resident memory it needs
(peak RSS during the stage minus RSS before it, sampled every 5 ms; each stage run --repeats times, the fastest time
reported, since other processes on a shared machine only add time), and the per-field IA of the Gram route compared
with a per-field SVD of the same tables.

    python benchmarks/quality/diagnostics_report.py                 # both parts (about 1.5 minutes on 2 idle cores)
    python benchmarks/quality/diagnostics_report.py --rows=200000   # a smaller Part 1

Writes benchmarks/results/diagnostics_report.json and the tables between the benchmark markers of
docs/diagnostics.md (use --nowrite_docs to only print them).
"""

import json
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_multiembed import diagnostics  # noqa: E402
from tf_multiembed.diagnostics import abundance  # noqa: E402
from tf_multiembed.diagnostics import tables as tables_lib  # noqa: E402
from tf_multiembed.models import build_model  # noqa: E402
from benchmarks.common import REPO, RESULTS_DIR, criteo_vocabulary_sizes  # noqa: E402
from tf_multiembed.training import config as run_config  # noqa: E402
from tf_multiembed.training.config import define_flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("rows", 1_000_000, "Rows of the Part 1 matrix.")
flags.DEFINE_integer("columns", 100, "Columns of the Part 1 matrix (K).")
define_flags(["scale", "embedding_dim", "threads"])  # train.py's: Part 2 is ME DCNv2 with M = --scale sets of width K
flags.adopt_module_key_flags(run_config)
flags.DEFINE_bool("skip_svd_report", False, "Skip the per-field SVD of Part 2 (the slow reference).")
flags.DEFINE_integer("repeats", 3, "Runs per measurement; the fastest is reported.")
flags.DEFINE_bool("write_docs", True, "Rewrite the benchmark section of docs/diagnostics.md.")

RESULTS = RESULTS_DIR / "diagnostics_report.json"
DOC = REPO / "docs" / "diagnostics.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
MIB = 1 << 20


class PeakMemory:
    """Peak resident memory of this process during a `with` block, above what it was at the start."""

    def __init__(self, interval=0.005):
        self.interval, self.process = interval, psutil.Process()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.extra_mib = (self.peak - self.start) / MIB


def measure(function, repeats=None):
    """Runs `function` `repeats` times (default --repeats): the fastest time (other processes on a shared machine
    only ever add time) and the largest extra memory."""
    seconds, extra = [], []
    for _ in range(repeats or FLAGS.repeats):
        with PeakMemory() as meter:
            value = function()
        seconds.append(meter.seconds)
        extra.append(meter.extra_mib)
    return value, {"seconds": round(min(seconds), 3), "extra_memory_mib": round(max(extra), 1),
                   "repeats": len(seconds)}


def part1(rows, columns):
    """SVD vs Gram route on one tall matrix with a decaying (partly collapsed) spectrum."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((rows, columns), dtype=np.float32)
    matrix *= np.logspace(0, -3, columns).astype(np.float32)  # singular values over three decades
    input_mib = matrix.nbytes / MIB
    svd, svd_cost = measure(lambda: np.linalg.svd(matrix.astype(np.float64), compute_uv=False))
    gram, gram_cost = measure(lambda: abundance.singular_values(matrix, "gram"))
    ia_svd, ia_gram = svd.sum() / svd[0], gram.sum() / gram[0]
    return {
        "shape": [rows, columns], "input_mib": round(input_mib, 1),
        "svd": svd_cost, "gram": gram_cost,
        "speedup": round(svd_cost["seconds"] / gram_cost["seconds"], 1),
        "ia_svd": ia_svd, "ia_gram": ia_gram, "ia_relative_difference": abs(ia_gram - ia_svd) / ia_svd,
        "max_relative_difference_sigma": float(np.max(np.abs(gram - svd) / svd)),
    }


def per_field_svd(tables):
    """The reference: per field, the SVD of the concatenation and of every set (float64)."""
    concat = np.zeros(tables.num_fields)
    sets = np.zeros((tables.num_fields, tables.num_sets))
    for field in range(tables.num_fields):
        rows = tables.field_rows(field).numpy().astype(np.float64)
        concat[field] = abundance.information_abundance(rows, "svd")
        for m in range(tables.num_sets):
            sets[field, m] = abundance.information_abundance(rows[:, tables.set_columns(m)], "svd")
    return concat, sets


def part2(num_sets, dim, skip_svd):
    sizes = criteo_vocabulary_sizes()
    tf.keras.utils.set_random_seed(0)
    model, build_cost = measure(lambda: build_model("dcnv2", sizes, scale=num_sets, embedding_dim=dim), repeats=1)
    tables = tables_lib.EmbeddingTables.from_model(model)
    stages = {"build model (random weights)": build_cost}
    record, stages["callback record (per-field + per-set IA)"] = measure(
        lambda: diagnostics.abundance_record(tables, step=0, epoch=0))
    embedding, stages["analyze_embeddings (incl. random baseline)"] = measure(
        lambda: diagnostics.analyze_embeddings(model))
    pairwise, stages["pairwise_diagnostics (first cross layer)"] = measure(
        lambda: diagnostics.pairwise_diagnostics(model))
    with tempfile.TemporaryDirectory() as folder:
        _, stages["write_report (all of it + figures)"] = measure(
            lambda: diagnostics.write_report({"ME": model}, folder))
    comparison = {}
    if not skip_svd:
        (concat, sets), stages["reference: per-field SVD (concat + sets)"] = measure(lambda: per_field_svd(tables))
        comparison = {
            "max_relative_difference_concat": float(np.max(np.abs(embedding.concat_abundance - concat) / concat)),
            "max_relative_difference_sets": float(np.max(np.abs(embedding.set_abundance - sets) / sets)),
        }
    table_mib = int(np.prod(model.get_layer("multi_embedding").embeddings.shape)) * 4 / MIB
    return {
        "vocabulary_rows": int(sum(sizes)), "num_fields": len(sizes), "num_sets": num_sets, "embedding_dim": dim,
        "table_mib": round(table_mib, 1), "stages": stages, "gram_vs_svd": comparison,
        "mean_concat_abundance": embedding.summary()["mean_concat_abundance"],
        "callback_mean_matches": abs(record["mean_concat_abundance"]
                                     - embedding.summary()["mean_concat_abundance"]) < 1e-9,
        "pairwise_shape": list(pairwise.projected_abundance.shape),
    }


def markdown(results):
    one, two = results["part1"], results["part2"]
    lines = [
        f"Measured by `python benchmarks/quality/diagnostics_report.py --scale={two['num_sets']}` on "
        f"{results['machine']}; "
        "fastest of "
        f"{FLAGS.repeats} runs per line (the machine is shared), extra memory = peak RSS during the stage minus RSS "
        "before it.", "",
        f"**SVD vs Gram route**, one {one['shape'][0]:,} x {one['shape'][1]} float32 matrix "
        f"({one['input_mib']:.0f} MiB) with singular values over three decades:", "",
        "| route | time (s) | extra memory (MiB) |", "|---|---|---|",
        f"| SVD of the float64 matrix (`method=\"svd\"`) | {one['svd']['seconds']:.2f} | "
        f"{one['svd']['extra_memory_mib']:.0f} |",
        f"| float64 Gram in 64k-row chunks (`method=\"gram\"`, default) | {one['gram']['seconds']:.2f} | "
        f"{one['gram']['extra_memory_mib']:.0f} |", "",
        f"Gram route {one['speedup']:.0f}x faster; IA relative difference {one['ia_relative_difference']:.1e}, "
        f"largest relative difference of a singular value {one['max_relative_difference_sigma']:.1e}.", "",
        f"**Full per-field report, Criteo-sized ME DCNv2** ({two['num_fields']} fields, "
        f"{two['vocabulary_rows']:,} rows, M = {two['num_sets']}, K = {two['embedding_dim']}: a "
        f"{two['table_mib']:.0f} MiB table, random weights):", "",
        "| stage | time (s) | extra memory (MiB) |", "|---|---|---|",
    ]
    for stage, cost in two["stages"].items():
        lines.append(f"| {stage} | {cost['seconds']:.2f} | {cost['extra_memory_mib']:.0f} |")
    if two["gram_vs_svd"]:
        lines += ["", f"Per-field IA of the Gram route vs the per-field SVD: largest relative difference "
                      f"{two['gram_vs_svd']['max_relative_difference_concat']:.1e} (concatenation), "
                      f"{two['gram_vs_svd']['max_relative_difference_sets']:.1e} (sets)."]
    return "\n".join(lines)


def main(argv):
    del argv
    from tf_multiembed.training.run import configure_threads

    configure_threads(FLAGS.threads)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
                   f"NumPy {np.__version__}",
        "part1": part1(FLAGS.rows, FLAGS.columns),
        "part2": part2(FLAGS.scale, FLAGS.embedding_dim or 10, FLAGS.skip_svd_report),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=float))
    text = markdown(results)
    print(text)
    if FLAGS.write_docs and DOC.exists():
        document = DOC.read_text()
        if START in document and END in document:
            head, rest = document.split(START, 1)
            tail = rest.split(END, 1)[1]
            DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}")
            print(f"\nUpdated {DOC}")


if __name__ == "__main__":
    app.run(main)
