"""Set-specific interaction blocks: `[B, M, N, K] -> [B, M, H]`, all sets computed at once."""

from tf_multiembed.layers.interactions.autoint import SetSelfAttention
from tf_multiembed.layers.interactions.cin import SetCIN
from tf_multiembed.layers.interactions.cross import SetCross
from tf_multiembed.layers.interactions.final_mlp import BilinearFusion, SetTwoStreamMLP
from tf_multiembed.layers.interactions.fwfm import SetFieldWeightedFM
from tf_multiembed.layers.interactions.inner_product import SetInnerProduct

__all__ = [
    "BilinearFusion",
    "SetCIN",
    "SetCross",
    "SetFieldWeightedFM",
    "SetInnerProduct",
    "SetSelfAttention",
    "SetTwoStreamMLP",
]
