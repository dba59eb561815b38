"""Heterogeneous ME: one interaction type everywhere == the homogeneous ME model with the same weights; groups are
slices of one fused table; bad set lists; a real train.py run -> export -> diagnostics report."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.models import build_model
from tf_multiembed.models.heterogeneous import set_groups

REPO = pathlib.Path(__file__).resolve().parents[2]
SIZES = [5, 6, 7]
IDS = np.array([[0, 1, 2], [4, 5, 6], [3, 0, 1], [1, 2, 0], [2, 3, 4]])


def _copy_weights(source: tf.keras.Model, target: tf.keras.Model) -> None:
    assert [tuple(w.shape) for w in source.weights] == [tuple(w.shape) for w in target.weights]
    target.set_weights(source.get_weights())


@pytest.mark.parametrize("interaction, homogeneous, options", [
    ("cross", "dcnv2", {"num_cross_layers": 2}),
    ("inner_product", "ipnn", {}),
    ("fwfm", "nfwfm", {}),
    ("dnn", "dnn", {}),
])
def test_one_interaction_everywhere_equals_the_homogeneous_model(interaction, homogeneous, options):
    hetero = build_model("heterogeneous", SIZES, scale=3, embedding_dim=4, set_interactions=[interaction] * 3,
                         hidden_units=(16, 8), **options)
    homo = build_model(homogeneous, SIZES, scale=3, embedding_dim=4, hidden_units=(16, 8), **options)
    _copy_weights(homo, hetero)
    np.testing.assert_allclose(hetero.predict(IDS, verbose=0), homo.predict(IDS, verbose=0), rtol=1e-5, atol=1e-7)


def test_groups_are_slices_of_one_fused_table():
    model = build_model("heterogeneous", SIZES, scale=6, embedding_dim=4, hidden_units=(16,),
                        set_interactions=["cross", "cross", "inner_product", "fwfm", "cin", "self_attention"])
    embedding_layers = [layer for layer in model.layers if type(layer).__name__ == "MultiEmbedding"]
    assert len(embedding_layers) == 1 and embedding_layers[0].num_sets == 6
    assert [(model.get_layer(f"group_{g}_sets").start, model.get_layer(f"group_{g}_sets").stop)
            for g in range(5)] == [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert model.get_layer("group_0_cross").kernels[0].shape[0] == 2  # one block vectorised over the group's sets
    assert model.get_layer("set_concat").output.shape[1] == 6
    # The logit is the shared head on the mean of the six projected sets.
    ids = tf.constant(IDS)
    embeddings = model.get_layer("multi_embedding")(ids)
    projected = []
    for g in range(5):
        group = model.get_layer(f"group_{g}_sets")(embeddings)
        block = [layer for layer in model.layers if layer.name.startswith(f"group_{g}_")
                 and layer.name not in (f"group_{g}_sets", f"group_{g}_projection")]
        for layer in block:  # the cross group: flatten, then cross
            group = layer(group)
        projected.append(model.get_layer(f"group_{g}_projection")(group, training=False))
    mean = tf.reduce_mean(tf.concat(projected, axis=1), axis=1)
    expected = tf.sigmoid(model.get_layer("shared_head")(mean, training=False))
    np.testing.assert_allclose(model.predict(IDS, verbose=0), expected.numpy(), rtol=1e-5, atol=1e-7)


def test_set_lists_are_checked():
    assert set_groups(["dnn", "cross", "dnn"], 3) == [("dnn", 0, 1), ("cross", 1, 2), ("dnn", 2, 3)]
    with pytest.raises(ValueError, match=r"names one interaction per set; received 2 for 3 sets"):
        build_model("heterogeneous", SIZES, scale=3, set_interactions=["cross", "dnn"])
    with pytest.raises(ValueError, match=r"unknown interaction 'fm' in `set_interactions`; expected one of"):
        build_model("heterogeneous", SIZES, scale=2, set_interactions=["cross", "fm"])


def test_keras_round_trip(tmp_path):
    model = build_model("heterogeneous", SIZES, scale=3, embedding_dim=4, hidden_units=(8,),
                        set_interactions=["cross", "cin", "self_attention"])
    model.save(tmp_path / "model.keras")
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(IDS, verbose=0), model.predict(IDS, verbose=0), rtol=1e-6)


def test_train_export_and_diagnose_a_heterogeneous_run(tmp_path):
    model_dir, export_dir, report = tmp_path / "run", tmp_path / "export", tmp_path / "report"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    environment.pop("TF_CONFIG", None)
    trained = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "--model=heterogeneous", "--embedding=me", "--scale=2",
         "--synthetic_rows=1500", f"--data_dir={tmp_path / 'data'}", "--batch_size=128", "--epochs=1",
         f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--export_name=ctr", "--verbose=0"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-4000:]
    assert json.loads((model_dir / "results.json").read_text())["status"] == "finished"
    diagnosed = subprocess.run(
        [sys.executable, "-m", "tf_multiembed.diagnostics", str(export_dir / "ctr"), str(model_dir),
         "--labels", "export,run", "--output-dir", str(report)],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert diagnosed.returncode == 0, diagnosed.stderr[-4000:]
    assert "mean RankMe" in diagnosed.stdout
    data = json.loads((report / "diagnostics.json").read_text())
    exported, run = data["export"]["embedding"], data["run"]["embedding"]
    assert exported["num_sets"] == 2 and exported["set_effective_rank"] is not None
    # The export and the run directory hold the same trained table.
    np.testing.assert_allclose(exported["concat_abundance"], run["concat_abundance"], rtol=1e-6)
    np.testing.assert_allclose(exported["concat_effective_rank"], run["concat_effective_rank"], rtol=1e-6)
    assert data["export"]["pairwise"] is None  # the cross group covers one of the two sets
    assert "## export" in (report / "summary.md").read_text()
