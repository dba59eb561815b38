"""Model introspection: the embedding layer and the field-pair layer, found by type and by the layers' declared
`PAIRWISE_KIND`, never by layer names."""

import pytest
import tensorflow as tf

from tf_multiembed import introspection
from tf_multiembed.layers import MultiEmbedding, SetCross
from tf_multiembed.layers.interactions.ffm import SetFieldAwareInteraction
from tf_multiembed.models import build_model


def test_find_embedding_layer_errors():
    inputs = tf.keras.Input((2,), dtype="float32")
    outputs = tf.keras.layers.Dense(1)(inputs)
    model = tf.keras.Model(inputs, outputs, name="plain")
    with pytest.raises(ValueError, match="no MultiEmbedding layer"):
        introspection.find_embedding_layer(model)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        introspection.find_embedding_layer(model, "nope")


@pytest.mark.parametrize("name, kind, layer_type", [("dcnv2", "cross", SetCross),
                                                    ("dcnv2_regularized", "cross", SetCross),
                                                    ("ffm", "ffm", SetFieldAwareInteraction),
                                                    ("dnn", None, type(None)), ("xdeepfm", None, type(None))])
def test_zoo_models_pairwise_layers(name, kind, layer_type):
    kind_found, layer = introspection.find_pairwise_layer(build_model(name, [3, 4, 5], scale=2))
    assert kind_found == kind and isinstance(layer, layer_type)


def _embedded(*layers):
    ids = tf.keras.Input((3,), dtype="int64")
    x = MultiEmbedding([3, 4, 5], num_sets=2, embedding_dim=2)(ids)
    x = tf.keras.layers.Reshape((2, 6))(x)
    for layer in layers:
        x = layer(x)
    return tf.keras.Model(ids, x)


def test_pairwise_layers_are_found_by_their_declaration_not_their_name():
    class PlainCross(SetCross):
        PAIRWISE_KIND = None  # a cross block that opts out of the pair analysis

    renamed = SetCross(num_layers=1, name="my_cross")
    assert introspection.find_pairwise_layer(_embedded(renamed)) == ("cross", renamed)
    assert introspection.find_pairwise_layer(_embedded(PlainCross(num_layers=1, name="set_cross"))) == (None, None)
    # Two declared layers: which one to analyse is unclear, so none is.
    assert introspection.find_pairwise_layer(_embedded(SetCross(num_layers=1), SetCross(num_layers=1))) == (None, None)

    class Odd(SetCross):
        PAIRWISE_KIND = "bilinear"

    with pytest.raises(ValueError, match=r"Odd.PAIRWISE_KIND must be one of \['cross', 'ffm'\], received 'bilinear'"):
        introspection.find_pairwise_layer(_embedded(Odd(num_layers=1)))
