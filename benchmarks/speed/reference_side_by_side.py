"""Our training throughput against the paper's PyTorch code, measured side by side in alternating rounds.

Optional: it needs a checkout of github.com/thuml/Multi-Embedding and a scratch Python with torch and NumPy (never a
dependency of this package; nothing of the reference is committed here). Set-up, once:

    git clone https://github.com/thuml/Multi-Embedding /tmp/Multi-Embedding
    python3 -m venv /tmp/reference-env && /tmp/reference-env/bin/pip install torch numpy
    python benchmarks/speed/reference_side_by_side.py --reference_checkout=/tmp/Multi-Embedding \\
        --reference_python=/tmp/reference-env/bin/python

Each round times every variant once on each side (the reference's dense step; ours in each `--modes`), every
measurement in its own process, the order of the sides alternating from round to round; the ratio of a round is
ours / the reference's of the same round, so slow drifts of the machine cancel. The table gives the medians over the
rounds and the range of the paired ratios. Same inputs on both sides: the 39 Criteo cardinalities
(benchmarks/criteo_shape.json), Zipf(1.3) ids and labels from `benchmarks.common`, batch 2048, Adam 1e-3 with coupled
L2 1e-6, the same threads. Writes benchmarks/results/reference_side_by_side_<table>.json and the table between the
`reference_side_by_side_<table>` markers of docs/benchmarks.md.
"""

import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):  # run by path (python benchmarks/<group>/<script>.py): make `benchmarks` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from absl import app, flags  # noqa: E402

from benchmarks.common import (REPO, RESULTS_DIR, check_scheduling_flags, cpu_load, define_scheduling_flags,  # noqa: E402
                               isolated_child_kwargs, paired_ratio, scheduling_conditions, write_between_markers)
from tf_multiembed.training import config as run_config  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = flags.FLAGS
flags.DEFINE_string("reference_checkout", None, "Folder of a thuml/Multi-Embedding checkout (has torchfm/).")
flags.DEFINE_string("reference_python", None, "A Python interpreter with torch and NumPy installed.")
flags.DEFINE_list("variants", ["dnn:se:1", "dnn:se:10", "dnn:me:10", "dcnv2:se:4", "dcnv2:me:4", "dcnv2:me:10"],
                  "Variants model:se|me:scale (models: dnn, dcnv2, xdeepfm).")
flags.DEFINE_list("modes", ["sparse", "dense"], "Our embedding update modes (the reference's are always dense).")
flags.DEFINE_integer("rounds", 5, "Alternating rounds.", lower_bound=1)
flags.DEFINE_integer("steps", 5, "Steps per epoch: one warm-up epoch, then --timed_epochs timed ones.")
flags.DEFINE_integer("timed_epochs", 3, "Timed epochs per measurement.")
run_config.define_flags(["batch_size", "threads"])  # train.py's; --threads also sets torch.set_num_threads
flags.adopt_module_key_flags(run_config)
define_scheduling_flags()
flags.DEFINE_string("table", "float32", "Results name: results/reference_side_by_side_<table>.json and docs markers.")
flags.DEFINE_bool("write", True, "Write the JSON results and the docs table.")
flags.DEFINE_bool("docs_only", False, "Measure nothing: rewrite the docs table of --table from its results JSON.")
flags.DEFINE_string("docs", str(REPO / "docs" / "benchmarks.md"), "Markdown file with the table.")


def _json_line(command, what: str) -> dict:
    process = subprocess.run(command, capture_output=True, text=True, **isolated_child_kwargs(FLAGS.isolate))
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(lines[-1])


def measure_ours(variant: str, mode: str) -> dict:
    common = [f"--steps={FLAGS.steps}", f"--timed_epochs={FLAGS.timed_epochs}", f"--threads={FLAGS.threads}",
              f"--batch_size={FLAGS.batch_size}", "--input_batches=0"]
    return _json_line([sys.executable, str(HERE / "throughput.py"), f"--variant={variant}:{mode}", *common],
                      f"ours {variant} {mode}")


def measure_reference(variant: str) -> dict:
    model, embedding, scale = variant.split(":")
    return _json_line([FLAGS.reference_python, str(HERE / "reference_step.py"),
                       f"--checkout={FLAGS.reference_checkout}", f"--model={model}", f"--embedding={embedding}",
                       f"--scale={scale}", f"--steps={FLAGS.steps}", f"--timed_epochs={FLAGS.timed_epochs}",
                       f"--threads={FLAGS.threads}", f"--batch_size={FLAGS.batch_size}"], f"reference {variant}")


def run_rounds() -> list:
    """[{variant, round, reference, <mode>...}] examples/s of every round."""
    measurements = []
    for index in range(FLAGS.rounds):
        for variant in FLAGS.variants:
            sides = ["reference", *FLAGS.modes]
            if index % 2:
                sides.reverse()
            row = {"variant": variant, "round": index}
            for side in sides:
                figures = measure_reference(variant) if side == "reference" else measure_ours(variant, side)
                row[side] = figures["examples_per_s"]
                if side != "reference":
                    row["model"] = figures["model"]
            print(json.dumps(row), flush=True)
            measurements.append(row)
    return measurements


def summarize(measurements: list, modes) -> list:
    """Per variant: median examples/s of each side and the paired ratios ours / the reference's, round by round."""
    summary = []
    for variant in dict.fromkeys(row["variant"] for row in measurements):
        rows = [row for row in measurements if row["variant"] == variant]
        reference = [row["reference"] for row in rows]
        entry = {"variant": variant, "model": rows[0]["model"], "rounds": len(rows),
                 "reference": statistics.median(reference)}
        for mode in modes:
            ours = [row[mode] for row in rows]
            ratio = paired_ratio(ours, reference)
            entry[mode] = {"examples_per_s": statistics.median(ours), "ratio_median": ratio["median"],
                           "ratio_min": ratio["min"], "ratio_max": ratio["max"]}
        summary.append(entry)
    return summary


def markdown(summary: list, modes, measured: str, torch_version: str, conditions: str) -> str:
    rounds = summary[0]["rounds"]
    lines = [f"Measured {measured} on {platform.machine()} with {os.cpu_count()} CPU cores, {FLAGS.threads} threads "
             f"on both sides, batch {FLAGS.batch_size}, {rounds} alternating rounds, each side median over "
             f"{FLAGS.timed_epochs} epochs of {FLAGS.steps} steps after a warm-up epoch; reference: thuml/Multi-"
             f"Embedding on torch {torch_version} (dense updates); {conditions}.",
             "",
             "| model | reference ex/s | " + " | ".join(f"ours {mode} ex/s | {mode} / reference (range)"
                                                     for mode in modes) + " |",
             "|---|---:|" + "---:|---:|" * len(modes)]
    for entry in summary:
        cells = [f"{entry[mode]['examples_per_s']:,.0f} | **{entry[mode]['ratio_median']:.2f}x** "
                 f"({entry[mode]['ratio_min']:.2f}-{entry[mode]['ratio_max']:.2f})" for mode in modes]
        lines.append(f"| {entry['model']} | {entry['reference']:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    results = RESULTS_DIR / f"reference_side_by_side_{FLAGS.table}.json"
    markers = (f"<!-- reference_side_by_side_{FLAGS.table}:begin -->",
               f"<!-- reference_side_by_side_{FLAGS.table}:end -->")
    if FLAGS.docs_only:
        saved = json.loads(results.read_text())
        modes = [mode for mode in ("sparse", "dense") if mode in saved["summary"][0]]
        write_between_markers(FLAGS.docs, *markers, markdown(saved["summary"], modes, saved["measured"],
                                                             saved["torch"], saved["conditions"]))
        return
    if not FLAGS.reference_checkout or not FLAGS.reference_python:
        raise app.UsageError("--reference_checkout and --reference_python are required (see the set-up above).")
    if not (pathlib.Path(FLAGS.reference_checkout) / "torchfm").is_dir():
        raise app.UsageError(f"--reference_checkout={FLAGS.reference_checkout} has no torchfm/ folder.")
    check_scheduling_flags(FLAGS)
    torch_version = subprocess.run([FLAGS.reference_python, "-c", "import torch; print(torch.__version__)"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    with cpu_load(FLAGS.load, FLAGS.load_kind):
        measurements = run_rounds()
    summary = summarize(measurements, FLAGS.modes)
    measured = time.strftime("%Y-%m-%d")
    conditions = scheduling_conditions(FLAGS.load, FLAGS.load_kind, FLAGS.isolate)
    table = markdown(summary, FLAGS.modes, measured, torch_version, conditions)
    print(table)
    if FLAGS.write:
        results.write_text(json.dumps({"argv": sys.argv[1:], "measured": measured, "torch": torch_version,
                                       "conditions": conditions, "summary": summary, "rounds": measurements},
                                      indent=1))
        write_between_markers(FLAGS.docs, *markers, table)


if __name__ == "__main__":
    app.run(main)
