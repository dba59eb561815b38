"""Embedding-collapse diagnostics: information abundance (IA), effective rank (RankMe), singular spectra,
per-field and per-set analysis, interaction-projected IA, a training callback, plots and a report command.

IA(E) = sum of singular values / largest singular value (Guo et al., ICML 2024, Definition 1), computed per field on
that field's rows of the embedding table. See docs/diagnostics.md.

Example:
    >>> from tf_multiembed.diagnostics import analyze_embeddings, information_abundance
    >>> information_abundance(np.diag([3.0, 2.0, 1.0]))
    2.0
    >>> diagnostics = analyze_embeddings(model)  # doctest: +SKIP
    >>> diagnostics.concat_abundance  # one IA per field  # doctest: +SKIP
"""

from tf_multiembed.diagnostics.abundance import (
    effective_rank,
    gram_matrix,
    information_abundance,
    normalized_spectrum,
    random_abundance,
    random_effective_rank,
    singular_values,
)
from tf_multiembed.diagnostics.callback import InformationAbundanceCallback, abundance_record
from tf_multiembed.diagnostics.field_analysis import EmbeddingDiagnostics, analyze_embeddings
from tf_multiembed.diagnostics.loading import SavedModelWeights, load_for_diagnostics, read_export
from tf_multiembed.diagnostics.pairwise import (
    PairwiseDiagnostics,
    cross_projection_diagnostics,
    ffm_sub_embedding_diagnostics,
    pairwise_diagnostics,
)
from tf_multiembed.diagnostics.plots import (
    plot_abundance_history,
    plot_abundance_vs_random,
    plot_effective_rank_vs_random,
    plot_pairwise_heatmap,
    plot_se_vs_me,
    plot_set_abundance,
    plot_singular_spectra,
    plot_toy_experiment,
    plot_weight_norms,
)
from tf_multiembed.diagnostics.report import ModelDiagnostics, diagnose, write_report
from tf_multiembed.diagnostics.tables import EmbeddingTables, count_ids
from tf_multiembed.diagnostics.toy import ToyCollapseResult, run_toy_collapse_experiment

__all__ = [
    "EmbeddingDiagnostics",
    "EmbeddingTables",
    "InformationAbundanceCallback",
    "ModelDiagnostics",
    "PairwiseDiagnostics",
    "SavedModelWeights",
    "ToyCollapseResult",
    "abundance_record",
    "analyze_embeddings",
    "count_ids",
    "cross_projection_diagnostics",
    "diagnose",
    "effective_rank",
    "ffm_sub_embedding_diagnostics",
    "gram_matrix",
    "information_abundance",
    "load_for_diagnostics",
    "normalized_spectrum",
    "pairwise_diagnostics",
    "plot_abundance_history",
    "plot_abundance_vs_random",
    "plot_effective_rank_vs_random",
    "plot_pairwise_heatmap",
    "plot_se_vs_me",
    "plot_set_abundance",
    "plot_singular_spectra",
    "plot_toy_experiment",
    "plot_weight_norms",
    "random_abundance",
    "random_effective_rank",
    "read_export",
    "run_toy_collapse_experiment",
    "singular_values",
    "write_report",
]
