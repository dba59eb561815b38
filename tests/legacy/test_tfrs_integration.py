"""Legacy tf-keras runtime: the layers inside a TFRS ranking model (collected only with TF_USE_LEGACY_KERAS=1)."""

import numpy as np
import pytest
import tensorflow as tf

tfrs = pytest.importorskip("tensorflow_recommenders", reason="install the `tfrs` extra: pip install -e '.[tfrs]'")

from tf_multiembed.layers import MLP, MultiEmbedding, SetCross, SetFlatten, SetMean, SetMLP  # noqa: E402


def test_runtime_is_legacy_keras():
    assert tf.keras.__name__.startswith("tf_keras") or tf.keras.__version__.startswith("2.")


class MultiEmbeddingRanker(tfrs.Model):
    """How a TFRS user drops ME into an existing ranking model: MultiEmbedding -> SetCross -> projection -> mean."""

    def __init__(self, vocabulary_sizes, num_sets):
        super().__init__()
        self.embedding = MultiEmbedding(vocabulary_sizes, num_sets=num_sets, embedding_dim=4)
        self.flatten = SetFlatten()
        self.cross = SetCross(num_layers=2)
        self.projection = SetMLP(units=(16,), dropout=0.0)
        self.mean = SetMean()
        self.head = MLP(units=(8,), output_units=1, dropout=0.0)
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.AUC(name="auc", from_logits=True)],
        )

    def call(self, features, training=False):
        x = self.cross(self.flatten(self.embedding(features["ids"])))
        return self.head(self.mean(self.projection(x, training=training)), training=training)

    def compute_loss(self, features, training=False):
        logits = self(features, training=training)
        return self.task(labels=features["label"], predictions=logits)


def test_multi_embedding_and_set_cross_train_inside_a_tfrs_ranking_model(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [12, 12, 4]
    ids = np.stack([rng.integers(0, s, 4096) for s in sizes], axis=1).astype("int64")
    interaction = rng.normal(size=(12, 12))
    labels = (rng.uniform(size=4096) < 1 / (1 + np.exp(-3 * interaction[ids[:, 0], ids[:, 1]]))).astype("float32")
    data = tf.data.Dataset.from_tensor_slices({"ids": ids, "label": labels})
    tf.keras.utils.set_random_seed(0)
    model = MultiEmbeddingRanker(sizes, num_sets=3)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2))
    history = model.fit(data.take(3072).batch(256), epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    result = model.evaluate(data.skip(3072).batch(512), return_dict=True, verbose=0)
    assert result["auc"] > 0.75, result
    assert model.embedding.embeddings.shape == (28, 12)
    # The trained model exports as a SavedModel, as TFRS users deploy it.
    tf.saved_model.save(model, str(tmp_path / "ranker"))
    reloaded = tf.saved_model.load(str(tmp_path / "ranker"))
    batch = {"ids": tf.constant(ids[:8]), "label": tf.constant(labels[:8])}  # the signature fit traced
    np.testing.assert_allclose(reloaded(batch).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)
