"""The report folder and `python -m tf_multiembed.diagnostics` on .keras files, model directories and SavedModels."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_multiembed.models.dcnv2_regularized  # noqa: F401  (registers "dcnv2_regularized")
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
    expected_files = {"summary.md", "diagnostics.json", "comparison.png", "SE_1x20_spectra.png",
                      "SE_1x20_ia_vs_random.png", "SE_1x20_pairwise.png", "SE_1x20_weight_norms.png",
                      "ME_2x10_spectra.png", "ME_2x10_ia_vs_random.png", "ME_2x10_set_abundance.png",
                      "ME_2x10_pairwise.png", "ME_2x10_weight_norms.png"}
    assert expected_files <= {path.name for path in output.iterdir()}
    for name in expected_files:
        if name.endswith(".png"):
            assert f"]({name})" in summary  # every figure is linked from the summary


def test_model_directory_and_id_counts(saved_models, tmp_path):
    folder, _, me = saved_models
    run_dir = tmp_path / "run" / "checkpoints"
    run_dir.mkdir(parents=True)
    (run_dir / "best.keras").write_bytes((folder / "me.keras").read_bytes())
    (run_dir / "epoch_1.keras").write_bytes((folder / "se.keras").read_bytes())
    assert loading.find_keras_file(tmp_path / "run").name == "best.keras"
    counts = {f"field_{i}": np.ones(size, np.int64) for i, size in enumerate(SIZES)}
    counts["field_2"][:30] = 0  # 30 item ids never seen in training
    np.savez(tmp_path / "counts.npz", **counts)
    output = tmp_path / "report"
    cli.main([str(tmp_path / "run"), "--id-counts", str(tmp_path / "counts.npz"), "--output-dir", str(output)])
    embedding = json.loads((output / "diagnostics.json").read_text())["run"]["embedding"]
    assert embedding["analysed_rows"] == [40, 3, 60] and embedding["excluded_rows"] == [0, 0, 30]
    expected = analyze_embeddings(me, id_counts=[counts[f"field_{i}"] for i in range(3)])
    np.testing.assert_allclose(embedding["all_rows_concat_abundance"], expected.all_rows_concat_abundance)
    assert "30 rows in 1 fields were never seen in training" in (output / "summary.md").read_text()


def test_saved_model_through_the_module_entry_point(tmp_path):
    model = build_model("dcnv2_regularized", SIZES, scale=2, field_names=NAMES, num_cross_layers=1,
                        hidden_units=(8,))
    model.get_layer("set_cross").pair_scales[0].assign(np.full((2, 3, 3), 2.0, np.float32))
    model.export(str(tmp_path / "saved"), verbose=False)
    output = tmp_path / "report"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    completed = subprocess.run(
        [sys.executable, "-m", "tf_multiembed.diagnostics", str(tmp_path / "saved"), "--vocabulary-sizes",
         "40,3,90", "--field-names", "user,gender,item", "--output-dir", str(output)],
        capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Report written to" in completed.stdout
    data = json.loads((output / "diagnostics.json").read_text())["saved"]
    np.testing.assert_allclose(data["embedding"]["concat_abundance"], analyze_embeddings(model).concat_abundance,
                               rtol=1e-9)
    # The SavedModel route applies the learnable field-pair scales like the layer does.
    np.testing.assert_allclose(data["pairwise"]["weight_norms"], pairwise_diagnostics(model).weight_norms,
                               rtol=1e-6)


def test_saved_model_layout_from_sidecar_or_error(tmp_path):
    model = build_model("dnn", SIZES, scale=2, hidden_units=(8,))
    model.export(str(tmp_path / "saved"), verbose=False)
    with pytest.raises(ValueError, match="does not record the vocabulary sizes"):
        loading.read_saved_model(tmp_path / "saved")
    with pytest.raises(ValueError, match="cannot tell how many embedding sets"):
        loading.read_saved_model(tmp_path / "saved", vocabulary_sizes=SIZES)
    (tmp_path / "saved" / "layout.json").write_text(json.dumps({"vocabulary_sizes": SIZES, "num_sets": 2,
                                                                "field_names": NAMES}))
    weights = loading.read_saved_model(tmp_path / "saved")
    assert weights.tables.num_sets == 2 and weights.tables.embedding_dim == 10
    assert weights.tables.field_names == tuple(NAMES) and weights.cross_kernel is None


def test_bad_paths_and_arguments(saved_models, tmp_path):
    folder, _, _ = saved_models
    with pytest.raises(FileNotFoundError, match="no such file"):
        cli.main([str(tmp_path / "missing.keras")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .keras file here"):
        cli.main([str(tmp_path / "empty")])
    with pytest.raises(SystemExit, match="--labels has 2 entries for 1 models"):
        cli.main([str(folder / "me.keras"), "--labels", "a,b"])
    np.savez(tmp_path / "bad.npz", a=np.ones(3), b=np.ones(3))
    with pytest.raises(ValueError, match="expected arrays named field_0"):
        cli.load_id_counts(tmp_path / "bad.npz")
