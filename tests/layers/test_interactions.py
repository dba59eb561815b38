"""Every set-specific block: hand-computed outputs, a NumPy per-set loop, and one-set blocks with sliced weights."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_multiembed.layers import (
    BilinearFusion,
    SetBatchNormalization,
    SetCIN,
    SetCross,
    SetDense,
    SetFieldWeightedFM,
    SetFlatten,
    SetInnerProduct,
    SetMean,
    SetMLP,
    SetSelfAttention,
    SetTwoStreamMLP,
)

B, M, N, K = 3, 3, 4, 2
RNG = np.random.default_rng(7)
EMBEDDINGS = RNG.normal(size=(B, M, N, K)).astype("float32")
FLAT = EMBEDDINGS.reshape(B, M, N * K)


def _randomize(layer, seed=0):
    """Replaces every weight with N(0, 0.5) values so that zero-initialised weights are exercised too."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        if "moving_variance" in weight.name:
            weight.assign(rng.uniform(0.5, 2.0, size=weight.shape))
        else:
            weight.assign(rng.normal(scale=0.5, size=weight.shape))


def _one_set_copy(layer, set_index, num_sets, input_shape):
    """A one-set layer of the same config whose weights are set `set_index`'s slice of `layer`'s weights."""
    single = type(layer).from_config(layer.get_config())
    single.build((None, 1, *input_shape[2:]))
    assert len(single.weights) == len(layer.weights)
    for source, target in zip(layer.weights, single.weights):
        value = source.numpy()
        if value.shape[0] == num_sets and tuple(target.shape) == (1, *value.shape[1:]):
            value = value[set_index : set_index + 1]
        else:  # per-set BatchNorm keeps [M*H] vectors
            value = value.reshape(num_sets, -1)[set_index]
        target.assign(value.reshape(target.shape))
    return single


def _assert_sets_are_independent(layer, inputs, atol=1e-5):
    """The vectorized M-set output equals M one-set layers (the SE block) run on each set with its own weights."""
    output = layer(inputs, training=False).numpy()
    for m in range(inputs.shape[1]):
        single = _one_set_copy(layer, m, inputs.shape[1], inputs.shape)
        np.testing.assert_allclose(single(inputs[:, m : m + 1], training=False).numpy()[:, 0], output[:, m],
                                   rtol=1e-5, atol=atol)
    return output


# --------------------------------------------------------------------------- SetDense, BN, SetMLP, flatten, mean


def test_set_dense_hand_computed_and_per_set():
    layer = SetDense(2)
    layer.build((None, 2, 3))
    layer.kernel.assign(np.array([[[1, 0], [0, 1], [1, 1]], [[2, 0], [0, 0], [0, 3]]], dtype="float32"))
    layer.bias.assign(np.array([[0.5, 0.0], [0.0, -1.0]], dtype="float32"))
    x = tf.constant([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]])
    np.testing.assert_allclose(layer(x).numpy(), [[[4.5, 5.0], [2.0, 8.0]]])
    layer = SetDense(5)
    layer.build((None, M, N * K))
    _randomize(layer)
    _assert_sets_are_independent(layer, FLAT)


def test_set_dense_default_init_is_pytorch_linear():
    layer = SetDense(300)
    layer.build((None, 2, 400))
    bound = 1 / math.sqrt(400)
    assert np.abs(layer.kernel.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() <= bound
    assert np.abs(layer.kernel.numpy()).max() > 0.95 * bound


def test_set_batch_norm_keeps_separate_statistics_per_set():
    x = np.stack([RNG.normal(0, 1, (64, 3)), RNG.normal(5, 3, (64, 3))], axis=1).astype("float32")
    layer = SetBatchNormalization()
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=0), 1, atol=1e-3)
    moving_mean = layer.batch_norm.moving_mean.numpy().reshape(2, 3)
    np.testing.assert_allclose(moving_mean, 0.1 * x.mean(axis=0), rtol=1e-4, atol=1e-6)  # momentum 0.9
    assert layer.batch_norm.epsilon == 1e-5


def test_set_mlp_per_set_and_shapes():
    layer = SetMLP(units=(6, 5), dropout=0.2)
    layer.build((None, M, N * K))
    _randomize(layer)
    out = _assert_sets_are_independent(layer, FLAT)
    assert out.shape == (B, M, 5) and (out >= 0).all()


def test_flatten_is_field_major_and_mean_averages_sets():
    flat = SetFlatten()(EMBEDDINGS).numpy()
    np.testing.assert_array_equal(flat[1, 2, 2:4], EMBEDDINGS[1, 2, 1])
    np.testing.assert_allclose(SetMean()(EMBEDDINGS).numpy(), EMBEDDINGS.mean(axis=1), rtol=1e-6)


# --------------------------------------------------------------------------- IPNN


def test_inner_product_hand_computed():
    e = tf.constant([[[[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]]]])
    np.testing.assert_allclose(SetInnerProduct()(e).numpy(), [[[2.0, 0.0, 3.0]]])
    np.testing.assert_allclose(SetInnerProduct(include_embeddings=True)(e).numpy(),
                               [[[1.0, 0.0, 2.0, 1.0, 0.0, 3.0, 2.0, 0.0, 3.0]]])


def test_inner_product_numpy_loop_and_per_set():
    out = _assert_sets_are_independent(SetInnerProduct(), EMBEDDINGS)
    for b in range(B):
        for m in range(M):
            expected = [EMBEDDINGS[b, m, i] @ EMBEDDINGS[b, m, j] for i in range(N) for j in range(i + 1, N)]
            np.testing.assert_allclose(out[b, m], expected, rtol=1e-5)
    assert SetInnerProduct(include_embeddings=True)(EMBEDDINGS).shape == (B, M, N * K + N * (N - 1) // 2)


# --------------------------------------------------------------------------- NFwFM


def test_fwfm_hand_computed():
    layer = SetFieldWeightedFM(dropout=0.0)
    e = tf.constant([[[[1.0, 2.0], [3.0, -1.0]]]])  # N=2, K=2
    layer.build(e.shape)
    layer.pair_weights.assign([[[1.0, 2.0], [0.5, -1.0]]])
    # out_k = sum_ij r_ij e_ik e_jk: k=0: 1*1 + 2*3 + 0.5*3 - 9 = -0.5 ; k=1: 4 - 4 - 1 - 1 = -2
    # fresh BatchNorm at inference divides by sqrt(1 + 1e-5)
    np.testing.assert_allclose(layer(e, training=False).numpy(), [[[-0.5, -2.0]]] / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_fwfm_numpy_loop_and_per_set():
    layer = SetFieldWeightedFM(dropout=0.0)
    layer.build(EMBEDDINGS.shape)
    _randomize(layer)
    out = _assert_sets_are_independent(layer, EMBEDDINGS)
    r = layer.pair_weights.numpy()
    bn = layer.batch_norm.batch_norm
    gamma, beta, mean, var = (v.numpy().reshape(M, K) for v in (bn.gamma, bn.beta, bn.moving_mean,
                                                                 bn.moving_variance))
    for m in range(M):
        pooled = np.einsum("ij,bik,bjk->bk", r[m], EMBEDDINGS[:, m], EMBEDDINGS[:, m])
        expected = gamma[m] * (pooled - mean[m]) / np.sqrt(var[m] + 1e-5) + beta[m]
        np.testing.assert_allclose(out[:, m], expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- CIN


def _cin_reference(x0, kernels, biases):
    """One set, loops over channels: h_{l+1}[o, k] = relu(sum_{n,h} W[n*H+h, o] x0[n,k] h_l[h,k] + b[o])."""
    hidden, pooled = x0, []
    for kernel, bias in zip(kernels, biases):
        num_hidden = hidden.shape[0]
        nxt = np.zeros((kernel.shape[1], x0.shape[1]))
        for o in range(kernel.shape[1]):
            for n in range(x0.shape[0]):
                for h in range(num_hidden):
                    nxt[o] += kernel[n * num_hidden + h, o] * x0[n] * hidden[h]
            nxt[o] = np.maximum(nxt[o] + bias[o], 0)
        pooled.append(nxt.sum(axis=1))
        hidden = nxt
    return np.concatenate(pooled)


def test_cin_hand_computed():
    layer = SetCIN(layer_sizes=(1,))
    e = tf.constant([[[[1.0, 2.0], [3.0, -1.0]]]])  # N=2, K=2; channels (n, h) = 4
    layer.build(e.shape)
    layer.kernels[0].assign([[[1.0], [0.0], [0.0], [1.0]]])  # picks x0_0*x0_0 + x0_1*x0_1
    layer.biases[0].assign([[-1.0]])
    # k=0: 1 + 9 - 1 = 9 ; k=1: 4 + 1 - 1 = 4 ; sum-pooled: 13
    np.testing.assert_allclose(layer(e).numpy(), [[[13.0]]])


def test_cin_numpy_loop_and_per_set():
    layer = SetCIN(layer_sizes=(3, 2))
    layer.build(EMBEDDINGS.shape)
    _randomize(layer)
    out = _assert_sets_are_independent(layer, EMBEDDINGS)
    assert out.shape == (B, M, 5)
    for b in range(B):
        for m in range(M):
            expected = _cin_reference(EMBEDDINGS[b, m], [k.numpy()[m] for k in layer.kernels],
                                      [v.numpy()[m] for v in layer.biases])
            np.testing.assert_allclose(out[b, m], expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- DCNv2 cross


def test_cross_hand_computed():
    layer = SetCross(num_layers=1)
    x = tf.constant([[[1.0, 2.0]]])
    layer.build(x.shape)
    layer.kernels[0].assign([[[1.0, 0.0], [1.0, 2.0]]])  # x @ W = [1 + 2, 4]
    layer.biases[0].assign([[1.0, -1.0]])
    # x0 * (xW + b) + x = [1*4, 2*3] + [1, 2]
    np.testing.assert_allclose(layer(x).numpy(), [[[5.0, 8.0]]])


@pytest.mark.parametrize("low_rank", [None, 3])
def test_cross_numpy_loop_and_per_set(low_rank):
    layer = SetCross(num_layers=3, low_rank=low_rank)
    layer.build(FLAT.shape)
    _randomize(layer)
    out = _assert_sets_are_independent(layer, FLAT)
    for m in range(M):
        x0 = FLAT[:, m]
        x = x0
        for index in range(3):
            kernel = layer.effective_kernel(index).numpy()[m]
            x = x0 * (x @ kernel + layer.biases[index].numpy()[m]) + x
        np.testing.assert_allclose(out[:, m], x, rtol=1e-4, atol=1e-4)


def test_cross_default_init_and_block_layout():
    layer = SetCross(num_layers=2)
    layer.build((None, 2, 40))
    bound = math.sqrt(6 / 80)
    kernel = layer.kernels[0].numpy()
    assert kernel.shape == (2, 40, 40) and np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
    np.testing.assert_array_equal(layer.biases[1].numpy(), 0)
    # Block (i -> j) maps field i's input slot into field j's output slot: only field 0's input, only block 0->1.
    kernel = np.zeros((1, 4, 4), "float32")
    kernel[0, 0:2, 2:4] = [[1.0, 0.0], [0.0, 1.0]]
    single = SetCross(num_layers=1)
    single.build((None, 1, 4))
    single.kernels[0].assign(kernel)
    x = tf.constant([[[1.0, 2.0, 3.0, 4.0]]])
    np.testing.assert_allclose(single(x).numpy(), [[[1.0, 2.0, 3.0 * 1 + 3, 4.0 * 2 + 4]]])


# --------------------------------------------------------------------------- FinalMLP


def test_two_stream_mlp_per_set():
    layer = SetTwoStreamMLP((4,), (3, 2), dropout=0.0)
    layer.build(FLAT.shape)
    _randomize(layer)
    out = _assert_sets_are_independent(layer, FLAT)
    assert out.shape == (B, M, 6)


def test_bilinear_fusion_hand_computed():
    layer = BilinearFusion(first_width=2)
    layer.build((None, 3))
    np.testing.assert_array_equal(layer.pair_weights.numpy(), 0)  # the reference starts from zeros
    layer.first_weights.assign([[1.0], [2.0]])
    layer.second_weights.assign([[3.0]])
    layer.pair_weights.assign([[1.0], [-1.0]])
    layer.bias.assign([0.5])
    # x=[1,2], y=[3]: 1 + 4 + 9 + (1*3 - 2*3) + 0.5
    np.testing.assert_allclose(layer(tf.constant([[1.0, 2.0, 3.0]])).numpy(), [[11.5]])


# --------------------------------------------------------------------------- AutoInt


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def test_self_attention_numpy_loop_and_per_set():
    layer = SetSelfAttention(attention_dim=4, num_heads=2, num_layers=2)
    layer.build(EMBEDDINGS.shape)
    _randomize(layer)
    out = _assert_sets_are_independent(layer, EMBEDDINGS)
    for b in range(B):
        for m in range(M):
            x = EMBEDDINGS[b, m]
            for kernels in layer.layer_kernels:
                w = {role: v.numpy()[m] for role, v in kernels.items()}
                heads = []
                for h in range(2):
                    cols = slice(2 * h, 2 * h + 2)
                    q, k, v = (x @ w[r][:, cols] for r in ("query", "key", "value"))
                    heads.append(_softmax(q @ k.T / math.sqrt(2)) @ v)
                x = np.maximum(np.concatenate(heads, axis=1) + x @ w["residual"], 0)
            np.testing.assert_allclose(out[b, m], x.reshape(-1), rtol=1e-4, atol=1e-5)


def test_self_attention_hand_computed_uniform_attention():
    # Identical keys -> uniform attention: every field gets the mean of the values.
    layer = SetSelfAttention(attention_dim=1, num_heads=1, num_layers=1, use_residual=False)
    e = tf.constant([[[[1.0], [3.0]]]])
    layer.build(e.shape)
    kernels = layer.layer_kernels[0]
    kernels["query"].assign([[[1.0]]])
    kernels["key"].assign([[[0.0]]])
    kernels["value"].assign([[[2.0]]])
    np.testing.assert_allclose(layer(e).numpy(), [[[4.0, 4.0]]])


# --------------------------------------------------------------------------- common contracts


BLOCKS = [
    (lambda: SetDense(3), FLAT.shape),
    (lambda: SetMLP((3,)), FLAT.shape),
    (lambda: SetInnerProduct(include_embeddings=True), EMBEDDINGS.shape),
    (lambda: SetFieldWeightedFM(), EMBEDDINGS.shape),
    (lambda: SetCIN((2, 2)), EMBEDDINGS.shape),
    (lambda: SetCross(2, low_rank=2), FLAT.shape),
    (lambda: SetCross(2), FLAT.shape),
    (lambda: SetTwoStreamMLP((3,), (2,)), FLAT.shape),
    (lambda: SetSelfAttention(4, 2, 1), EMBEDDINGS.shape),
]


@pytest.mark.parametrize("factory, shape", BLOCKS)
def test_blocks_keep_the_set_axis_and_round_trip_their_config(factory, shape):
    layer = factory()
    out = layer(np.zeros(shape, "float32"))
    assert out.shape[:2] == (shape[0], shape[1])
    assert tuple(layer.compute_output_shape((None, *shape[1:]))[1:]) == tuple(out.shape[1:])
    for weight in layer.trainable_weights:
        if len(weight.shape) == 1:  # only per-set BatchNorm has vectors: flat [M*H]
            assert weight.shape[0] % shape[1] == 0, weight.name
        else:
            assert weight.shape[0] == shape[1], weight.name
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("factory, message", [
    (lambda: SetDense(0), r"`units` must be a positive integer, received 0"),
    (lambda: SetMLP((400, -1)), r"`units\[1\]` must be a positive integer, received -1"),
    (lambda: SetMLP((4,), dropout=1.5), r"`dropout` must be a float in \[0, 1\), received 1.5"),
    (lambda: SetCross(num_layers=0), r"`num_layers` must be a positive integer, received 0"),
    (lambda: SetCross(low_rank=-2), r"`low_rank` must be a positive integer, received -2"),
    (lambda: SetCIN(layer_sizes=()), r"`layer_sizes` must not be empty"),
    (lambda: SetSelfAttention(attention_dim=5, num_heads=2), r"`attention_dim` \(5\) must be divisible by"),
    (lambda: BilinearFusion(first_width=0), r"`first_width` must be a positive integer"),
])
def test_invalid_arguments(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_wrong_input_rank_is_explained():
    with pytest.raises(ValueError, match=r"SetCross: expected an input of rank 3 with layout \[B, M, D\]"):
        SetCross()(np.zeros((2, 3, 4, 5), "float32"))
    with pytest.raises(ValueError, match=r"SetInnerProduct: needs at least 2 fields"):
        SetInnerProduct()(np.zeros((2, 1, 1, 5), "float32"))
    with pytest.raises(ValueError, match=r"leaves no second stream"):
        BilinearFusion(first_width=4)(np.zeros((2, 4), "float32"))


def test_weights_of_equal_shape_are_initialised_independently():
    # Legacy tf-keras repeats the values of a reused unseeded initializer; every weight must get its own draw.
    attention = SetSelfAttention(attention_dim=4, num_heads=1, num_layers=2)
    attention.build(EMBEDDINGS.shape)
    cross = SetCross(num_layers=2, kernel_initializer=tf.keras.initializers.RandomUniform(-1.0, 1.0))
    cross.build(FLAT.shape)
    dense = SetDense(3)
    dense.build((None, 2, 3))
    tables = [v.numpy() for v in attention.layer_kernels[1].values()] + [k.numpy() for k in cross.kernels]
    tables += [dense.kernel.numpy()[:, 0, :], dense.bias.numpy()]
    for i in range(len(tables)):
        for j in range(i + 1, len(tables)):
            if tables[i].shape == tables[j].shape:
                assert not np.allclose(tables[i], tables[j]), (i, j)


def _model_variables(layer):
    """Weights and statistics, without Keras 3's dropout random-seed state (not part of a model's state)."""
    return [v for v in layer.variables if "seed_generator" not in getattr(v, "path", v.name)]


@pytest.mark.parametrize("factory, shape", BLOCKS)
def test_tf_train_checkpoint_saves_and_restores_every_variable(factory, shape, tmp_path):
    layer = factory()
    layer(np.zeros(shape, "float32"))
    _randomize(layer)
    path = tf.train.Checkpoint(block=layer).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if "VARIABLE_VALUE" in name]
    assert len(saved) == len(_model_variables(layer)), saved
    clone = type(layer).from_config(layer.get_config())
    clone(np.zeros(shape, "float32"))
    tf.train.Checkpoint(block=clone).read(path).assert_consumed()
    for original, restored in zip(_model_variables(layer), _model_variables(clone)):
        np.testing.assert_array_equal(original.numpy(), restored.numpy())
