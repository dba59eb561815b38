"""The scaling study's outputs from its finished runs: runs.csv, table.md (paper Table 1 layout), plots, fidelity.md.

Example:
    >>> format_cell([0.7717, 0.7746, 0.7688], seeds_asked=3)
    '0.7717 ± 0.0024'
"""

import csv
import json
import math
import pathlib
import statistics
from typing import Dict, List, Sequence

COLUMNS = ["dataset", "model", "embedding", "scale", "num_sets", "width", "seed", "embedding_updates", "shuffle",
           "epochs", "best_epoch", "wall_seconds", "num_parameters", "val_auc", "val_logloss", "test_auc",
           "test_logloss", "ia_mean", "ia_min", "ia_set_mean", "rankme_mean", "rankme_min", "me_is_se"]


def load_records(runs_dir: pathlib.Path) -> List[dict]:
    """The `record.json` of every finished run under `runs_dir`, sorted by run folder."""
    return [json.loads(path.read_text()) for path in sorted(pathlib.Path(runs_dir).glob("*/record.json"))]


def mean_std(values: Sequence[float]):
    """(mean, population std) — the reference's convention (numpy.std)."""
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def format_cell(values: Sequence[float], seeds_asked: int, digits: int = 4) -> str:
    """"mean ± std", with "(n=k)" when fewer seeds than asked finished; "—" when none did."""
    if not values:
        return "—"
    mean, std = mean_std(values)
    cell = f"{mean:.{digits}f} ± {std:.{digits}f}"
    return cell if len(values) >= seeds_asked else f"{cell} (n={len(values)})"


def _values(records, model, embedding, scale, key):
    # ME at 1x is one set of width K: the SE 1x runs are that configuration.
    embedding = "se" if scale == 1 else embedding
    return [record[key] for record in records
            if (record["model"], record["embedding"], record["scale"]) == (model, embedding, scale)]


def _plan(runs):
    models = list(dict.fromkeys(run.model for run in runs))
    scales = sorted({run.scale for run in runs})
    seeds = len({run.seed for run in runs})
    return models, scales, seeds


def markdown_table(records, runs, key: str, digits: int = 4) -> str:
    """One row per model x {SE, ME}, one column per scale; ME 1x repeats SE 1x (marked "= SE")."""
    models, scales, seeds = _plan(runs)
    lines = ["| model | " + " | ".join(f"{scale}x" for scale in scales) + " |",
             "|---|" + "---|" * len(scales)]
    for model in models:
        for embedding in ("se", "me"):
            cells = []
            for scale in scales:
                cell = format_cell(_values(records, model, embedding, scale, key), seeds, digits)
                cells.append(f"{cell} (= SE)" if embedding == "me" and scale == 1 and cell != "—" else cell)
            lines.append(f"| {embedding.upper()}-{model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(path: pathlib.Path, records: List[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow({**{column: record.get(column, "") for column in COLUMNS},
                             "shuffle": record.get("shuffle", True),
                             "me_is_se": "yes" if record["scale"] == 1 else ""})


REFERENCE_FIELDS = ("model", "embedding", "scale", "mean", "std")
REFERENCE_OPTIONAL = ("logloss_mean", "logloss_std")


def load_reference(path) -> dict:
    """Reads a reference-results JSON for `fidelity_table`: `{"protocol": {...}, "results": [row, ...]}` (or just the
    list of rows). A row has `model`, `embedding` ("se"/"me"), `scale`, `mean`, `std` (test AUC over seeds) and
    optionally `logloss_mean`, `logloss_std`, `source`; `protocol` may give `shuffle` and `embedding_updates` of the
    reference's runs, which the table checks our runs against.

    Example:
        >>> load_reference("docs/results/reference_ml100k.json")["protocol"]["shuffle"]  # doctest: +SKIP
        False
    """
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--reference: cannot read {path} as JSON ({error}).") from error
    if isinstance(data, list):
        data = {"protocol": {}, "results": data}
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ValueError(f"--reference: {path} must hold a list of result rows or an object with a \"results\" list.")
    for index, row in enumerate(data["results"]):
        problems = [f"`{key}` missing" for key in REFERENCE_FIELDS if key not in row]
        problems += [f"`{key}`={row[key]!r} is not a number" for key in ("scale", "mean", "std", *REFERENCE_OPTIONAL)
                     if key in row and (isinstance(row[key], bool) or not isinstance(row[key], (int, float)))]
        if row.get("embedding") not in (None, "se", "me"):
            problems.append(f"`embedding`={row['embedding']!r} is not \"se\" or \"me\"")
        if problems:
            raise ValueError(f"--reference: {path}, result row {index}: {'; '.join(problems)}. Expected "
                             "{\"model\", \"embedding\": \"se\"|\"me\", \"scale\", \"mean\", \"std\"} "
                             "(test AUC over seeds), optionally \"logloss_mean\", \"logloss_std\".")
    data.setdefault("protocol", {})
    return data


def _protocol_note(records, protocol: dict) -> str:
    """A line naming our runs' protocol, and a warning where it differs from the reference's."""
    ours = {"shuffle": sorted({bool(record.get("shuffle", True)) for record in records}),
            "embedding_updates": sorted({record.get("embedding_updates", "dense") for record in records})}
    text = ("Our runs: " + ("per-epoch reshuffle" if ours["shuffle"] == [True] else "fixed epoch order (--noshuffle)"
                            if ours["shuffle"] == [False] else "mixed epoch orders")
            + f", {'/'.join(ours['embedding_updates'])} embedding updates.")
    differs = [key for key in ("shuffle", "embedding_updates") if key in protocol and ours[key] != [protocol[key]]]
    if differs:
        text += (f" **Warning: the reference ran with {', '.join(f'{key}={protocol[key]}' for key in differs)}; "
                 "the comparison is not like for like** (docs/fidelity.md).")
    return text


def fidelity_table(records, reference) -> str:
    """Ours beside the reference's figures (test AUC, and log loss where the reference has it), with the difference
    in units of the larger seed std; `reference` is `load_reference`'s result (or its list of rows)."""
    if isinstance(reference, list):
        reference = {"protocol": {}, "results": reference}
    lines = [_protocol_note(records, reference["protocol"]), "",
             "| model | scale | ours (test AUC) | reference | difference | difference / std | ours (log loss) | "
             "reference | difference / std |", "|---|---:|---|---|---:|---:|---|---|---:|"]
    for entry in reference["results"]:
        ours = _values(records, entry["model"], entry["embedding"], entry["scale"], "test_auc")
        if not ours:
            continue
        mean, std = mean_std(ours)
        difference = mean - entry["mean"]
        cells = [f"{format_cell(ours, 0)} | {entry['mean']:.4f} ± {entry['std']:.4f} | {difference:+.4f} | "
                 f"{difference / max(std, entry['std'], 1e-12):+.1f}"]
        losses = _values(records, entry["model"], entry["embedding"], entry["scale"], "test_logloss")
        if "logloss_mean" in entry:
            loss_mean, loss_std = mean_std(losses)
            reference_std = entry.get("logloss_std", 0.0)
            cells.append(f"{format_cell(losses, 0)} | {entry['logloss_mean']:.4f} ± {reference_std:.4f} | "
                         f"{(loss_mean - entry['logloss_mean']) / max(loss_std, reference_std, 1e-12):+.1f}")
        else:
            cells.append(f"{format_cell(losses, 0)} | — | —")
        name = f"{entry['embedding'].upper()}-{entry['model']}"
        lines.append(f"| {name} | {entry['scale']}x | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(path: pathlib.Path, records, runs, key: str, label: str) -> None:
    """One panel per model: `key` against the scale factor, SE and ME, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, scales, _ = _plan(runs)
    columns = min(4, len(models))
    rows = math.ceil(len(models) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    for axis, model in zip(axes.flat, models):
        for embedding, color in (("se", "tab:blue"), ("me", "tab:red")):
            points = [(scale, mean_std(values)) for scale in scales
                      if (values := _values(records, model, embedding, scale, key))]
            if points:
                axis.errorbar([p[0] for p in points], [p[1][0] for p in points], yerr=[p[1][1] for p in points],
                              marker="o", capsize=3, color=color, label=embedding.upper())
        axis.set_xscale("log")
        axis.set_xticks(scales, [f"{scale}x" for scale in scales])
        axis.set_title(model)
        axis.set_xlabel("scale")
        axis.set_ylabel(label)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(models):]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _ranks(values: Sequence[float]):
    import numpy as np

    return np.argsort(np.argsort(np.asarray(values, dtype=float), kind="stable"), kind="stable").astype(float)


def metric_agreement(records: List[dict]) -> Dict[str, float]:
    """How far IA and RankMe agree on a study: the Spearman correlation of their per-run means over all runs, and,
    over the SE/ME pairs of one model, scale and seed, the share where both rank ME against SE the same way.

    Example:
        >>> records = [{"model": "dnn", "embedding": e, "scale": 4, "seed": 0, "ia_mean": ia, "rankme_mean": r}
        ...            for e, ia, r in (("se", 10.0, 30.0), ("me", 12.0, 29.0))]
        >>> metric_agreement(records)
        {'runs': 2, 'spearman': -1.0, 'pairs': 1, 'same_direction': 0.0}
    """
    import numpy as np

    usable = [r for r in records if "rankme_mean" in r]
    spearman = math.nan
    if len(usable) > 1:
        spearman = float(np.corrcoef(_ranks([r["ia_mean"] for r in usable]),
                                     _ranks([r["rankme_mean"] for r in usable]))[0, 1])
    by_key = {(r["model"], r["embedding"], r["scale"], r["seed"]): r for r in usable}
    pairs = [(se, by_key[(model, "me", scale, seed)]) for (model, embedding, scale, seed), se in by_key.items()
             if embedding == "se" and (model, "me", scale, seed) in by_key]
    same = [(me["ia_mean"] > se["ia_mean"]) == (me["rankme_mean"] > se["rankme_mean"]) for se, me in pairs]
    return {"runs": len(usable), "spearman": round(spearman, 4), "pairs": len(pairs),
            "same_direction": round(sum(same) / len(same), 4) if same else math.nan}


def write_report(out: pathlib.Path, records: List[dict], runs, reference=None) -> Dict[str, str]:
    """Writes runs.csv, table.md, auc_vs_scale.png, ia_vs_scale.png (and fidelity.md with a reference: a JSON path or
    `load_reference`'s result)."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", records)
    tables = {"test AUC": markdown_table(records, runs, "test_auc"),
              "test log loss": markdown_table(records, runs, "test_logloss"),
              "mean per-field IA of the [D_i, M*K] embeddings": markdown_table(records, runs, "ia_mean", digits=2)}
    if records and all("rankme_mean" in record for record in records):  # studies recorded before RankMe lack it
        tables["mean per-field RankMe of the [D_i, M*K] embeddings"] = markdown_table(records, runs, "rankme_mean",
                                                                                       digits=2)
    finished = len(records)
    text = [f"{finished} finished runs (mean ± population std over seeds; SE at scale s has width s*K, ME has s "
            "sets of width K).", ""]
    for title, table in tables.items():
        text += [f"### {title}", "", table, ""]
    if "mean per-field RankMe of the [D_i, M*K] embeddings" in tables:
        agreement = metric_agreement(records)
        text += [f"IA and RankMe: Spearman {agreement['spearman']:+.2f} over the {agreement['runs']} runs' means; "
                 f"over {agreement['pairs']} SE/ME pairs (same model, scale, seed) they order ME against SE the "
                 f"same way in {agreement['same_direction']:.0%} of them.", ""]
    (out / "table.md").write_text("\n".join(text))
    if records:
        plot(out / "auc_vs_scale.png", records, runs, "test_auc", "test AUC")
        plot(out / "ia_vs_scale.png", records, runs, "ia_mean", "mean per-field IA")
    if reference:
        reference = reference if isinstance(reference, dict) else load_reference(reference)
        (out / "fidelity.md").write_text(fidelity_table(records, reference) + "\n")
    return tables


def comparison_table(records_a: List[dict], records_b: List[dict], label_a: str, label_b: str,
                     key: str = "test_auc") -> str:
    """Configurations finished in both studies: A and B (mean ± std over seeds), B - A, and B - A over the larger std.

    Example:
        >>> a = [{"model": "dnn", "embedding": "se", "scale": 1, "test_auc": v} for v in (0.70, 0.72)]
        >>> b = [{"model": "dnn", "embedding": "se", "scale": 1, "test_auc": v} for v in (0.73, 0.75)]
        >>> comparison_table(a, b, "dense", "sparse").splitlines()[-1]
        '| SE-dnn | 1x | 0.7100 ± 0.0100 | 0.7400 ± 0.0100 | +0.0300 | +3.0 |'
    """
    configurations = sorted({(r["model"], r["embedding"], r["scale"]) for r in records_a}
                            & {(r["model"], r["embedding"], r["scale"]) for r in records_b},
                            key=lambda c: (c[0], c[2], c[1] == "me"))
    lines = [f"| model | scale | {label_a} | {label_b} | {label_b} - {label_a} | difference / std |",
             "|---|---:|---|---|---:|---:|"]
    for model, embedding, scale in configurations:
        a, b = (_values(records, model, embedding, scale, key) for records in (records_a, records_b))
        (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
        lines.append(f"| {embedding.upper()}-{model} | {scale}x | {format_cell(a, 0)} | {format_cell(b, 0)} | "
                     f"{mean_b - mean_a:+.4f} | {(mean_b - mean_a) / max(std_a, std_b, 1e-12):+.1f} |")
    return "\n".join(lines)


def main(argv) -> None:
    """`python -m benchmarks.quality.scaling_report --study_a=A --study_b=B`: the comparison table of two studies."""
    from absl import flags

    del argv
    values = flags.FLAGS
    print(comparison_table(load_records(pathlib.Path(values.study_a) / "runs"),
                           load_records(pathlib.Path(values.study_b) / "runs"), *values.labels, key=values.key))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("study_a", None, "Output folder of study A (with runs/).", required=True)
    flags.DEFINE_string("study_b", None, "Output folder of study B.", required=True)
    flags.DEFINE_list("labels", ["A", "B"], "Column labels of A and B.")
    flags.DEFINE_string("key", "test_auc", "Record field to compare.")
    app.run(main)
