"""Plots: every figure renders from diagnostics objects and is written to disk; bad input fails clearly."""

import numpy as np
import pytest
from matplotlib.figure import Figure

import tf_multiembed.models.ffm  # noqa: F401  (registers "ffm")
from tf_multiembed.diagnostics import plots
from tf_multiembed.diagnostics.field_analysis import analyze_embeddings
from tf_multiembed.diagnostics.pairwise import pairwise_diagnostics
from tf_multiembed.diagnostics.toy import run_toy_collapse_experiment
from tf_multiembed.models import build_model

SIZES = [50, 4, 300, 20]


@pytest.fixture(scope="module")
def models():
    me = build_model("dcnv2", SIZES, scale=3, num_cross_layers=1, hidden_units=(8,))
    se = build_model("dcnv2", SIZES, scale=3, multi_embedding=False, num_cross_layers=1, hidden_units=(8,))
    return se, me


def _check_png(figure, path):
    assert isinstance(figure, Figure)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_figure_renders(models, tmp_path):
    se, me = models
    se_diagnostics, me_diagnostics = analyze_embeddings(se), analyze_embeddings(me)
    pairwise = pairwise_diagnostics(me)
    cases = {
        "spectra": lambda p: plots.plot_singular_spectra(me_diagnostics, path=p),
        "spectra_set": lambda p: plots.plot_singular_spectra(me_diagnostics, set_index=2, fields=[0, 2], path=p),
        "random": lambda p: plots.plot_abundance_vs_random(me_diagnostics, path=p),
        "rankme": lambda p: plots.plot_effective_rank_vs_random(me_diagnostics, path=p),
        "heatmap": lambda p: plots.plot_pairwise_heatmap(pairwise, set_index=1, path=p),
        "norms": lambda p: plots.plot_weight_norms(pairwise, path=p),
        "se_vs_me": lambda p: plots.plot_se_vs_me({"SE": se_diagnostics, "ME": me_diagnostics}, path=p),
        "sets": lambda p: plots.plot_set_abundance(me_diagnostics, path=p),
        "ffm": lambda p: plots.plot_pairwise_heatmap(pairwise_diagnostics(build_model("ffm", SIZES)), path=p),
    }
    for name, draw in cases.items():
        path = tmp_path / f"{name}.png"
        _check_png(draw(path), path)


def test_figures_show_the_data(models):
    _, me = models
    diagnostics = analyze_embeddings(me)
    figure = plots.plot_abundance_vs_random(diagnostics)
    axes = figure.axes[0]
    # Bars follow cardinality order: fields 1 (D=4), 3 (20), 0 (50), 2 (300); second bar group = learned IA.
    learned = [patch.get_height() for patch in axes.containers[1]]
    np.testing.assert_allclose(learned, diagnostics.concat_abundance[[1, 3, 0, 2]])
    assert [tick.get_text() for tick in axes.get_xticklabels()] == ["field_1", "field_3", "field_0", "field_2"]
    spectra = plots.plot_singular_spectra(diagnostics)
    line = spectra.axes[0].lines[1]  # field 1 has 4 rows, so 4 nonzero singular values
    np.testing.assert_allclose(line.get_ydata(), diagnostics.concat_spectra[1, :4])


def test_history_and_toy_plots(tmp_path):
    history = [{"step": s, "mean_concat_abundance": 5.0 - s / 10, "min_concat_abundance": 2.0,
                "concat_abundance": {"a": 4.0, "b": 3.0}} for s in range(0, 30, 10)]
    figure = plots.plot_abundance_history(history, fields=["b"], path=tmp_path / "history.png")
    _check_png(figure, tmp_path / "history.png")
    np.testing.assert_allclose(figure.axes[0].lines[0].get_ydata(), [5.0, 4.0, 3.0])
    for record in history:
        record.update({"mean_concat_effective_rank": 7.0, "min_concat_effective_rank": 1.5 + record["step"] / 10,
                       "concat_effective_rank": {"a": 6.0, "b": 2.0}})
    figure = plots.plot_abundance_history(history, fields=["b"], path=tmp_path / "rank.png", metric="effective_rank")
    np.testing.assert_allclose(figure.axes[0].lines[1].get_ydata(), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(figure.axes[0].lines[2].get_ydata(), [2.0, 2.0, 2.0])
    assert figure.axes[0].get_ylabel() == "effective rank (RankMe)"
    with pytest.raises(ValueError, match="`metric` must be 'abundance' or 'effective_rank', received 'ia'"):
        plots.plot_abundance_history(history, metric="ia")
    toy = run_toy_collapse_experiment(num_rows=10, embedding_dim=3, num_iterations=20, record_every=10)
    _check_png(plots.plot_toy_experiment(toy, path=tmp_path / "toy.png"), tmp_path / "toy.png")


def test_bad_input(models):
    se, me = models
    with pytest.raises(ValueError, match="history is empty"):
        plots.plot_abundance_history([])
    ffm_pairs = pairwise_diagnostics(build_model("ffm", SIZES))
    with pytest.raises(ValueError, match="no weight norms"):
        plots.plot_weight_norms(ffm_pairs)
    other = analyze_embeddings(build_model("dcnv2", [5, 6, 7, 8], num_cross_layers=1, hidden_units=(8,)))
    with pytest.raises(ValueError, match="compare models of the same data"):
        plots.plot_se_vs_me({"a": analyze_embeddings(me), "b": other})
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_se_vs_me({})


def test_spectra_of_many_fields_name_the_most_and_least_abundant_ones():
    # 39 fields, as Criteo: every field drawn, ten of them coloured and named beside the axes.
    sizes = [30 + 7 * index for index in range(39)]
    diagnostics = analyze_embeddings(build_model("dnn", sizes, scale=2, hidden_units=(4,)))
    figure = plots.plot_singular_spectra(diagnostics)
    axes = figure.axes[0]
    assert len(axes.lines) == 39
    order = sorted(range(39), key=lambda field: diagnostics.concat_abundance[field])
    expected = order[-5:][::-1] + order[:5]
    legend = axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [
        f"field_{field} (D={sizes[field]}, IA {diagnostics.concat_abundance[field]:.1f})" for field in expected]
    assert legend.get_title().get_text() == "5 most and 5 least abundant\nof 39 fields (others grey)"
    grey = [line for field, line in enumerate(axes.lines) if field not in expected]
    assert len(grey) == 29 and {line.get_color() for line in grey} == {"#c8c8c8"}
    # Few fields: each in the legend, in field order.
    few = plots.plot_singular_spectra(diagnostics, fields=[3, 1, 2])
    assert [text.get_text().split(" ")[0] for text in few.axes[0].get_legend().get_texts()] == [
        "field_3", "field_1", "field_2"]
    with pytest.raises(ValueError, match="`max_labeled` must be an integer >= 2, received 1"):
        plots.plot_singular_spectra(diagnostics, max_labeled=1)
