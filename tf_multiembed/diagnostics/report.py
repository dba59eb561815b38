"""A diagnostics report folder: figures, a markdown summary and the numbers as JSON, for one or several models.

Layout of `output_dir`:

    summary.md                      tables per model (per field IA, random baseline, per-set IA) and, for several
                                    models of the same data, a per-field comparison table
    diagnostics.json                {label: {"description", "embedding": EmbeddingDiagnostics.to_dict(),
                                             "pairwise": PairwiseDiagnostics.to_dict() or null}}
    <label>_spectra.png             Fig. 1b    normalised singular spectra per field
    <label>_ia_vs_random.png        Fig. 2     IA per field vs a random matrix of the same shape
    <label>_rankme_vs_random.png               effective rank (RankMe) per field vs the same random matrix
    <label>_set_abundance.png       Fig. 8b    per-set IA (multi-embedding models)
    <label>_pairwise.png            Fig. 3     interaction-projected IA heatmap, set 0 (DCNv2, FFM)
    <label>_weight_norms.png        Fig. 8c    ||W^{(m)}_{i->j}||_F per set (DCNv2)
    comparison.png                  Fig. 8a    per-field IA of all models (when their vocabularies agree)
    ia_history.png                             IA over training (when a callback history is given)
"""

import dataclasses
import json
import math
import pathlib
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from tf_multiembed import types
from tf_multiembed.diagnostics import loading
from tf_multiembed.diagnostics import pairwise as pairwise_lib
from tf_multiembed.diagnostics import plots
from tf_multiembed.diagnostics import tables as tables_lib
from tf_multiembed.diagnostics.field_analysis import EmbeddingDiagnostics, analyze_embeddings
from tf_multiembed.metadata import json_value


@dataclasses.dataclass
class ModelDiagnostics:
    """Everything the report shows about one model."""

    label: str
    description: List[str]
    embedding: EmbeddingDiagnostics
    pairwise: Optional[pairwise_lib.PairwiseDiagnostics]


def diagnose(source: Union[tables_lib.EmbeddingSource, loading.SavedModelWeights], label: str, *,
             id_counts: Optional[tables_lib.IdCounts] = None, min_count: int = 1,
             field_names: Optional[Sequence[str]] = None) -> ModelDiagnostics:
    """Per-field and pairwise diagnostics of a Keras model, `SavedModelWeights` or `EmbeddingTables`."""
    if isinstance(source, loading.SavedModelWeights):
        embedding = analyze_embeddings(source.tables, id_counts=id_counts, min_count=min_count,
                                       field_names=field_names)
        pairwise = None
        if source.cross_kernel is not None:
            pairwise = pairwise_lib.cross_projection_diagnostics(
                source.tables, source.cross_kernel, id_counts=id_counts, min_count=min_count)
        elif source.pairwise == "ffm":
            pairwise = pairwise_lib.ffm_sub_embedding_diagnostics(source.tables, id_counts=id_counts,
                                                                  min_count=min_count)
        return ModelDiagnostics(label, loading.describe(source), embedding, pairwise)
    embedding = analyze_embeddings(source, id_counts=id_counts, min_count=min_count, field_names=field_names)
    pairwise = None
    description = [f"{type(source).__name__}"]
    if hasattr(source, "layers"):
        pairwise = pairwise_lib.pairwise_diagnostics(source, id_counts=id_counts, min_count=min_count,
                                                     field_names=field_names)
        description = loading.describe(source)
        if pairwise is not None and pairwise.source == "ffm_sub_embeddings":
            description.append(
                "FFM: the 'sets' are field-aware sub-tables (set m*N + j holds the rows every field uses against "
                "field j); a field's own slot j = i is never trained and keeps its initial values."
            )
    return ModelDiagnostics(label, description, embedding, pairwise)


def _file_label(label: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_")
    return cleaned or "model"


def _fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def field_table_markdown(diagnostics: EmbeddingDiagnostics) -> str:
    """The per-field markdown table of one model (fields in model order).

    Columns: field, vocabulary size, analysed rows, IA of the concatenation (width M*K), IA of a random matrix of the
    same shape, their ratio, and for ME the mean and minimum IA over sets (width K). A model with embedded numeric
    fields gets a last row in italics, "numeric (embedded, F_e rows)": those fields' value vectors as one table.

    Example:
        >>> print(field_table_markdown(analyze_embeddings(model)))  # doctest: +SKIP
    """
    me = diagnostics.num_sets > 1
    header = ["field", "D_i", "rows", f"IA (width {diagnostics.total_width})", "random IA", "IA / random",
              "RankMe", "random RankMe"]
    if me:
        header += [f"set IA mean (width {diagnostics.embedding_dim})", "set IA min", "set RankMe mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for field in range(diagnostics.num_fields):
        ia = float(diagnostics.concat_abundance[field])
        random_ia = float(diagnostics.random_concat_abundance[field])
        ratio = ia / random_ia if math.isfinite(ia) and math.isfinite(random_ia) and random_ia > 0 else math.nan
        row = [diagnostics.field_names[field], str(diagnostics.vocabulary_sizes[field]),
               str(int(diagnostics.analysed_rows[field])), _fmt(ia), _fmt(random_ia), _fmt(ratio),
               _fmt(float(np.asarray(diagnostics.concat_effective_rank)[field])),
               _random_rank(diagnostics.random_concat_effective_rank, field)]
        if me:
            values = diagnostics.set_abundance[field]
            finite = values[np.isfinite(values)]
            ranks = np.asarray(diagnostics.set_effective_rank)[field]
            finite_ranks = ranks[np.isfinite(ranks)]
            row += [_fmt(float(finite.mean())) if finite.size else "n/a",
                    _fmt(float(finite.min())) if finite.size else "n/a",
                    _fmt(float(finite_ranks.mean())) if finite_ranks.size else "n/a"]
        lines.append("| " + " | ".join(row) + " |")
    numeric = diagnostics.numeric
    if numeric is not None:  # the embedded numeric fields as one table: a last row, in italics (not a field)
        row = [f"*{numeric.name}*", str(numeric.num_fields), str(numeric.num_fields),
               _fmt(numeric.concat_abundance), _fmt(numeric.random_concat_abundance),
               _fmt(_ratio(numeric.concat_abundance, numeric.random_concat_abundance)),
               _fmt(numeric.concat_effective_rank), _fmt(numeric.random_concat_effective_rank)]
        if me:
            row += [_fmt(_finite_mean(numeric.set_abundance)), _fmt(_finite_min(numeric.set_abundance)),
                    _fmt(_finite_mean(numeric.set_effective_rank))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _finite_mean(values: np.ndarray) -> float:
    finite = np.asarray(values, dtype=np.float64)[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _finite_min(values: np.ndarray) -> float:
    finite = np.asarray(values, dtype=np.float64)[np.isfinite(values)]
    return float(finite.min()) if finite.size else math.nan


def _random_rank(values: Optional[np.ndarray], field: int) -> str:
    return "n/a" if values is None else _fmt(float(np.asarray(values)[field]))


# Thresholds of the plain-language reading, on the ratios (IA / random IA, RankMe / random RankMe). They are a
# reading aid chosen for this report, not results of a study: a random U(-1, 1) matrix of the same shape is 1.0.
NEAR_RANDOM = 0.9
COLLAPSED = 0.5

# What the studies in docs/scaling.md found so far, quoted in every reading (update with the studies).
STUDY_FINDINGS = (
    "What this project's studies found (docs/scaling.md): ME beat SE at equal width for DNN on 1M-row synthetic "
    "data (+0.0021 to +0.0042 test AUC) and, slightly, on the high-order synthetic data (+0.0013 at 10x); on "
    "MovieLens-100K nothing beat SE (ME within seed noise at 2x-4x, below at 10x); on the high-order synthetic data "
    "SE-DCNv2 10x beat ME-DCNv2 10x (0.7024 vs 0.6937). ME's IA was higher nearly everywhere, so a less collapsed "
    "table does not by itself mean a better model: decide on validation AUC. On MovieLens-100K (3 seeds, 4x and "
    "10x) the paper's penalties at 1e-4 changed nothing measurable, one shared interaction over ME embeddings lost "
    "AUC and IA, and heterogeneous ME (cross + inner-product sets) had the highest IA and the lowest AUC; none "
    "beat SE-DCNv2 4x. Try ME first where fields are many and data is large; keep SE if validation says so."
)


def field_verdict(ia_ratio: float, rank_ratio: float) -> str:
    """"near random", "partly collapsed", "collapsed" or "undefined" from the two ratios to the random baseline.

    Example:
        >>> field_verdict(0.95, 0.97), field_verdict(0.3, 0.6), field_verdict(0.3, 0.4)
        ('near random', 'partly collapsed', 'collapsed')
    """
    ratios = [value for value in (ia_ratio, rank_ratio) if math.isfinite(value)]
    if not ratios:
        return "undefined"
    if min(ratios) >= NEAR_RANDOM:
        return "near random"
    if max(ratios) < COLLAPSED:
        return "collapsed"
    return "partly collapsed"


def _ratio(value: float, baseline: Optional[float]) -> float:
    if baseline is None or not (math.isfinite(value) and math.isfinite(baseline)) or baseline <= 0:
        return math.nan
    return value / baseline


def collapse_reading(diagnostics: EmbeddingDiagnostics) -> Dict[str, object]:
    """Per field, IA and RankMe against the random baseline of the same shape, a verdict, and what to try.

    Returns:
        `{"fields": [{"field", "ia_ratio", "rankme_ratio", "verdict"}], "counts": {verdict: n}, "advice": [lines]}`,
        and `"numeric"` (the same for the embedded numeric fields as one table, with its `ceiling`) when the model
        has embedded numeric fields.
    """
    random_ranks = diagnostics.random_concat_effective_rank
    ranks = np.asarray(diagnostics.concat_effective_rank)
    fields = []
    for field in range(diagnostics.num_fields):
        ia_ratio = _ratio(float(diagnostics.concat_abundance[field]), float(diagnostics.random_concat_abundance[field]))
        rank_ratio = _ratio(float(ranks[field]), None if random_ranks is None else float(random_ranks[field]))
        fields.append({"field": diagnostics.field_names[field], "ia_ratio": ia_ratio, "rankme_ratio": rank_ratio,
                       "verdict": field_verdict(ia_ratio, rank_ratio)})
    counts = {verdict: sum(item["verdict"] == verdict for item in fields)
              for verdict in ("collapsed", "partly collapsed", "near random", "undefined")}
    named = {verdict: [str(item["field"]) for item in fields if item["verdict"] == verdict] for verdict in counts}
    advice = [f"Per field, against a random matrix of the same shape (1.0 = random; below {COLLAPSED} on both IA and "
              f"RankMe = collapsed, {NEAR_RANDOM} or more on both = near random): "
              + ", ".join(f"{counts[v]} {v}" for v in counts if counts[v]) + "."]
    for verdict in ("collapsed", "partly collapsed"):
        if named[verdict]:
            more = len(named[verdict]) - 10
            advice.append(f"{verdict.capitalize()}: {', '.join(named[verdict][:10])}"
                          + (f" and {more} more" if more > 0 else "") + ".")
    if counts["collapsed"] + counts["partly collapsed"] == 0:
        advice.append("Nothing here looks collapsed. If training was short, the tables may simply still be near "
                      "their random initialisation (ids never seen in training stay there: pass --id-counts to "
                      "leave them out); there is no collapse to fix.")
    elif diagnostics.num_sets == 1:
        advice.append("What to try against collapse, cheapest first: the same model with multi-embedding at the same "
                      "total width (train.py --embedding=me --scale=<s>; build_model(..., multi_embedding=True)); "
                      "heterogeneous ME (--model=heterogeneous); for DCNv2 the singular-value penalty "
                      "(--model=dcnv2_singular_value). Compare with this model on validation AUC.")
    else:
        advice.append("This is already a multi-embedding model: compare it with SE at the same total width (its IA "
                      "and RankMe here are comparable to SE's) and on validation AUC; for ME-DCNv2 the "
                      "space-similarity penalty (--model=dcnv2_space_similarity) pushes the sets apart.")
    reading: Dict[str, object] = {"fields": fields, "counts": counts, "advice": advice}
    numeric = diagnostics.numeric
    if numeric is not None:  # not counted with the fields: a table of F_e rows, whose ceiling is F_e
        ia_ratio = _ratio(numeric.concat_abundance, numeric.random_concat_abundance)
        rank_ratio = _ratio(numeric.concat_effective_rank, numeric.random_concat_effective_rank)
        verdict = field_verdict(ia_ratio, rank_ratio)
        reading["numeric"] = {"field": numeric.name, "ia_ratio": ia_ratio, "rankme_ratio": rank_ratio,
                              "verdict": verdict, "ceiling": numeric.ceiling}
        advice.append(f"{numeric.name.capitalize()} (the embedded numeric fields' value vectors as one table, not "
                      f"counted above): IA {_fmt(numeric.concat_abundance)} and RankMe "
                      f"{_fmt(numeric.concat_effective_rank)} of at most {numeric.ceiling} (random: "
                      f"{_fmt(numeric.random_concat_abundance)} and {_fmt(numeric.random_concat_effective_rank)}): "
                      f"{verdict}.")
    advice.append(STUDY_FINDINGS)
    return reading


def comparison_table_markdown(results: Sequence[ModelDiagnostics]) -> str:
    """Per-field IA (and RankMe in brackets) of several models of the same data side by side (fields sorted by
    cardinality)."""
    reference = results[0].embedding
    header = ["field", "D_i"] + [
        f"{r.label} ({r.embedding.num_sets}x{r.embedding.embedding_dim})" for r in results]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for field in np.argsort(np.asarray(reference.vocabulary_sizes), kind="stable"):
        row = [reference.field_names[field], str(reference.vocabulary_sizes[field])]
        row += [f"{_fmt(float(r.embedding.concat_abundance[field]))} "
                f"({_fmt(float(np.asarray(r.embedding.concat_effective_rank)[field]))})" for r in results]
        lines.append("| " + " | ".join(row) + " |")
    means = [f"{_fmt(r.embedding.summary()['mean_concat_abundance'])} "
             f"({_fmt(r.embedding.summary()['mean_concat_effective_rank'])})" for r in results]
    lines.append("| **mean** | | " + " | ".join(means) + " |")
    return "\n".join(lines)


def _comparable(results: Sequence[ModelDiagnostics]) -> bool:
    sizes = [list(r.embedding.vocabulary_sizes) for r in results]
    return len(results) > 1 and all(s == sizes[0] for s in sizes)


def write_report(models: Mapping[str, Union[tables_lib.EmbeddingSource, loading.SavedModelWeights]],
                 output_dir: types.PathLike, *, id_counts: Optional[tables_lib.IdCounts] = None, min_count: int = 1,
                 field_names: Optional[Sequence[str]] = None, history: Optional[Sequence[Dict[str, Any]]] = None,
                 title: str = "Embedding collapse diagnostics") -> Dict[str, ModelDiagnostics]:
    """Analyses every model and writes the report folder described in the module docstring.

    Args:
        models: `{label: source}` with sources as accepted by `diagnose` (Keras models, `SavedModelWeights`,
            `EmbeddingTables`), e.g. `{"SE 1x40": se_model, "ME 4x10": me_model}`.
        output_dir: the folder to write (created if needed; existing files of the same names are replaced).
        id_counts, min_count: untrained-row exclusion (see `analyze_embeddings`), applied to every model.
        field_names: field names for every model (default: each model's own).
        history: optional `InformationAbundanceCallback.history` to plot IA over training.
        title: the markdown title.

    Returns:
        `{label: ModelDiagnostics}`.

    Example:
        >>> write_report({"SE 1x40": se_model, "ME 4x10": me_model}, "reports/ml100k")  # doctest: +SKIP
    """
    if not models:
        raise ValueError("write_report: give at least one model.")
    output = pathlib.Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    results = [diagnose(source, label, id_counts=id_counts, min_count=min_count, field_names=field_names)
               for label, source in models.items()]
    lines = [f"# {title}", "",
             "Information abundance IA(E) = sum of singular values / largest singular value, per field (the paper's "
             "Definition 1; higher = less collapsed, at most the width). `IA (width W)` is the IA of the field's rows "
             "concatenated across embedding sets; compare models only at equal width. `random IA` is the IA of a "
             "random U(-1, 1) matrix of the same shape (the paper's Fig. 2 baseline: nothing learned, nothing "
             "collapsed); IA near it after a short run mostly means the table is still close to its random "
             "initialisation, clearly below it means collapse. RankMe is the effective rank (Garrido et al. 2023): "
             "exp of the entropy of the singular values normalised to sum 1; like IA it lies between 1 and the "
             "width and is higher when less collapsed, but it weighs the shape of the whole spectrum (a long flat tail "
             "of small singular values raises RankMe much more than IA), so read both against their random "
             "baselines.", ""]
    for result in results:
        stem = _file_label(result.label)
        diagnostics = result.embedding
        summary = diagnostics.summary()
        lines += [f"## {result.label}", ""] + [f"- {line}" for line in result.description] + [
            f"- mean IA over fields: {_fmt(summary['mean_concat_abundance'])} (random: "
            f"{_fmt(summary['mean_random_concat_abundance'])}); min: {_fmt(summary['min_concat_abundance'])}",
            f"- mean RankMe over fields: {_fmt(summary['mean_concat_effective_rank'])} (random: "
            f"{_fmt(summary.get('mean_random_concat_effective_rank', math.nan))}); min: "
            f"{_fmt(summary['min_concat_effective_rank'])}",
        ]
        if diagnostics.num_sets > 1:
            lines.append(f"- per-set IA (width {diagnostics.embedding_dim}): mean "
                         f"{_fmt(summary['mean_set_abundance'])}, min {_fmt(summary['min_set_abundance'])}; "
                         f"per-set RankMe: mean {_fmt(summary['mean_set_effective_rank'])}, min "
                         f"{_fmt(summary['min_set_effective_rank'])}")
        lines += [f"- note: {note}" for note in diagnostics.notes]
        lines += ["", field_table_markdown(diagnostics), ""]
        reading = collapse_reading(diagnostics)
        lines += ["### What this says", ""] + [f"- {line}" for line in reading["advice"]] + [""]  # type: ignore
        figures: List[Tuple[str, str, Callable[..., Any]]] = [
            ("spectra", "Normalised singular spectra (Fig. 1b)", plots.plot_singular_spectra),
            ("ia_vs_random", "IA vs random (Fig. 2)", plots.plot_abundance_vs_random),
            ("rankme_vs_random", "RankMe vs random", plots.plot_effective_rank_vs_random)]
        if diagnostics.num_sets > 1:
            figures.append(("set_abundance", "Per-set IA (Fig. 8b)", plots.plot_set_abundance))
        for suffix, caption, plot in figures:
            plot(diagnostics, path=output / f"{stem}_{suffix}.png")
            lines.append(f"![{caption}]({stem}_{suffix}.png)")
        if result.pairwise is not None:
            plots.plot_pairwise_heatmap(result.pairwise, 0, path=output / f"{stem}_pairwise.png")
            lines.append(f"![Interaction-projected IA (Fig. 3)]({stem}_pairwise.png)")
            if result.pairwise.weight_norms is not None:
                plots.plot_weight_norms(result.pairwise, path=output / f"{stem}_weight_norms.png")
                lines.append(f"![Set-wise weight norms (Fig. 8c)]({stem}_weight_norms.png)")
        lines.append("")
    if _comparable(results):
        lines += ["## Comparison", "", comparison_table_markdown(results), ""]
        plots.plot_se_vs_me({r.label: r.embedding for r in results}, path=output / "comparison.png")
        lines += ["![Per-field IA of every model (Fig. 8a)](comparison.png)", ""]
    if history:
        plots.plot_abundance_history(history, path=output / "ia_history.png")
        lines += ["## During training", "", "![IA over training](ia_history.png)", ""]
        if all("mean_concat_effective_rank" in record for record in history):
            plots.plot_abundance_history(history, path=output / "rankme_history.png", metric="effective_rank")
            lines += ["![RankMe over training](rankme_history.png)", ""]
    (output / "summary.md").write_text("\n".join(lines), encoding="utf-8")
    payload = {
        r.label: {
            "description": r.description,
            "embedding": r.embedding.to_dict(),
            "reading": json_value(collapse_reading(r.embedding)),
            "pairwise": None if r.pairwise is None else r.pairwise.to_dict(),
        }
        for r in results
    }
    (output / "diagnostics.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return {r.label: r for r in results}
