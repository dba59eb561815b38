"""Matplotlib figures of the collapse diagnostics (the paper's Fig. 1b, 2, 3, 4 and 8).

Every function takes diagnostics objects or arrays, returns a `matplotlib.figure.Figure` and, given `path`, also saves
it (PNG, SVG or PDF by extension). Figures are made with the object-oriented API on the Agg canvas, so nothing needs a
display and the global pyplot state is never touched.
"""

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tf_multiembed import types
from tf_multiembed.diagnostics.field_analysis import EmbeddingDiagnostics
from tf_multiembed.diagnostics.pairwise import PairwiseDiagnostics

if TYPE_CHECKING:
    from tf_multiembed.diagnostics.toy import ToyCollapseResult


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finish(figure: Figure, path: Optional[types.PathLike]) -> Figure:
    if path is not None:
        figure.savefig(str(path), dpi=110)
    return figure


def _field_order(diagnostics: EmbeddingDiagnostics) -> np.ndarray:
    """Field indices sorted by cardinality (ascending), as on the x-axis of Fig. 2."""
    return np.argsort(np.asarray(diagnostics.vocabulary_sizes), kind="stable")


def plot_singular_spectra(diagnostics: EmbeddingDiagnostics, set_index: Optional[int] = None,
                          fields: Optional[Sequence[int]] = None, path: Optional[types.PathLike] = None,
                          max_labeled: int = 10) -> Figure:
    """Fig. 1b: normalised singular values sigma_k / sigma_max of each field, one line per field.

    Up to `max_labeled` fields get a colour and a legend entry each (name, rows, IA). With more (Criteo's 39), every
    field is still drawn, thin and grey, and the `max_labeled // 2` most and least abundant fields (by IA of the drawn
    matrices) are coloured and named in a legend beside the axes: the two ends of the collapse range, readable.

    Args:
        diagnostics: from `analyze_embeddings`.
        set_index: which set to draw; None draws each field's concatenation across sets.
        fields: field indices to draw (default all).
        path: optional file to save to.
        max_labeled: the most fields with a colour and legend entry of their own (at least 2).

    Example:
        >>> plot_singular_spectra(analyze_embeddings(model), path="spectra.png")  # doctest: +SKIP
    """
    if isinstance(max_labeled, bool) or not isinstance(max_labeled, int) or max_labeled < 2:
        raise ValueError(f"plot_singular_spectra: `max_labeled` must be an integer >= 2, received {max_labeled!r}.")
    spectra = diagnostics.concat_spectra if set_index is None else diagnostics.set_spectra[:, set_index]
    abundance = diagnostics.concat_abundance if set_index is None else diagnostics.set_abundance[:, set_index]
    fields = list(range(diagnostics.num_fields) if fields is None else fields)
    labeled = fields
    if len(fields) > max_labeled:
        by_abundance = sorted(fields, key=lambda field: (np.nan_to_num(abundance[field], nan=-np.inf), field))
        labeled = by_abundance[-(max_labeled // 2):][::-1] + by_abundance[:max_labeled // 2]
    colors = dict(zip(labeled, _colors(len(labeled))))
    crowded = len(labeled) < len(fields)
    figure = _figure(8.6 if crowded else 6.4, 4.0)
    axes = figure.add_subplot()
    lines = {}
    for field in fields:  # in field order, so lines[i] is the i-th field drawn
        values = spectra[field]
        values = values[values > 0]
        label = f"{diagnostics.field_names[field]} (D={diagnostics.vocabulary_sizes[field]}, IA {abundance[field]:.1f})"
        lines[field], = axes.plot(np.arange(1, values.size + 1), values, color=colors.get(field, "#c8c8c8"),
                                  linewidth=1.0 if field in colors else 0.6, label=label,
                                  zorder=3 if field in colors else 2)
    axes.set_yscale("log")
    axes.set_xlabel("singular value index k")
    axes.set_ylabel(r"$\sigma_k / \sigma_{max}$")
    which = "sets concatenated" if set_index is None else f"set {set_index}"
    width = diagnostics.total_width if set_index is None else diagnostics.embedding_dim
    axes.set_title(f"Singular spectra per field ({which}, width {width})", fontsize=10)
    ordered = [lines[field] for field in labeled]  # when crowded: most abundant first, then least
    if crowded:
        half = max_labeled // 2
        axes.legend(handles=ordered, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    title=f"{half} most and {half} least abundant\nof {len(fields)} fields (others grey)",
                    title_fontsize=7)
    else:
        axes.legend(handles=ordered, fontsize=7)
    return _finish(figure, path)


def _per_field_vs_random(diagnostics: EmbeddingDiagnostics, learned: Any, random: Any, color: str, metric: str,
                         short: str, path: Optional[types.PathLike]) -> Figure:
    """Bars per field (sorted by cardinality): `random` (grey; skipped when None) beside `learned`."""
    order = _field_order(diagnostics)
    positions = np.arange(order.size)
    figure = _figure(max(6.4, 0.25 * order.size + 2), 4.0)
    axes = figure.add_subplot()
    if random is not None:
        axes.bar(positions - 0.2, np.asarray(random)[order], width=0.4, color="#bbbbbb", label="random matrix")
    axes.bar(positions + 0.2, np.asarray(learned)[order], width=0.4, color=color, label="learned")
    axes.set_xticks(positions)
    axes.set_xticklabels([diagnostics.field_names[i] for i in order], rotation=90, fontsize=7)
    axes.set_xlabel("field (sorted by cardinality)")
    axes.set_ylabel(metric)
    axes.set_title(f"{short} per field vs random (width {diagnostics.total_width})")
    axes.legend()
    return _finish(figure, path)


def plot_abundance_vs_random(diagnostics: EmbeddingDiagnostics, path: Optional[types.PathLike] = None) -> Figure:
    """Fig. 2: per-field IA of the learned embeddings vs random matrices of the same shape, fields by cardinality.

    Example:
        >>> plot_abundance_vs_random(analyze_embeddings(model))  # doctest: +SKIP
    """
    return _per_field_vs_random(diagnostics, diagnostics.concat_abundance, diagnostics.random_concat_abundance,
                                "#1f77b4", "information abundance", "IA", path)


def plot_effective_rank_vs_random(diagnostics: EmbeddingDiagnostics, path: Optional[types.PathLike] = None) -> Figure:
    """Per-field effective rank (RankMe) of the learned embeddings vs random matrices of the same shape.

    The same layout as `plot_abundance_vs_random`; the random bars are missing for diagnostics read from reports
    written before RankMe existed.

    Example:
        >>> plot_effective_rank_vs_random(analyze_embeddings(model))  # doctest: +SKIP
    """
    return _per_field_vs_random(diagnostics, diagnostics.concat_effective_rank,
                                diagnostics.random_concat_effective_rank, "#ff7f0e", "effective rank (RankMe)",
                                "RankMe", path)


def plot_pairwise_heatmap(pairwise: PairwiseDiagnostics, set_index: int = 0,
                          path: Optional[types.PathLike] = None) -> Figure:
    """Fig. 3: the N x N heatmap of IA(E_i^{->j}), fields sorted by IA(E_i), with the sums over i and over j.

    Example:
        >>> plot_pairwise_heatmap(pairwise_diagnostics(model))  # doctest: +SKIP
    """
    matrix = pairwise.projected_abundance[set_index]
    order = np.argsort(np.nan_to_num(pairwise.field_abundance[set_index], nan=-np.inf), kind="stable")
    matrix = matrix[np.ix_(order, order)]
    names = [pairwise.field_names[i] for i in order]
    figure = _figure(7.5, 6.5)
    grid = figure.add_gridspec(2, 2, width_ratios=(8, 1), height_ratios=(1, 8))
    heat = figure.add_subplot(grid[1, 0])
    image = heat.imshow(matrix, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=heat, location="bottom", shrink=0.6, label=r"IA($E_i^{\to j}$)")
    ticks = np.arange(len(names))
    fontsize = 7 if len(names) <= 40 else 5
    heat.set_xticks(ticks)
    heat.set_xticklabels(names, rotation=90, fontsize=fontsize)
    heat.set_yticks(ticks)
    heat.set_yticklabels(names, fontsize=fontsize)
    heat.set_xlabel("field j (sorted by IA($E_j$))")
    heat.set_ylabel("field i (sorted by IA($E_i$))")
    top = figure.add_subplot(grid[0, 0], sharex=heat)
    top.bar(ticks, np.nansum(matrix, axis=0), color="#555555")
    top.set_ylabel(r"$\Sigma_i$", fontsize=8)
    top.tick_params(labelbottom=False)
    side = figure.add_subplot(grid[1, 1], sharey=heat)
    side.barh(ticks, np.nansum(matrix, axis=1), color="#555555")
    side.set_xlabel(r"$\Sigma_j$", fontsize=8)
    side.tick_params(labelleft=False)
    figure.suptitle(f"Interaction-projected IA, {pairwise.source}, set {set_index}")
    return _finish(figure, path)


def plot_weight_norms(pairwise: PairwiseDiagnostics, path: Optional[types.PathLike] = None,
                      max_sets: int = 4) -> Figure:
    """Fig. 8c: heatmaps of the set-wise block norms ||W^{(m)}_{i->j}||_F, one panel per set (first `max_sets`).

    Example:
        >>> plot_weight_norms(pairwise_diagnostics(model))  # doctest: +SKIP
    """
    if pairwise.weight_norms is None:
        raise ValueError(f"plot_weight_norms: {pairwise.source} has no weight norms (only DCNv2 cross layers do).")
    num_panels = min(pairwise.num_sets, max_sets)
    figure = _figure(3.4 * num_panels + 0.8, 3.6)
    axes = figure.subplots(1, num_panels, squeeze=False)[0]
    # One colour scale over the panels shown, spanning their values, so that differences between sets are visible.
    low = float(np.nanmin(pairwise.weight_norms[:num_panels]))
    high = float(np.nanmax(pairwise.weight_norms[:num_panels]))
    image: Any = None  # the last panel's image, for the shared colour bar
    num_fields = len(pairwise.field_names)
    for set_index, panel in enumerate(axes):
        image = panel.imshow(pairwise.weight_norms[set_index], cmap="magma", vmin=low, vmax=high)
        panel.set_title(f"set {set_index}")
        panel.set_xlabel("field j")
        panel.set_ylabel("field i")
        if num_fields <= 20:
            panel.set_xticks(np.arange(num_fields))
            panel.set_xticklabels(pairwise.field_names, rotation=90, fontsize=6)
            panel.set_yticks(np.arange(num_fields))
            panel.set_yticklabels(pairwise.field_names, fontsize=6)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label=r"$||W^{(m)}_{i\to j}||_F$")
    return _finish(figure, path)


def plot_abundance_history(history: Sequence[Dict[str, Any]], fields: Optional[Sequence[str]] = None,
                           path: Optional[types.PathLike] = None, metric: str = "abundance") -> Figure:
    """IA (or RankMe) over training from `InformationAbundanceCallback.history`: mean and min over fields, plus
    chosen fields.

    Args:
        history: records with "step", "mean_concat_abundance", "min_concat_abundance" and "concat_abundance"
            (a `{field name: IA}` dict).
        fields: field names to draw individually (default none).
        metric: "abundance" (IA, default) or "effective_rank" (RankMe).

    Example:
        >>> plot_abundance_history(callback.history)  # doctest: +SKIP
    """
    if not history:
        raise ValueError("plot_abundance_history: the history is empty; train with the callback first.")
    if metric not in ("abundance", "effective_rank"):
        raise ValueError(f"plot_abundance_history: `metric` must be 'abundance' or 'effective_rank', received "
                         f"{metric!r}.")
    steps = [record["step"] for record in history]
    figure = _figure(6.4, 4.0)
    axes = figure.add_subplot()
    axes.plot(steps, [record[f"mean_concat_{metric}"] for record in history], color="black", label="mean over fields")
    axes.plot(steps, [record[f"min_concat_{metric}"] for record in history], color="black", linestyle="--",
              label="min over fields")
    for name in fields or ():
        axes.plot(steps, [record[f"concat_{metric}"][name] for record in history], linewidth=0.8, label=name)
    label = "information abundance" if metric == "abundance" else "effective rank (RankMe)"
    axes.set_xlabel("training step")
    axes.set_ylabel(label)
    axes.set_title(f"{label[0].upper()}{label[1:]} during training")
    axes.legend(fontsize=7)
    return _finish(figure, path)


def plot_se_vs_me(diagnostics_by_label: Dict[str, EmbeddingDiagnostics],
                  path: Optional[types.PathLike] = None) -> Figure:
    """Fig. 8a: per-field IA of several models (e.g. SE and ME of the same total width), fields by cardinality.

    Each model's IA is that of the field's rows concatenated across its sets, so an ME model of M sets of width K is
    compared with an SE model of width M*K on matrices of the same shape.

    Example:
        >>> plot_se_vs_me({"SE 1x40": se, "ME 4x10": me})  # doctest: +SKIP
    """
    if not diagnostics_by_label:
        raise ValueError("plot_se_vs_me: give at least one model's diagnostics.")
    items = list(diagnostics_by_label.items())
    reference = items[0][1]
    for label, diagnostics in items[1:]:
        if list(diagnostics.vocabulary_sizes) != list(reference.vocabulary_sizes):
            raise ValueError(
                f"plot_se_vs_me: {label!r} has vocabulary sizes {diagnostics.vocabulary_sizes}, but {items[0][0]!r} "
                f"has {reference.vocabulary_sizes}; compare models of the same data."
            )
    order = _field_order(reference)
    positions = np.arange(order.size)
    width = 0.8 / len(items)
    figure = _figure(max(6.4, 0.3 * order.size + 2), 4.0)
    axes = figure.add_subplot()
    for index, ((label, diagnostics), color) in enumerate(zip(items, _colors(len(items)))):
        axes.bar(positions - 0.4 + width * (index + 0.5), diagnostics.concat_abundance[order], width=width,
                 color=color, label=f"{label} ({diagnostics.num_sets}x{diagnostics.embedding_dim})")
    axes.set_xticks(positions)
    axes.set_xticklabels([reference.field_names[i] for i in order], rotation=90, fontsize=7)
    axes.set_xlabel("field (sorted by cardinality)")
    axes.set_ylabel("information abundance")
    axes.set_title("IA per field: single vs multi-embedding")
    axes.legend()
    return _finish(figure, path)


def plot_set_abundance(diagnostics: EmbeddingDiagnostics, path: Optional[types.PathLike] = None) -> Figure:
    """Fig. 8b: IA of each embedding set per field (one marker per set), fields by cardinality, with the random
    baseline of a single set.

    Example:
        >>> plot_set_abundance(analyze_embeddings(me_model))  # doctest: +SKIP
    """
    order = _field_order(diagnostics)
    positions = np.arange(order.size)
    figure = _figure(max(6.4, 0.25 * order.size + 2), 4.0)
    axes = figure.add_subplot()
    for set_index, color in enumerate(_colors(diagnostics.num_sets)):
        axes.plot(positions, diagnostics.set_abundance[order, set_index], marker="o", markersize=3, linewidth=0.8,
                  color=color, label=f"set {set_index}")
    axes.plot(positions, diagnostics.random_set_abundance[order], color="#999999", linestyle=":",
              label=f"random [D_i, {diagnostics.embedding_dim}]")
    axes.set_xticks(positions)
    axes.set_xticklabels([diagnostics.field_names[i] for i in order], rotation=90, fontsize=7)
    axes.set_xlabel("field (sorted by cardinality)")
    axes.set_ylabel("information abundance")
    axes.set_title(f"IA of each embedding set (width {diagnostics.embedding_dim})")
    if diagnostics.num_sets <= 12:
        axes.legend(fontsize=7)
    return _finish(figure, path)


def plot_toy_experiment(result: "ToyCollapseResult", path: Optional[types.PathLike] = None) -> Figure:
    """Fig. 4: IA(E1) over iterations for each cardinality of field 3 (a `ToyCollapseResult`).

    Example:
        >>> plot_toy_experiment(run_toy_collapse_experiment())  # doctest: +SKIP
    """
    figure = _figure(6.4, 4.0)
    axes = figure.add_subplot()
    for (size, curve), color in zip(sorted(result.abundance.items()), _colors(len(result.abundance))):
        axes.plot(result.iterations, curve, color=color, label=f"$D_3$ = {size}")
    axes.set_xlabel("iteration")
    axes.set_ylabel(r"IA($E_1$)")
    axes.set_title(f"Toy experiment: interaction with a low-rank field (K = {result.embedding_dim})")
    axes.legend()
    return _finish(figure, path)


def _colors(count: int) -> List[Any]:
    from matplotlib import colormaps

    colormap = colormaps["tab10" if count <= 10 else "viridis"]
    if count <= 10:
        return [colormap(i) for i in range(max(count, 1))]
    return [colormap(i / max(count - 1, 1)) for i in range(count)]


__all__ = [
    "plot_abundance_history",
    "plot_abundance_vs_random",
    "plot_effective_rank_vs_random",
    "plot_pairwise_heatmap",
    "plot_se_vs_me",
    "plot_set_abundance",
    "plot_singular_spectra",
    "plot_toy_experiment",
    "plot_weight_norms",
]
