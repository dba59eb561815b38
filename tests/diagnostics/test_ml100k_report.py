"""SE vs ME of the same total width, trained briefly on the real MovieLens-100K: the report's numbers and shapes."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed import data
from tf_multiembed.diagnostics import count_ids, write_report
from tf_multiembed.models import build_model


def _train(model, dataset, steps):
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    return model


def test_se_and_me_report_on_movielens(ml100k_dir, tmp_path):
    prepared = data.prepare_dataset("movielens", ml100k_dir, tmp_path / "cache")
    sizes, names = list(prepared.vocabulary_sizes), list(prepared.field_names)
    train_ids, _ = prepared.numpy_split("train")
    counts = count_ids(train_ids, sizes)
    train = prepared.train_dataset(1024, seed=0).repeat()
    tf.keras.utils.set_random_seed(0)
    # Brief training (15 steps of 1024) with a smaller head than the paper's 400-400 keeps this test fast.
    common = dict(scale=4, field_names=names, hidden_units=(128, 128))
    se = _train(build_model("dcnv2", sizes, multi_embedding=False, **common), train, 15)
    me = _train(build_model("dcnv2", sizes, multi_embedding=True, **common), train, 15)

    results = write_report({"SE 1x40": se, "ME 4x10": me}, tmp_path / "report", id_counts=counts)
    payload = json.loads((tmp_path / "report" / "diagnostics.json").read_text())
    num_fields = len(sizes)
    for label, num_sets, dim in (("SE 1x40", 1, 40), ("ME 4x10", 4, 10)):
        diagnostics = results[label].embedding
        assert (diagnostics.num_sets, diagnostics.embedding_dim, diagnostics.total_width) == (num_sets, dim, 40)
        assert diagnostics.field_names == names
        assert diagnostics.concat_abundance.shape == (num_fields,)
        assert diagnostics.set_abundance.shape == (num_fields, num_sets)
        assert diagnostics.set_spectra.shape == (num_fields, num_sets, dim)
        assert diagnostics.concat_spectra.shape == (num_fields, 40)
        assert np.all(np.isfinite(diagnostics.concat_abundance)) and np.all(np.isfinite(diagnostics.set_abundance))
        # IA lies in [1, min(rows, width)] for the full width and for every set.
        upper = np.minimum(diagnostics.analysed_rows, 40)
        assert np.all((diagnostics.concat_abundance >= 1) & (diagnostics.concat_abundance <= upper + 1e-9))
        assert np.all(diagnostics.set_abundance <= np.minimum(diagnostics.analysed_rows, dim)[:, None] + 1e-9)
        # Ids absent from the training split are excluded: analysed + excluded = vocabulary size, and only the
        # (all-rows) number includes them.
        np.testing.assert_array_equal(diagnostics.analysed_rows + diagnostics.excluded_rows, sizes)
        np.testing.assert_array_equal(diagnostics.analysed_rows, [int((c > 0).sum()) for c in counts])
        assert diagnostics.excluded_rows.sum() > 0  # e.g. items rated only in the validation/test splits
        assert np.all(np.isfinite(diagnostics.all_rows_concat_abundance))
        assert np.all(np.isfinite(diagnostics.random_concat_abundance))
        pairwise = results[label].pairwise
        assert pairwise.projected_abundance.shape == (num_sets, num_fields, num_fields)
        assert np.all(np.isfinite(pairwise.projected_abundance)) and np.all(pairwise.weight_norms > 0)
        assert payload[label]["embedding"]["concat_abundance"] == pytest.approx(
            diagnostics.concat_abundance.tolist())
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "## Comparison" in summary
    comparison = summary.split("## Comparison")[1]
    user_row = next(line for line in comparison.splitlines() if line.startswith("| user_id |"))
    assert user_row.count("|") == 5  # field, D_i, SE, ME
