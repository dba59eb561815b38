"""RegularizedSetCross (Evidence III): field-pair scales, the orthogonality penalty, the "dcnv2_regularized" model."""

import numpy as np
import pytest
import tensorflow as tf

import tf_multiembed.models.dcnv2_regularized  # noqa: F401  (registers "dcnv2_regularized")
from tf_multiembed.layers import SetCross
from tf_multiembed.layers.interactions.regularized_cross import RegularizedSetCross
from tf_multiembed.models import build_model


def _built(num_fields=3, dim=2, num_sets=2, num_layers=2, coefficient=1e-5):
    layer = RegularizedSetCross(num_fields=num_fields, num_layers=num_layers, orthogonality_coefficient=coefficient)
    layer.build((None, num_sets, num_fields * dim))
    return layer


def test_penalty_by_hand():
    layer = _built(num_fields=3, dim=2, num_sets=2, num_layers=2)
    for kernel in layer.kernels:
        kernel.assign(tf.zeros_like(kernel))
    # Every block is 0: ||I||_F^2 = K = 2 per block; 2 layers x 2 sets x 9 blocks.
    assert float(layer.orthogonality_penalty()) == pytest.approx(2 * 2 * 9 * 2)
    rotation = np.array([[0.6, -0.8], [0.8, 0.6]], dtype=np.float32)
    orthogonal = np.kron(np.ones((3, 3), np.float32), rotation)  # every block a rotation
    for kernel in layer.kernels:
        kernel.assign(np.stack([orthogonal, orthogonal]))
    assert float(layer.orthogonality_penalty()) == pytest.approx(0.0, abs=1e-5)
    # One block 2 * rotation in one set of one layer: ||I - 4 I||_F^2 = 9 * 2 = 18.
    changed = np.stack([orthogonal, orthogonal])
    changed[1, 2:4, 4:6] *= 2.0
    layer.kernels[0].assign(changed)
    assert float(layer.orthogonality_penalty()) == pytest.approx(18.0, rel=1e-5)


def test_effective_kernel_scales_blocks_and_call_uses_it():
    layer = _built(num_fields=2, dim=3, num_sets=1, num_layers=1)
    scales = np.array([[[1.0, 2.0], [0.5, 0.0]]], dtype=np.float32)
    layer.pair_scales[0].assign(scales)
    raw = layer.kernels[0].numpy()
    effective = layer.effective_kernel(0).numpy()
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(effective[0, 3 * i:3 * i + 3, 3 * j:3 * j + 3],
                                       scales[0, i, j] * raw[0, 3 * i:3 * i + 3, 3 * j:3 * j + 3], rtol=1e-6)
    # The forward pass equals a plain SetCross whose kernel is the effective kernel.
    plain = SetCross(num_layers=1)
    plain.build((None, 1, 6))
    plain.kernels[0].assign(effective)
    plain.biases[0].assign(layer.biases[0])
    x = np.random.default_rng(0).standard_normal((4, 1, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)


def test_penalty_is_added_to_the_training_loss():
    sizes = [5, 6, 7]
    model = build_model("dcnv2_regularized", sizes, scale=2, orthogonality_coefficient=0.5, hidden_units=(8,))
    ids = np.array([[1, 2, 3], [0, 0, 0]] * 4)
    labels = np.ones(8, np.float32)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    probabilities = model.predict(ids, verbose=0)
    bce = float(tf.reduce_mean(tf.keras.losses.binary_crossentropy(labels[:, None], probabilities)))
    penalty = float(model.get_layer("set_cross").orthogonality_penalty())
    assert model.evaluate(ids, labels, verbose=0) == pytest.approx(bce + 0.5 * penalty, rel=1e-4)
    model(ids)
    assert [float(loss) for loss in model.losses] == pytest.approx([0.5 * penalty], rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="low_rank=4, expected None"):
        RegularizedSetCross(num_fields=3, low_rank=4)
    with pytest.raises(ValueError, match="orthogonality_coefficient"):
        RegularizedSetCross(num_fields=3, orthogonality_coefficient=-1.0)
    with pytest.raises(ValueError, match="num_fields"):
        RegularizedSetCross(num_fields=0)
    with pytest.raises(ValueError, match="width 10 is not a multiple of num_fields=3"):
        RegularizedSetCross(num_fields=3).build((None, 2, 10))


def test_config_and_save_round_trips(tmp_path):
    layer = RegularizedSetCross(num_fields=3, num_layers=2, orthogonality_coefficient=1e-3, name="rc")
    clone = RegularizedSetCross.from_config(layer.get_config())
    assert (clone.num_fields, clone.num_layers, clone.orthogonality_coefficient) == (3, 2, 1e-3)
    model = build_model("dcnv2_regularized", [5, 6, 7], scale=2, hidden_units=(8,))
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    model.get_layer("set_cross").pair_scales[1].assign(np.full((2, 3, 3), 0.7, np.float32))
    expected = model.predict(ids, verbose=0)
    model.save(tmp_path / "model.keras")
    restored = tf.keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(restored.get_layer("set_cross"), RegularizedSetCross)
    np.testing.assert_allclose(restored.predict(ids, verbose=0), expected, rtol=1e-6)
    model.export(str(tmp_path / "saved"), verbose=False)
    serving = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(serving.serve(tf.constant(ids, tf.int64)).numpy(), expected, rtol=1e-6)


def test_checkpoint_restores_the_pair_scales(tmp_path):
    model = build_model("dcnv2_regularized", [5, 6, 7], scale=2, num_cross_layers=2, hidden_units=(8,))
    cross = model.get_layer("set_cross")
    cross.pair_scales[1].assign(np.full((2, 3, 3), 0.25, np.float32))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    cross.pair_scales[1].assign(np.ones((2, 3, 3), np.float32))
    tf.train.Checkpoint(model=model).read(path).assert_existing_objects_matched()
    np.testing.assert_allclose(cross.pair_scales[1].numpy(), 0.25)
