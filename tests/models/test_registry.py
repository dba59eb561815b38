"""Checks every registered model gets, the paper's and any added later (docs/architecture.md, "Adding an interaction
block / a model"): registration (the builder contract, the names, `--model`), serialization (config, `.keras`) and
parameter counts (equal embedding parameters for SE and ME, every parameter in a checkpoint, ME at scale 1 = SE).

A model file added under tf_multiembed/models/ is picked up here without editing this file; the last test shows it
with a model written from architecture.md's own example."""

import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed import introspection
from tf_multiembed.models import (FEATURE_IDS_INPUT, PROBABILITY_OUTPUT, available_models, build_model,
                                  get_model_spec, resolve_embedding_shape)
from tf_multiembed.models.common import model_name
from tf_multiembed.training.config import RunConfig, _model_help

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
REGISTERED = available_models()
VOCABULARY_SIZES = [3, 5, 7, 4]
REGISTRY_CHECKS = 3  # the tests below parametrized by model name


def _small(name):
    """Narrow hidden layers where the family takes `hidden_units` (fast to build and save)."""
    parameters = inspect.signature(get_model_spec(name).build_fn).parameters
    return {"hidden_units": (16, 8)} if "hidden_units" in parameters else {}


def _ids(num_rows, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, size, num_rows) for size in VOCABULARY_SIZES], axis=1).astype("int64")


@pytest.mark.parametrize("name", REGISTERED)
def test_registration(name):
    assert RunConfig(model=name).model == name
    assert name in _model_help()  # train.py --model's help lists it
    ids = _ids(6)
    for multi in (False, True):
        num_sets, dim = resolve_embedding_shape(name, scale=2, multi_embedding=multi)
        model = build_model(name, VOCABULARY_SIZES, scale=2, multi_embedding=multi)
        assert model.name == model_name(name, num_sets, dim) == RunConfig(model=name, scale=2, embedding=(
            "me" if multi else "se")).model_name()
        assert [tensor.name.split(":")[0] for tensor in model.inputs] == [FEATURE_IDS_INPUT]
        assert model.inputs[0].dtype == "int64" and tuple(model.inputs[0].shape) == (None, len(VOCABULARY_SIZES))
        assert model.get_layer(PROBABILITY_OUTPUT) is not None
        embedding = introspection.find_embedding_layer(model)
        # M interaction sets of width K; a family may keep several embedding sets per interaction set (FFM: one
        # per field).
        assert embedding.embedding_dim == dim and embedding.num_sets % num_sets == 0
        assert list(embedding.vocabulary_sizes) == VOCABULARY_SIZES
        probabilities = model.predict(ids, verbose=0)
        assert probabilities.shape == (6, 1) and np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.parametrize("name", REGISTERED)
def test_serialization(name, tmp_path):
    ids = _ids(32)
    for multi in (False, True):
        model = build_model(name, VOCABULARY_SIZES, scale=2, multi_embedding=multi, **_small(name))
        # Non-trivial BatchNorm statistics and weights, so that a lost weight would show.
        model.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)  # 2 steps: tracing costs more
        model.fit(ids, np.arange(32) % 2, epochs=1, batch_size=16, verbose=0)
        expected = model(ids, training=False).numpy()
        clone = tf.keras.Model.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        np.testing.assert_allclose(clone(ids, training=False).numpy(), expected, rtol=1e-6, atol=1e-7)
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = tf.keras.models.load_model(path)
        np.testing.assert_allclose(loaded(ids, training=False).numpy(), expected, rtol=1e-6, atol=1e-7)
        assert (introspection.find_embedding_layer(loaded).num_sets
                == introspection.find_embedding_layer(model).num_sets)


@pytest.mark.parametrize("name", REGISTERED)
def test_parameter_counts(name, tmp_path):
    embedding_parameters = []
    for multi in (False, True):
        model = build_model(name, VOCABULARY_SIZES, scale=3, multi_embedding=multi, **_small(name))
        embedding = introspection.find_embedding_layer(model)
        assert embedding.count_params() == sum(VOCABULARY_SIZES) * embedding.num_sets * embedding.embedding_dim
        embedding_parameters.append(embedding.count_params())
        # Every parameter reaches a tf.train.Checkpoint (weights kept only in Python lists would not).
        path = tf.train.Checkpoint(model=model).write(str(tmp_path / f"{name}-{multi}"))
        reader = tf.train.load_checkpoint(path)
        saved = sum(int(np.prod(shape)) for key, shape in reader.get_variable_to_shape_map().items()
                    if "VARIABLE_VALUE" in key and "seed_generator" not in key)
        assert saved == model.count_params(), (
            f"{name}: a checkpoint holds {saved} of the model's {model.count_params()} parameters; keep weights and "
            f"sub-layers that live in Python lists also as attributes (tf_multiembed.validation.track_as_attribute).")
    # The paper's rule: SE width 3K and ME 3 sets of width K hold the same embedding parameters.
    assert embedding_parameters[0] == embedding_parameters[1]
    # At scale 1, ME is the SE model: the same weights give the same predictions.
    se = build_model(name, VOCABULARY_SIZES, scale=1, multi_embedding=False, **_small(name))
    me = build_model(name, VOCABULARY_SIZES, scale=1, multi_embedding=True, **_small(name))
    assert se.count_params() == me.count_params()
    assert [w.shape for w in se.weights] == [w.shape for w in me.weights]
    me.set_weights(se.get_weights())
    ids = _ids(4, seed=1)
    np.testing.assert_array_equal(se.predict(ids, verbose=0), me.predict(ids, verbose=0))


def _architecture_example_files():
    """{path: code} of the python blocks of architecture.md's "Adding an interaction block / a model" section that
    start with a `# tf_multiembed/...py` line (the files a contributor writes)."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text[text.index("## Adding an interaction block / a model"):]
    files = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        first = block.splitlines()[0]
        if re.fullmatch(r"# tf_multiembed/[\w/]+\.py", first):
            files[first[2:]] = block
    return files


def test_a_model_added_by_following_architecture_md_passes_the_registry_wide_checks(tmp_path):
    files = _architecture_example_files()
    assert sorted(files) == ["tf_multiembed/layers/interactions/pair_gate.py", "tf_multiembed/models/pair_gate.py"]
    # A checkout with the example's files added, and nothing else edited (no __init__.py, no test file).
    source = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "tf_multiembed", source / "tf_multiembed",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for relative, code in files.items():
        assert not (source / relative).exists()
        (source / relative).write_text(code, encoding="utf-8")
    environment = dict(os.environ, PYTHONPATH=str(source), CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(pathlib.Path(__file__)), "-v", "-p", "no:cacheprovider",
         "-k", "pair_gate", "-o", "addopts=", "-o", "pythonpath=", "--rootdir", str(REPO_ROOT)],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for check in ("test_registration", "test_serialization", "test_parameter_counts"):
        assert f"{check}[pair_gate] PASSED" in result.stdout, result.stdout[-2000:]
    assert re.search(rf"\b{REGISTRY_CHECKS} passed\b", result.stdout), result.stdout[-2000:]
    assert "pair_gate" not in REGISTERED  # this process's registry never saw it
