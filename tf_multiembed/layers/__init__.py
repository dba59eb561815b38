"""Keras layers of tf-multiembed: `MultiEmbedding`, set-specific interaction blocks, set ops and MLPs.

All layers are written against `tf.keras` and TensorFlow ops, so they run under Keras 3 and legacy tf-keras.
"""

from tf_multiembed.layers.embedding import MultiEmbedding
from tf_multiembed.layers.interactions import (
    BilinearFusion,
    SetCIN,
    SetCross,
    SetFieldWeightedFM,
    SetInnerProduct,
    SetSelfAttention,
    SetTwoStreamMLP,
)
from tf_multiembed.layers.numeric import DenseNumeric, NumericEmbedding
from tf_multiembed.layers.set_dense import MLP, SetBatchNormalization, SetDense, SetMLP
from tf_multiembed.layers.set_ops import SetFlatten, SetGate, SetMean

__all__ = [
    "BilinearFusion",
    "DenseNumeric",
    "MLP",
    "MultiEmbedding",
    "NumericEmbedding",
    "SetBatchNormalization",
    "SetCIN",
    "SetCross",
    "SetDense",
    "SetFieldWeightedFM",
    "SetFlatten",
    "SetGate",
    "SetInnerProduct",
    "SetMLP",
    "SetMean",
    "SetSelfAttention",
    "SetTwoStreamMLP",
]
