"""The hand-composed functional model shown in README.md trains and equals the builder's model."""

import numpy as np
import tensorflow as tf

from tf_multiembed.layers import MLP, MultiEmbedding, SetCross, SetFlatten, SetMean, SetMLP
from tf_multiembed.models import build_model


def readme_model(vocabulary_sizes):
    # --- begin README example ---
    ids = tf.keras.Input(shape=(len(vocabulary_sizes),), dtype="int64", name="feature_ids")
    e = MultiEmbedding(vocabulary_sizes, num_sets=4, embedding_dim=10)(ids)  # [B, 4, N, 10]
    x = SetCross(num_layers=4)(SetFlatten()(e))                               # [B, 4, N*10], per-set weights
    x = SetMLP(units=(400,), dropout=0.2)(x)                                  # per-set projection [B, 4, 400]
    logit = MLP(units=(400,), dropout=0.2, output_units=1)(SetMean()(x))      # mean over sets, shared head
    model = tf.keras.Model(ids, tf.keras.layers.Activation("sigmoid")(logit))
    # --- end README example ---
    return model


def test_readme_composition_has_the_builders_architecture_and_trains():
    sizes = [30, 40, 5]
    by_hand = readme_model(sizes)
    built = build_model("dcnv2", sizes, scale=4, multi_embedding=True)
    assert [w.shape for w in by_hand.weights] == [w.shape for w in built.weights]
    by_hand.set_weights(built.get_weights())
    ids = np.array([[1, 2, 3], [29, 39, 0]], dtype="int64")
    np.testing.assert_allclose(by_hand.predict(ids, verbose=0), built.predict(ids, verbose=0), rtol=1e-6)
    by_hand.compile(optimizer="adam", loss="binary_crossentropy")
    history = by_hand.fit(np.tile(ids, (64, 1)), np.tile([1.0, 0.0], 64), epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_readme_shows_this_exact_example():
    import inspect
    import pathlib
    import textwrap

    source = inspect.getsource(readme_model)
    example = source.split("# --- begin README example ---\n")[1].split("    # --- end README example ---")[0]
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert textwrap.dedent(example) in readme
