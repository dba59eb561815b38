"""The report folder and `python -m tf_multiembed.diagnostics` on .keras files and exports (read by the artifact
contract); run directories of a real train.py run are covered by tests/training/test_run_contract.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_multiembed.models.dcnv2_regularized  # noqa: F401  (registers "dcnv2_regularized")
from tf_multiembed.artifacts import ArtifactError
from tf_multiembed.diagnostics import cli, loading
from tf_multiembed.diagnostics.field_analysis import analyze_embeddings
from tf_multiembed.diagnostics.pairwise import pairwise_diagnostics
from tf_multiembed.models import build_model

SIZES = [40, 3, 90]
NAMES = ["user", "gender", "item"]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    se = build_model("dcnv2", SIZES, scale=2, multi_embedding=False, field_names=NAMES, num_cross_layers=1,
                     hidden_units=(8,))
    me = build_model("dcnv2", SIZES, scale=2, field_names=NAMES, num_cross_layers=1, hidden_units=(8,))
    se.save(folder / "se.keras")
    me.save(folder / "me.keras")
    return folder, se, me


def test_report_for_se_and_me(saved_models, tmp_path):
    folder, se, me = saved_models
    output = tmp_path / "report"
    assert cli.main([str(folder / "se.keras"), str(folder / "me.keras"), "--labels", "SE 1x20,ME 2x10",
                     "--output-dir", str(output)]) == 0
    summary = (output / "summary.md").read_text()
    assert "## SE 1x20" in summary and "## ME 2x10" in summary and "## Comparison" in summary
    data = json.loads((output / "diagnostics.json").read_text())
    for label, model in (("SE 1x20", se), ("ME 2x10", me)):
        expected = analyze_embeddings(model)
        embedding = data[label]["embedding"]
        np.testing.assert_allclose(embedding["concat_abundance"], expected.concat_abundance, rtol=1e-9)
        np.testing.assert_allclose(embedding["set_abundance"], expected.set_abundance, rtol=1e-9)
        assert np.array(embedding["set_abundance"]).shape == (3, model.get_layer("multi_embedding").num_sets)
        assert embedding["field_names"] == NAMES
        np.testing.assert_allclose(data[label]["pairwise"]["weight_norms"], pairwise_diagnostics(model).weight_norms,
                                   rtol=1e-6)
        # The markdown table row of a field shows the same IA, rounded.
        item_row = next(line for line in summary.split(f"## {label}")[1].splitlines() if line.startswith("| item |"))
        assert f"| {expected.concat_abundance[2]:.2f} |" in item_row
        assert f"| {expected.concat_effective_rank[2]:.2f} | {expected.random_concat_effective_rank[2]:.2f} |" \
            in item_row
        np.testing.assert_allclose(embedding["concat_effective_rank"], expected.concat_effective_rank, rtol=1e-9)
    expected_files = {"summary.md", "diagnostics.json", "comparison.png", "SE_1x20_spectra.png",
                      "SE_1x20_ia_vs_random.png", "SE_1x20_pairwise.png", "SE_1x20_weight_norms.png",
                      "ME_2x10_spectra.png", "ME_2x10_ia_vs_random.png", "ME_2x10_set_abundance.png",
                      "ME_2x10_pairwise.png", "ME_2x10_weight_norms.png", "SE_1x20_rankme_vs_random.png",
                      "ME_2x10_rankme_vs_random.png"}
    assert expected_files <= {path.name for path in output.iterdir()}
    for name in expected_files:
        if name.endswith(".png"):
            assert f"]({name})" in summary  # every figure is linked from the summary


def test_id_counts_exclude_untrained_rows(saved_models, tmp_path):
    folder, _, me = saved_models
    counts = {f"field_{i}": np.ones(size, np.int64) for i, size in enumerate(SIZES)}
    counts["field_2"][:30] = 0  # 30 item ids never seen in training
    np.savez(tmp_path / "counts.npz", **counts)
    output = tmp_path / "report"
    cli.main([str(folder / "me.keras"), "--id-counts", str(tmp_path / "counts.npz"), "--output-dir", str(output)])
    embedding = json.loads((output / "diagnostics.json").read_text())["me"]["embedding"]
    assert embedding["analysed_rows"] == [40, 3, 60] and embedding["excluded_rows"] == [0, 0, 30]
    expected = analyze_embeddings(me, id_counts=[counts[f"field_{i}"] for i in range(3)])
    np.testing.assert_allclose(embedding["all_rows_concat_abundance"], expected.all_rows_concat_abundance)
    assert "30 rows in 1 fields were never seen in training" in (output / "summary.md").read_text()


def _prepared_data(tmp_path):
    """A CSV whose vocabularies have exactly SIZES rows (39, 2 and 89 values plus the OOV row)."""
    from tf_multiembed.data import Schema, prepare_dataset

    rng = np.random.default_rng(0)
    lines = ["clicked,user,gender,item"]
    for row in range(400):
        lines.append(f"{int(rng.random() < 0.3)},u{row % 39},g{row % 2},i{row % 89}")
    (tmp_path / "clicks.csv").write_text("\n".join(lines) + "\n")
    schema = Schema.from_dict({"name": "clicks", "delimiter": ",", "has_header": True, "label": {"column": "clicked"},
                               "fields": [{"name": name, "kind": "categorical"} for name in NAMES]})
    data = prepare_dataset(schema, tmp_path / "clicks.csv", tmp_path / "cache")
    assert list(data.vocabulary_sizes) == SIZES
    return data


def test_export_through_the_module_entry_point(tmp_path):
    from tf_multiembed.serving import export_for_serving

    data = _prepared_data(tmp_path)
    model = build_model("dcnv2_regularized", SIZES, scale=2, field_names=NAMES, num_cross_layers=1,
                        hidden_units=(8,))
    model.get_layer("set_cross").pair_scales[0].assign(np.full((2, 3, 3), 2.0, np.float32))
    export = export_for_serving(model, data.feature_encoder(), tmp_path / "export", "regularized")
    output = tmp_path / "report"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run(  # the export name's folder: its newest version
        [sys.executable, "-m", "tf_multiembed.diagnostics", str(export.parent), "--output-dir", str(output)],
        capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Report written to" in completed.stdout
    data = json.loads((output / "diagnostics.json").read_text())["regularized v1"]
    assert data["embedding"]["field_names"] == NAMES  # from the export's metadata
    np.testing.assert_allclose(data["embedding"]["concat_abundance"], analyze_embeddings(model).concat_abundance,
                               rtol=1e-9)
    # The export's saved function applies the learnable field-pair scales like the layer does.
    np.testing.assert_allclose(data["pairwise"]["weight_norms"], pairwise_diagnostics(model).weight_norms,
                               rtol=1e-6)


def test_a_savedmodel_without_the_contract_metadata_is_refused(tmp_path):
    model = build_model("dnn", SIZES, scale=2, hidden_units=(8,))
    model.export(str(tmp_path / "saved"), verbose=False)
    with pytest.raises(ArtifactError, match="tf_multiembed.json: missing; expected the tf-multiembed export metadata"):
        loading.load_for_diagnostics(tmp_path / "saved")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run([sys.executable, "-m", "tf_multiembed.diagnostics", str(tmp_path / "saved")],
                               capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 2 and "export_for_serving" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_bad_paths_and_arguments(saved_models, tmp_path):
    folder, _, _ = saved_models
    with pytest.raises(ArtifactError, match="no such file"):
        cli.main([str(tmp_path / "missing.keras")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="neither a run directory"):
        cli.main([str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="--labels has 2 entries for 1 models"):
        cli.main([str(folder / "me.keras"), "--labels", "a,b"])
    np.savez(tmp_path / "bad.npz", a=np.ones(3), b=np.ones(3))
    with pytest.raises(ValueError, match="expected arrays named field_0"):
        cli.load_id_counts(tmp_path / "bad.npz")
